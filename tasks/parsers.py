from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is over {settings.MAX_REQUEST_BODY_BYTES / 2**20:g} MiB."
    default_code = "request_too_large"


class JSONObjectParser(BaseParser):
    """A JSON object body, at most `MAX_REQUEST_BODY_BYTES` long (413 beyond, before reading it)."""

    media_type = "application/json"

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        limit = settings.MAX_REQUEST_BODY_BYTES
        request = parser_context["request"]  # type: ignore[index]  # DRF always passes it
        try:
            declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared_length = 0
        if declared_length > limit:
            raise RequestBodyTooLarge()
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise RequestBodyTooLarge()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ParseError("The request body must be a JSON object.")
        return data
