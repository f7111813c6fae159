"""Content negotiation that honours `q=0`: RFC 9110 (12.4.2) makes a media range with quality
0 "not acceptable", which DRF's negotiation ignores (it reads the order of precedence only).
A renderer whose media type's most specific matching range has quality 0 is not offered:
`Accept: application/json;q=0` and `application/json;q=0, */*` are a 406, not JSON."""

from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.mediatypes import _MediaType


def _refused(media_range: str) -> bool:
    quality = _MediaType(media_range).params.get("q", "")
    try:
        return float(quality) == 0
    except ValueError:
        return False  # (an unreadable quality: the range is taken, as DRF takes it)


def _refused_type(media_type: str, ranges: list[str]) -> bool:
    """Whether the most specific of `ranges` that matches `media_type` has quality 0."""
    wanted = _MediaType(media_type)
    best, refused = -1, False
    for media_range in ranges:
        offered = _MediaType(media_range)
        if offered.main_type not in ("*", wanted.main_type):
            continue
        if offered.sub_type not in ("*", wanted.sub_type):
            continue
        specificity = (offered.main_type != "*") + (offered.sub_type != "*")
        if specificity > best:
            best, refused = specificity, _refused(media_range)
    return refused


class QualityAwareNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request: Any, renderers: list, format_suffix: Any = None) -> Any:
        ranges = self.get_accept_list(request)
        offered = [r for r in renderers if not _refused_type(r.media_type, ranges)]
        if not offered:
            raise NotAcceptable(available_renderers=renderers)
        return super().select_renderer(request, offered, format_suffix)

    def get_accept_list(self, request: Any) -> list[str]:
        # (an Accept header with nothing in it is no preference, as if it were absent)
        ranges = [media_range for media_range in super().get_accept_list(request) if media_range]
        return ranges or ["*/*"]
