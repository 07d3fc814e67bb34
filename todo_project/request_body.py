"""WSGI middleware between gunicorn and Django for request bodies Django would mishandle.

- A chunked body (no Content-Length) is read here, at most `MAX_REQUEST_BODY_BYTES` + 1 bytes,
  and handed on with its length: Django reads only `CONTENT_LENGTH` bytes of `wsgi.input`, so it
  would see an empty body and, say, answer a chunked PATCH 200 without changing anything. One
  byte over the limit lets the parser answer 413 as it does for a declared length.
- The rest of a body the view did not read (a 401, 404 or 413 answers without reading it) is
  read and dropped, up to `UNREAD_BODY_DISCARD_BYTES`, before the answer goes out: gunicorn
  itself drops at most 64 KiB of it and then closes the connection, after an answer that said
  keep-alive. Bodies that may be longer than that are answered with `Connection: close`
  (`must_close`, from gunicorn.conf.py's `pre_request`), and reading them first still lets a
  client that sends the whole body before reading the answer see it.
"""

import io
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from django.conf import settings

UNREAD_BODY_DISCARD_BYTES = 8 * 1024 * 1024
READ_SIZE = 64 * 1024


def must_close(headers: list[tuple[str, str]]) -> bool:
    """Whether the connection must close after the answer to a request with these (gunicorn's
    upper-case) headers: its body's length is unknown (chunked) or over what is discarded."""
    for name, value in headers:
        if name == "TRANSFER-ENCODING":  # gunicorn refuses any coding other than chunked
            return True
        if name == "CONTENT-LENGTH" and int(value) > UNREAD_BODY_DISCARD_BYTES:
            return True
    return False


class RequestBodyMiddleware:
    """Chunked bodies read into memory (bounded), unread bodies discarded (bounded)."""

    def __init__(self, application: WSGIApplication) -> None:
        self.application = application

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        received = environ["wsgi.input"]
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = received.read(settings.MAX_REQUEST_BODY_BYTES + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        response = self.application(environ, start_response)
        discarded = 0
        while discarded < UNREAD_BODY_DISCARD_BYTES and (piece := received.read(READ_SIZE)):
            discarded += len(piece)
        return response
