"""Keyset cursors over rows listed newest first by (created_at, id): a page's position is the
last (or, going back, the first) row it showed, so a page never repeats or skips a row while
rows arrive, however many share one `created_at` (a batch's messages all do).

A cursor is opaque to clients: base64url of JSON `[created_at, id]` (forward) or
`[created_at, id, "p"]` (the page before)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

INVALID_CURSOR = "This cursor is not one this API gave."
# the longest cursor this API gives (a timestamp and an 18-digit id, encoded), with room
MAX_CURSOR_CHARS = 200
_BACKWARD = "p"

Row = TypeVar("Row", bound=Model)


class BadCursor(ValueError):
    def __init__(self) -> None:
        super().__init__(INVALID_CURSOR)


@dataclass(frozen=True)
class Position:
    created_at: datetime
    pk: Any
    backward: bool = False


@dataclass
class KeysetPage(Generic[Row]):
    rows: list[Row]
    # where the page after / before this one starts (None: there is none)
    after: Position | None
    before: Position | None


def encode(position: Position) -> str:
    parts: list[Any] = [position.created_at.isoformat(), position.pk]
    if position.backward:
        parts.append(_BACKWARD)
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode(cursor: str, pk_type: type) -> Position:
    """The position a cursor names; BadCursor for anything this API did not give (a position
    that cannot be compared with the rows' keys is refused here, never by the database)."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) not in (2, 3):
            raise ValueError
        when = parse_datetime(parts[0]) if isinstance(parts[0], str) else None
        pk = parts[1]
        backward = len(parts) == 3
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise BadCursor from None
    if when is None or timezone.is_naive(when) or type(pk) is not pk_type:
        raise BadCursor
    try:
        # (a time at the ends of the calendar in another offset has no UTC form: SQLite
        # compares in UTC and would fail on it)
        when = when.astimezone(UTC)
    except OverflowError:
        raise BadCursor from None
    if type(pk) is int and not 0 <= pk < 2**63:  # (past a bigint: a database error)
        raise BadCursor
    if backward and parts[2] != _BACKWARD:
        raise BadCursor
    return Position(when, pk, backward)


def page(rows: QuerySet[Row], position: Position | None, limit: int) -> KeysetPage[Row]:
    """One page of `rows` (newest first by created_at, then id) from `position`."""
    if position is None:
        found = list(rows.order_by("-created_at", "-pk")[: limit + 1])
        shown = found[:limit]
        return KeysetPage(shown, _after(shown) if len(found) > limit else None, None)
    when, pk = position.created_at, position.pk
    if position.backward:
        newer = rows.filter(Q(created_at__gt=when) | Q(created_at=when, pk__gt=pk))
        found = list(newer.order_by("created_at", "pk")[: limit + 1])
        shown = found[:limit][::-1]
        before = _before(shown) if len(found) > limit else None
        return KeysetPage(shown, _after(shown) if shown else None, before)
    older = rows.filter(Q(created_at__lt=when) | Q(created_at=when, pk__lt=pk))
    found = list(older.order_by("-created_at", "-pk")[: limit + 1])
    shown = found[:limit]
    after = _after(shown) if len(found) > limit else None
    return KeysetPage(shown, after, _before(shown) if shown else None)


def _after(shown: list[Model]) -> Position:
    last = shown[-1]
    return Position(last.created_at, last.pk)


def _before(shown: list[Model]) -> Position:
    first = shown[0]
    return Position(first.created_at, first.pk, backward=True)
