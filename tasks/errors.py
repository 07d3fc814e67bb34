"""What the domain refuses, without HTTP: services raise these, and tasks.exceptions' handler
gives each its answer (status, code, detail, attr)."""


class TaskError(Exception):
    """A task operation the rules refuse; nothing was written."""

    code: str
    message: str
    field: str | None = None  # the request field at fault, if one is

    def __init__(self) -> None:
        super().__init__(self.message)


class PreconditionFailed(TaskError):
    code = "precondition_failed"
    message = "The task has changed since that ETag was read (If-Match)."


class TaskLimitReached(TaskError):
    code = "task_limit_reached"
    message = "You have reached the maximum number of tasks."


class RecurrenceNeedsDueAt(TaskError):
    """The database's `tasks_recurrence_needs_due_at` check refused the write."""

    code = "recurrence_needs_due_at"
    message = "A recurring task needs a due_at: send one, or keep the one it has."


class IdempotencyKeyReused(TaskError):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used with a different request body."


class MovedAfterItself(TaskError):
    code = "invalid"
    message = "A task cannot be moved after itself."
    field = "after"
