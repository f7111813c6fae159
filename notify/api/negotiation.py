"""Content negotiation that honours `q=0`: RFC 9110 (12.4.2) makes a media range with quality
0 "not acceptable", which DRF's negotiation ignores (it reads the order of precedence only).
`Accept: application/json;q=0` is therefore a 406, not JSON."""

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.mediatypes import _MediaType


def _refused(media_range: str) -> bool:
    quality = _MediaType(media_range).params.get("q", "")
    try:
        return float(quality) == 0
    except ValueError:
        return False  # (an unreadable quality: the range is taken, as DRF takes it)


class QualityAwareNegotiation(DefaultContentNegotiation):
    def get_accept_list(self, request: Any) -> list[str]:
        # (an Accept header with nothing in it is no preference, as if it were absent)
        ranges = [media_range for media_range in super().get_accept_list(request) if media_range]
        if not ranges:
            return ["*/*"]
        return [media_range for media_range in ranges if not _refused(media_range)]
