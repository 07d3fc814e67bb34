from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from tasks.models import Task, TaskList


class Command(BaseCommand):
    help = (
        "Delete the tombstones of tasks and lists deleted more than TOMBSTONE_RETENTION_DAYS "
        "ago. Sync tokens older than the retention get 410 Gone, so no client misses a purged "
        "deletion."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # One retention for both the purge and the 410 rule: a shorter purge would let a
        # still-valid token miss a deletion.
        days = settings.TOMBSTONE_RETENTION_DAYS
        cutoff = timezone.now() - timedelta(days=days)
        deleted = 0
        for model in (Task, TaskList):
            # Each user's newest row stays: on SQLite the next change_seq is the owner's max
            # + 1, and purging the max would let a change reuse a number a token has seen.
            rows = model.all_objects.filter(user_id=OuterRef("user_id"))
            newest = rows.order_by("-change_seq", "-id").values("pk")[:1]
            purged, _ = (
                model.all_objects.filter(deleted_at__lt=cutoff)
                .exclude(pk__in=Subquery(newest))
                .delete()
            )
            deleted += purged
        self.stdout.write(f"Purged {deleted} tombstone(s) older than {days} days.")
