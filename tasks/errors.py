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

    def __init__(self, limit: int) -> None:
        self.message = f"You have reached the maximum of {limit} tasks: delete some first."
        super().__init__()


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


class ListLimitReached(TaskError):
    code = "list_limit_reached"

    def __init__(self, limit: int) -> None:
        self.message = f"You have reached the maximum of {limit} lists: delete one first."
        super().__init__()


class DefaultListUndeletable(TaskError):
    code = "default_list"
    message = "The default list cannot be deleted (rename it, or delete its tasks)."


class ParentInOtherList(TaskError):
    code = "parent_in_other_list"
    message = "A subtask is in its parent's list: leave list_id out, or send the parent's."
    field = "list_id"


class Cycle(TaskError):
    code = "cycle"
    message = "A task cannot be a subtask of itself or of one of its own subtasks."
    field = "parent_id"


class TooDeep(TaskError):
    code = "too_deep"
    field = "parent_id"

    def __init__(self, levels: int) -> None:
        self.message = f"Subtasks go at most {levels} levels deep (a top-level task is level 1)."
        super().__init__()


class RecurringTaskInTree(TaskError):
    """A recurring task has neither a parent nor subtasks; `field`: what the request set."""

    code = "recurring_task_in_tree"

    def __init__(self, field: str) -> None:
        self.field = field
        self.message = (
            "A recurring task cannot have a parent or subtasks."
            if field == "parent_id"
            else "Only a task without a parent or subtasks can recur."
        )
        super().__init__()


class NotASibling(TaskError):
    code = "not_a_sibling"
    message = "`after` must be a task under the same parent, in the same list, as the moved task."
    field = "after"


class ReferenceNotFound(TaskError):
    """A task or list that the body names (`field`) is missing or another user's: a 404 that
    says which id it is about (the same answer either way)."""

    code = "not_found"

    def __init__(self, field: str, kind: str = "task") -> None:
        self.field = field
        self.message = f"No {kind} of yours has the id in `{field}`."
        super().__init__()
