from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, register

from .throttling import parse_rate


@register()
def rate_limit_is_valid(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[Error]:
    """A RATE_LIMIT that cannot be read would otherwise fail every request."""
    try:
        parse_rate(settings.RATE_LIMIT)
    except ValueError as exc:
        return [Error(f"RATE_LIMIT: {exc}", id="tasks.E001")]
    return []
