from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks.authentication import issue_token


class Command(BaseCommand):
    help = (
        "Print a bearer token for USER_ID: HS256, signed with BETTER_AUTH_SECRET, as Better "
        "Auth's would be in HS256 mode. For development and tests; in production the frontend "
        "gets its tokens from Better Auth."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "user_id", help="The user the token is for: its `sub`, the owner of the tasks."
        )
        parser.add_argument(
            "--ttl",
            type=int,
            default=3600,
            help="Seconds until the token expires (default: %(default)s, one hour).",
        )

    def handle(self, *args: Any, user_id: str, ttl: int, **options: Any) -> None:
        if not settings.BETTER_AUTH_SECRET:
            raise CommandError("BETTER_AUTH_SECRET is not set: there is no key to sign with.")
        if not user_id.strip():
            raise CommandError("USER_ID must not be empty.")
        if ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds.")
        self.stdout.write(issue_token(user_id, ttl_seconds=ttl))
