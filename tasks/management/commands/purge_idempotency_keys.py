from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from tasks.idempotency import IDEMPOTENCY_KEY_LIFETIME
from tasks.models import IdempotencyKey


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than their 24-hour lifetime."

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - IDEMPOTENCY_KEY_LIFETIME
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"Purged {deleted} expired idempotency key(s).")
