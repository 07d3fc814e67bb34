from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tasks.management.commands import NO_USER_TABLE


class Command(BaseCommand):
    help = f"Not available: {NO_USER_TABLE}"

    def handle(self, *args: Any, **options: Any) -> None:
        raise CommandError(f"changepassword: {NO_USER_TABLE}")
