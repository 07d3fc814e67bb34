"""`Idempotency-Key` on the creates (`POST /v1/tasks`, `POST /v1/lists`): a retry with the same
key (per user, for 24 h) replays the first 201 response and creates nothing; the same key with
another body is refused.

The key's row holds that response, so it is written here, beside the view that answers, not by
the services (which know no HTTP).
"""

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from django.db import IntegrityError
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from . import in_doubt
from .errors import IdempotencyKeyReused
from .models import IDEMPOTENCY_KEY_MAX_LENGTH, IdempotencyKey

IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)


def request_key(request: Request) -> str | None:
    """The request's `Idempotency-Key`, if it sends one (422 unless it has an acceptable
    length)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise ValidationError(
            {"Idempotency-Key": [f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters."]}
        )
    return key


def request_fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create_idempotent(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    create: Callable[[], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Run `create` once per (user, key) within 24 h; returns (response, replayed).

    The key row is inserted in the same transaction as the task, so a concurrent duplicate
    waits on the unique index, then fails and replays the committed response: exactly one task
    is created. The same key with a different body is IdempotencyKeyReused.
    """
    IdempotencyKey.objects.filter(
        user_id=user_id, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_KEY_LIFETIME
    ).delete()

    def created() -> IdempotencyKey:
        record = IdempotencyKey.objects.create(
            user_id=user_id, key=key, request_fingerprint=fingerprint
        )
        record.response = create()
        record.save(update_fields=["response"])
        return record

    def stamp_of(record: IdempotencyKey) -> in_doubt.Stamp:
        keys = IdempotencyKey.objects.filter(user_id=user_id, key=key)
        return in_doubt.Stamp(keys, record.created_at, "created_at")

    try:
        return in_doubt.atomic(created, stamp_of).response, False
    except IntegrityError:
        record = IdempotencyKey.objects.get(user_id=user_id, key=key)
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return record.response, True
