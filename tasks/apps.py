from django.apps import AppConfig
from django.conf import settings


class TasksConfig(AppConfig):
    name = "tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from . import checks, lookups  # noqa: F401 -- register the system check and lookups
        from .memory import collect_now_and_then

        request_finished.connect(collect_now_and_then, dispatch_uid="tasks.memory")

        if any(db["ENGINE"].endswith("postgresql") for db in settings.DATABASES.values()):
            from . import postgresql

            postgresql.install()
