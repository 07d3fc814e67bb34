from typing import Any


class NoAuthTablesRouter:
    """Keep `django.contrib.auth` and `contenttypes` tables out of the database.

    simplejwt imports both apps, so they are installed; the user exists only as the token's
    `sub`, so none of their tables may exist.
    """

    excluded_app_labels = frozenset({"auth", "contenttypes"})

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label in self.excluded_app_labels:
            return False
        return None
