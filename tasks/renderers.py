import orjson
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer


class ORJSONRenderer(BaseRenderer):
    """JSON with orjson: the list route's rendering for a fraction of the standard library's
    CPU."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
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

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
