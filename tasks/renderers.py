import orjson
from rest_framework.renderers import BaseRenderer


class ORJSONRenderer(BaseRenderer):
    """JSON with orjson: several times faster than the standard library on the list route."""

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
