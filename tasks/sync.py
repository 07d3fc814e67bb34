"""Incremental sync: `GET /v1/tasks/changes?since=<token>`.

Every write stamps the row with `change_seq` (see statements.NextChangeSeq), deletes leave
tombstones, and a page of changes is the caller's rows after the token's `(change_seq, id)`,
oldest first. On PostgreSQL `change_seq` is the writing transaction's id, and only rows below
the oldest transaction still in progress are handed out: a transaction that started earlier
but commits later is still ahead of every token, so its change is never skipped. Tokens carry
the time they were issued; one older than the tombstone retention is 410 Gone (the deletions it
would need may have been purged), telling the client to resync from scratch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from . import selectors, statements
from .models import Task, TaskList
from .signing import SignedJSON

SYNC_TOKENS = SignedJSON(salt="tasks.sync.token")
MAX_CHANGE_SEQ = 2**63 - 1  # a bigint
# Clocks of the instances that issue and read a token may differ a little.
ISSUED_AT_LEEWAY_SECONDS = 300


class SyncTokenExpired(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "This sync token is older than the tombstone retention: resync from scratch."
    default_code = "sync_token_expired"


@dataclass(frozen=True)
class SyncToken:
    change_seq: int = 0
    last_id: str = ""
    issued_at: float = 0.0

    def encode(self) -> str:
        return SYNC_TOKENS.encode(
            {"s": self.change_seq, "i": self.last_id, "t": int(self.issued_at)}
        )

    @classmethod
    def decode(cls, raw: str) -> SyncToken:
        try:
            payload = SYNC_TOKENS.decode(raw)
            token = cls(payload["s"], payload["i"], payload["t"])
            # Exactly what encode() writes: a signature proves who made a token, not its shape.
            if not (
                _is_int(token.change_seq, 0, MAX_CHANGE_SEQ)
                and _is_int(token.issued_at, 0, time.time() + ISSUED_AT_LEEWAY_SECONDS)
                and isinstance(token.last_id, str)
            ):
                raise ValueError
            if token.last_id:
                uuid.UUID(token.last_id)
        except (ValueError, TypeError, KeyError):
            raise ValidationError({"since": ["Invalid sync token."]}, code="invalid") from None
        retention = settings.TOMBSTONE_RETENTION_DAYS * 86400
        if time.time() - token.issued_at > retention:
            raise SyncTokenExpired()
        return token


def _is_int(value: object, low: float, high: float) -> bool:
    return type(value) is int and low <= value <= high


def changes_page(*, user_id: str, since: SyncToken, page_size: int) -> tuple[list[Task], bool]:
    """The caller's next `page_size` changed rows after `since`, oldest change first; and
    whether more are waiting."""
    after = (since.change_seq, uuid.UUID(since.last_id)) if since.last_id else None
    rows = selectors.task_changes(user_id=user_id, after=after, limit=page_size + 1)
    return rows[:page_size], len(rows) > page_size


def all_changes_page(
    *, user_id: str, since: SyncToken, page_size: int
) -> tuple[list[Task | TaskList], bool]:
    """As `changes_page`, for lists and tasks together: one order, (change_seq, id), over both
    (ids are unique across them), so one token marks a place in both. Both reads stop at the
    same horizon: a transaction that commits between them is in neither or in both."""
    after = (since.change_seq, uuid.UUID(since.last_id)) if since.last_id else None
    limit, horizon = page_size + 1, statements.change_horizon()
    rows: list[Task | TaskList] = [
        *selectors.list_changes(user_id=user_id, after=after, limit=limit, horizon=horizon),
        *selectors.task_changes(user_id=user_id, after=after, limit=limit, horizon=horizon),
    ]
    rows.sort(key=lambda row: (row.change_seq, row.id))
    return rows[:page_size], len(rows) > page_size


def next_token(rows: Sequence[Task | TaskList], since: SyncToken, has_more: bool) -> SyncToken:
    """The token after `rows`. While pages remain, it keeps the time the feed began: a client
    that stops half-way must not look up to date when the retention check is made."""
    issued_at = since.issued_at if has_more and since.issued_at else time.time()
    if not rows:
        return SyncToken(since.change_seq, since.last_id, issued_at)
    return SyncToken(rows[-1].change_seq, str(rows[-1].id), issued_at)
