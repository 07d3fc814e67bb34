from django.apps import AppConfig
from django.conf import settings


class TasksConfig(AppConfig):
    name = "tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, lookups  # noqa: F401 -- register the system check and lookups

        if any(db["ENGINE"].endswith("postgresql") for db in settings.DATABASES.values()):
            from . import postgresql

            postgresql.install()
