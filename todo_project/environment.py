"""Reading settings from the environment strictly: a value that cannot be read stops the service
with one line naming its variable, instead of a silent default, a traceback or a 500 later."""

import math
import warnings
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BOOLEANS = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off"), False),
}


class Env(environ.Env):  # type: ignore[misc]  # django-environ ships no types
    """django-environ's `Env` with strict casts: booleans are one of `BOOLEANS` (django-environ
    reads anything else as false), numbers are plain decimals (it drops letters from a float),
    and every failure is an `ImproperlyConfigured` that names the variable."""

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        try:
            return super().get_value(var, cast, default, parse_default)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{var}: {exc}") from exc

    @classmethod
    def parse_value(cls, value: str, cast: Any) -> Any:
        if cast is bool:
            if value.strip().lower() not in BOOLEANS:
                raise ValueError(f"{value!r} is not one of {', '.join(BOOLEANS)}")
            return BOOLEANS[value.strip().lower()]
        if cast is int or cast is float:
            try:
                number = cast(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise ValueError(f"{value!r} is not a number")
            return number
        return super().parse_value(value, cast)

    def int(self, var: str, default: Any = environ.Env.NOTSET, *, minimum: int = 0) -> int:
        """An integer of at least `minimum`."""
        value: int = super().int(var, default)
        if value < minimum:
            raise ImproperlyConfigured(f"{var}: must be at least {minimum}, not {value}")
        return value

    def http_url(self, var: str) -> str | None:
        """An `http://` or `https://` URL with a host, without its trailing slash; None if unset."""
        value: str = self.str(var, default="").rstrip("/")
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImproperlyConfigured(f"{var}: not an http(s) URL with a host")
        return value

    def db_url(
        self,
        var: str = environ.Env.DEFAULT_DATABASE_ENV,
        default: Any = environ.Env.NOTSET,
        engine: str | None = None,
    ) -> dict[str, Any]:
        # The message never repeats the URL: it may hold a password (django-environ's own
        # warning about an unknown scheme prints it whole, hence silenced).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                config: dict[str, Any] = super().db_url(var, default, engine)
            except ValueError as exc:
                raise ImproperlyConfigured(f"{var}: not a database URL ({exc})") from None
        if not config.get("ENGINE"):
            raise ImproperlyConfigured(f"{var}: not a database URL (scheme://…)")
        return config

    db = db_url
