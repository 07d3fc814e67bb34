from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from tasks.models import Task


class Command(BaseCommand):
    help = (
        "Delete the tombstones of tasks deleted more than TOMBSTONE_RETENTION_DAYS ago. Sync "
        "tokens older than the retention get 410 Gone, so no client misses a purged deletion."
    )

    def handle(self, *args, **options):
        # One retention for both the purge and the 410 rule: a shorter purge would let a
        # still-valid token miss a deletion.
        days = settings.TOMBSTONE_RETENTION_DAYS
        cutoff = timezone.now() - timedelta(days=days)
        deleted, _ = Task.objects.filter(deleted_at__lt=cutoff).delete()
        self.stdout.write(f"Purged {deleted} tombstone(s) older than {days} days.")
