"""Load PostgreSQL timestamps with psycopg's C loader.

Django registers its own timestamptz loader on every connection, a Python subclass of
psycopg's pure-Python one that only resets the time zone; on the list route (four timestamp
columns a row, 50 rows a page) that parsing was the largest single cost. Django sets the
session time zone to UTC (USE_TZ), so the C loader returns the same instants; the class keeps
Django's `timezone` attribute so that Django sees its own time zone and adds nothing per cursor.
"""

import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from psycopg import adapters
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.postgres import types
from psycopg.pq import Format

TIMESTAMPTZ_OID = types["timestamptz"].oid


# psycopg always registers it (its C one when the binary package is installed).
C_TIMESTAMPTZ_LOADER: type[Loader] = adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)  # type: ignore[assignment]


class UTCTimestamptzLoader(Loader):
    """psycopg's C loader (it cannot be subclassed), with the `timezone` Django looks for."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self.load = C_TIMESTAMPTZ_LOADER(oid, context).load  # type: ignore[method-assign]

    def load(
        self, data: Buffer
    ) -> datetime.datetime:  # replaced per instance by the C loader's bound method
        raise NotImplementedError


def use_c_timestamp_loader(
    sender: type[BaseDatabaseWrapper], connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    if connection.vendor == "postgresql" and connection.timezone == datetime.UTC:
        connection.connection.adapters.register_loader("timestamptz", UTCTimestamptzLoader)


def install() -> None:
    connection_created.connect(use_c_timestamp_loader, dispatch_uid="tasks.c_timestamp_loader")
