from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class ORJSONRenderer(BaseRenderer):
    """JSON with orjson: the list route's rendering for a fraction of the standard library's
    CPU."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        # The browsable API asks for indented JSON; clients get it compact.
        indent = (renderer_context or {}).get("indent")
        # `str` covers lazy translation strings in error details.
        return orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2 if indent else 0)


class ContentNegotiation(DefaultContentNegotiation):
    """With one renderer (JSON, in production) that is the answer, whatever `Accept` says (a
    server may disregard it, RFC 9110 §12.5.1): no parsing of the header per request. With the
    browsable API (DEBUG) the client's `Accept` chooses, as in DRF."""

    # DRF's stubs say any iterable; DRF passes the view's list of renderers.
    def select_renderer(  # type: ignore[override]
        self,
        request: Request,
        renderers: Sequence[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type
        selected: tuple[BaseRenderer, str] = super().select_renderer(
            request, renderers, format_suffix
        )
        return selected
