"""Tokens the service hands out and reads back (list cursors, sync tokens): a JSON payload in
base64url, signed with SECRET_KEY under a salt of the token's kind, so that one kind is never
accepted as another. The signature proves who made a token, not what it holds: its reader checks
every field."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from django.core.signing import BadSignature, Signer


class InvalidToken(ValueError):
    """Not a token of this kind made by this service (or one changed since)."""


class SignedJSON:
    def __init__(self, salt: str) -> None:
        self.signer = Signer(salt=salt)

    def encode(self, payload: dict[str, Any]) -> str:
        encoded = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        return self.signer.sign(encoded)

    def decode(self, token: str) -> Any:
        try:
            encoded = self.signer.unsign(token)
            return orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (BadSignature, binascii.Error, ValueError) as exc:
            raise InvalidToken from exc
