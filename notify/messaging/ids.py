"""Message and batch IDs in the legacy shape: 18 decimal digits, `yyMMddHHmmss` (Asia/Shanghai)
followed by a 6-digit sequence.

The old gateway numbers each second from 000001 upwards and in ten years never came near
500000 in one second, so this platform takes 500000-999999: an ID issued here can never equal
one the old gateway issued, even while both run side by side during a migration. The sequence
comes from one counter shared by all processes (a PostgreSQL SEQUENCE, or a counter row on
SQLite), so two processes never hand out the same ID within a second unless 500000 IDs are
issued in that second.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from notify.db import prepared_cursor

SEQUENCE_BASE = 500_000
SEQUENCE_SPAN = 500_000
PG_SEQUENCE_NAME = "messaging_message_id_seq"


def _counter_values(count: int) -> list[int]:
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            cursor.execute(
                f"SELECT nextval('{PG_SEQUENCE_NAME}') FROM generate_series(1, %s)", [count]
            )
            return [row[0] for row in cursor.fetchall()]
    from notify.messaging.models import IdCounter

    with transaction.atomic():
        IdCounter.objects.get_or_create(name="message")
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE messaging_idcounter SET value = value + %s WHERE name = 'message' "
                "RETURNING value",
                [count],
            )
            last = cursor.fetchone()[0]
    return list(range(last - count + 1, last + 1))


def legacy_now() -> datetime:
    return datetime.now(ZoneInfo(settings.LEGACY_TIME_ZONE))


def allocate_ids(count: int, *, at: datetime | None = None) -> list[str]:
    """Returns `count` new IDs, in increasing order within the second."""
    if count <= 0:
        return []
    stamp = (at or legacy_now()).astimezone(ZoneInfo(settings.LEGACY_TIME_ZONE))
    second = stamp.strftime("%y%m%d%H%M%S")
    return [
        f"{second}{SEQUENCE_BASE + value % SEQUENCE_SPAN:06d}" for value in _counter_values(count)
    ]


def next_id_sql() -> tuple[str, list[str]]:
    """PostgreSQL: an SQL expression (and its parameters) that allocates one new ID where a
    statement needs it, as `allocate_ids(1)` does (the same clock zone, the same sequence),
    so an insert can take its ID without a round trip of its own."""
    return (
        "to_char(clock_timestamp() AT TIME ZONE %s, 'YYMMDDHH24MISS') || "
        f"lpad(({SEQUENCE_BASE} + nextval('{PG_SEQUENCE_NAME}') %% {SEQUENCE_SPAN})::text, 6, '0')",
        [settings.LEGACY_TIME_ZONE],
    )


def is_message_id(value: str) -> bool:
    return len(value) == 18 and value.isascii() and value.isdigit()
