import logging
from typing import Any

import orjson

# The attributes every LogRecord has; anything else was passed with `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `extra` fields.

    Only plain values are kept from `extra` (Django attaches the whole request to some records;
    it is never written, so no header, cookie or token can reach a log).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):  # the access log's line, built by the middleware
            entry.update(fields)
        else:
            for name, value in vars(record).items():
                if name not in _STANDARD_ATTRIBUTES and isinstance(value, str | int | float | None):
                    entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()
