"""Writes whose commit was in doubt: the connection to PostgreSQL died after the statement (or
the COMMIT) was sent and before its answer came, so it may or may not have been applied (after a
failover: it is on the new primary if it reached the synchronous standby). The service finds out
on a new connection instead of guessing, so that every answer to a write is the truth:

- the write landed: the answer is what it wrote (2xx), as if the answer had come;
- it did not: the database error stands, a 503 `database_unavailable` that means "not applied,
  retry";
- it cannot be told (the database is still unreachable after RESOLVE_WITHIN_SECONDS, or a later
  write has since changed the same rows): a 503 `write_outcome_unknown`.

How a write is recognised: every write stamps the rows it changes with a timestamp the service
took (`updated_at`, to the microsecond; `created_at` for an idempotency key), and knows which
rows those are (a task id, or the owner's rows). A transaction's id would not do: a promoted
standby that never received a transaction's records hands its id out again. The happy path
costs nothing: the lookup runs only after a connection was lost.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from rest_framework import status
from rest_framework.exceptions import APIException

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Well within gunicorn's 30 s worker timeout, even with a connect attempt (DATABASE_CONNECT_TIMEOUT
# per host) started just before the bound; long enough for a standby's promotion.
RESOLVE_WITHIN_SECONDS = 8.0
RECONNECT_INTERVAL_SECONDS = 0.2


class WriteOutcomeUnknown(APIException):
    """The write may or may not have been applied; read the task before retrying it."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The database connection was lost while this write was being committed, and whether it "
        "was applied could not be determined; read the task before retrying."
    )
    default_code = "write_outcome_unknown"


@dataclass(frozen=True)
class Stamp:
    """What a write leaves behind: `field` = `value` on the rows of `rows` it changed."""

    rows: QuerySet[Any]
    value: datetime
    field: str = "updated_at"

    def written(self) -> list[Any] | None:
        """The rows as this write left them; None if it was not applied. Raises
        WriteOutcomeUnknown when a later write (a newer stamp) may have replaced its own."""
        found = list(self.rows.filter(**{f"{self.field}__gte": self.value}))
        written = [row for row in found if getattr(row, self.field) == self.value]
        if written:
            return written
        if found:
            raise WriteOutcomeUnknown()
        return None


def statement(
    write: Callable[[], T], stamp: Callable[[], Stamp], answer: Callable[[list[Any]], T]
) -> T:
    """`write()`, one autocommitted statement that stamps the rows of `stamp()`. If the
    connection died while it was in flight: `answer(rows as written)` if it was applied, else
    the error."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block:  # part of a transaction: its COMMIT is what can be in doubt
        return write()
    _drop_if_closed_by_server(connection)
    try:
        return write()
    except DatabaseError:
        # Without a connection, connecting failed: the statement was never sent.
        if connection.connection is None or not _lost(connection):
            raise
        written = _looked_up(stamp())
        if written is None:
            raise
        return answer(written)


def atomic(block: Callable[[], T], stamp_of: Callable[[T], Stamp]) -> T:
    """`block()` in one transaction (a savepoint inside another). If the connection died while
    its COMMIT was in flight: its result if `stamp_of(result)` shows it was applied, else the
    error."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block:
        with transaction.atomic():
            return block()
    _drop_if_closed_by_server(connection)
    result: list[T] = []
    try:
        with transaction.atomic():
            result.append(block())
    except DatabaseError:
        # An error before the COMMIT rolled everything back: nothing is in doubt.
        if not result or not _lost(connection):
            raise
        if _looked_up(stamp_of(result[0])) is None:
            raise
    return result[0]


def _drop_if_closed_by_server(connection: BaseDatabaseWrapper) -> None:
    """Close a kept connection that the server closed while it was idle (after a failover,
    every kept connection): it is readable (end of file, or the server's farewell). A write sent
    on it could not arrive, yet would look in doubt; on a new connection it is sent to the new
    primary, or fails to connect, which is a plain 503. A poll, not a query."""
    raw = connection.connection
    if raw is None or connection.vendor != "postgresql" or raw.closed:
        return
    readable, _, _ = select.select([raw.fileno()], [], [], 0)
    if readable:
        connection.close()


def _lost(connection: BaseDatabaseWrapper) -> bool:
    """Whether the connection broke (Django closes it when the COMMIT's rollback also fails)."""
    return connection.vendor == "postgresql" and (
        connection.connection is None or connection.connection.broken
    )


def _looked_up(stamp: Stamp) -> list[Any] | None:
    """`stamp.written()` on a new connection (libpq's `target_session_attrs` finds the primary),
    retried until RESOLVE_WITHIN_SECONDS have passed."""
    connection = connections[DEFAULT_DB_ALIAS]
    deadline = time.monotonic() + RESOLVE_WITHIN_SECONDS
    while True:
        connection.close()
        try:
            written = stamp.written()
        except DatabaseError as error:
            if time.monotonic() >= deadline:
                logger.warning("Commit in doubt, database still unreachable: %s", error)
                raise WriteOutcomeUnknown() from error
            time.sleep(RECONNECT_INTERVAL_SECONDS)
            continue
        logger.warning(
            "Commit in doubt resolved: %s", "applied" if written is not None else "not applied"
        )
        return written
