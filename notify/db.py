"""Prepared statements for the delivery path's hottest SQL (PostgreSQL).

Django sends every statement with its values inlined (client-side binding), so PostgreSQL
parses and plans each one again: for the outcome of a send (one statement of three
data-modifying CTEs) that costs about as much CPU as running it. A statement run through
`prepared_cursor()` is bound on the server and prepared once per connection; later runs only
execute the plan (docs/architecture.md, "Where the CPU goes").

The cursor is Django's own wrapper around it, so execute wrappers see these statements like any
other; where queries are logged (DEBUG, a test capturing them) Django's own cursor runs them.
`NOTIFY_DB_PREPARED_STATEMENTS=0` turns it off where prepared statements cannot live on a
connection (PgBouncer in transaction pooling mode before 1.22, or without
`max_prepared_statements`)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

# psycopg prepares nothing while a connection's threshold is None (Django's setting, kept for
# everything else: with a number, psycopg would also keep the text of Django's own statements,
# values inlined, to count them); a threshold no statement reaches while one of ours runs
_ONLY_WHEN_ASKED = 2**31 - 1


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-binding cursor, preparing every statement it runs."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("prepare", True)
        raw = self.connection
        raw.prepare_threshold = _ONLY_WHEN_ASKED
        try:
            return super().execute(query, params, **kwargs)
        finally:
            raw.prepare_threshold = None


def prepared_cursor() -> Any:
    """A cursor whose statements are prepared on the server (PostgreSQL, unless turned off);
    Django's ordinary cursor otherwise. A context manager, like `connection.cursor()`. Values
    are bound by PostgreSQL, so each placeholder needs a type it can infer from its place."""
    if (
        connection.vendor != "postgresql"
        or not settings.NOTIFY_DB_PREPARED_STATEMENTS
        # a connection logging its queries (DEBUG, a test capturing them) gets Django's cursor:
        # Django can only log a server-bound statement's text as None
        or connection.queries_logged
    ):
        return connection.cursor()
    # as Django's own connection.cursor() does: a kept connection that died is replaced first
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparingCursor(connection.connection))
