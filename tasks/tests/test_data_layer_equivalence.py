"""Compiled SQL (tasks.statements.run_compiled) reads and writes what the plain ORM does, shape by
shape, over generated tasks: every list ordering's first page and cursor pages (forwards and
backwards, at null and non-null due dates), the lookup by id, each UPDATE (toggle, PUT/PATCH
field sets, If-Match with 0..n versions, the delete's tombstone) and the INSERT of a create."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import services, statements
from tasks.models import Task, TaskList
from tasks.selectors import ORDERINGS

PROFILE = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIELDS = [field.attname for field in Task._meta.concrete_fields]
# Few distinct values, so that ties (which the id breaks) are common.
TIMES = st.sampled_from([NOW - timedelta(days=n, microseconds=n) for n in range(3)])
DUE = st.none() | TIMES
TEXT = st.text(alphabet="ab é", max_size=5)

rows = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from(["alice", "alice", "bob"]),
        "title": TEXT,
        "completed": st.booleans(),
        "created_at": TIMES,
        "updated_at": TIMES,
        "due_at": DUE,
        "priority": st.integers(0, 3),
        "position": st.sampled_from(["", "a", "b"]),
        "deleted_at": st.none() | st.just(NOW),
    }
)
# Alice always has a task due and one not due, so cursors sit on both kinds.
ALWAYS = [
    {"user_id": "alice", "title": "due", "due_at": NOW, "created_at": NOW, "updated_at": NOW},
    {"user_id": "alice", "title": "not due", "created_at": NOW, "updated_at": NOW},
]


def stored(given: list[dict]) -> list[Task]:
    tasks = Task.all_objects.bulk_create([Task(**fields) for fields in ALWAYS + given])
    for task, fields in zip(tasks, ALWAYS + given, strict=True):
        task.updated_at = fields["updated_at"]  # bulk_create stamped `auto_now`
    Task.all_objects.bulk_update(tasks, ["updated_at"])
    return tasks


def contents(tasks: list[Task]) -> list[list]:
    return [[getattr(task, name) for name in FIELDS] for task in tasks]


def table() -> list[list]:
    return contents(list(Task.all_objects.order_by("id")))


class Undo(Exception):
    pass


def undone(run) -> tuple:
    """What `run()` returned (or raised) and what it left stored; then all of it is undone."""
    try:
        with transaction.atomic():
            raise Undo(contents(run()), table())
    except Undo as undo:
        return undo.args
    except IntegrityError:
        return (IntegrityError, None)


@pytest.mark.django_db
@PROFILE
@given(given=st.lists(rows, max_size=8), limit=st.integers(1, 4))
def test_every_page_shape_reads_the_rows_the_orm_reads(given, limit):
    with transaction.atomic():
        stored(given)
        alices = list(Task.all_objects.for_user("alice"))
        for keys in ORDERINGS.values():
            for reverse in (False, True):
                shape = statements.PageShape(
                    tuple(key.flipped() for key in keys) if reverse else keys, limit
                )
                # The first page, then a cursor at each of alice's tasks.
                positions = [{}] + [{k.field: getattr(t, k.field) for k in keys} for t in alices]
                for values in positions:
                    compiled = statements.run_compiled(
                        statements.page, shape, user_id="alice", **values
                    )
                    orm = statements.run_orm(
                        statements.page, shape, Task.all_objects.for_user("alice"), **values
                    )
                    assert contents(compiled) == contents(orm), (shape, values)
        transaction.set_rollback(True)


@pytest.mark.django_db
@PROFILE
@given(given=st.lists(rows, max_size=8))
def test_the_lookup_by_id_reads_the_row_the_orm_reads(given):
    with transaction.atomic():
        tasks = stored(given)
        for pk in [task.pk for task in tasks] + [uuid.uuid4()]:
            compiled = statements.run_compiled(statements.by_pk, None, user_id="alice", pk=pk)
            orm = statements.run_orm(
                statements.by_pk, None, Task.all_objects.for_user("alice"), pk=pk
            )
            assert contents(compiled) == contents(orm)
        transaction.set_rollback(True)


CHANGES = {
    "title": TEXT,
    "details": TEXT,
    "completed": st.booleans() | st.just(~F("completed")),
    "due_at": DUE,
    "priority": st.integers(0, 3),
    "labels": st.lists(TEXT, max_size=2),
    "position": st.sampled_from(["", "a"]),
    "recurrence": st.sampled_from(["", "FREQ=DAILY"]),
    "deleted_at": st.just(NOW),
}


@st.composite
def change_sets(draw) -> list[dict]:
    """Changes to the same fields, several times: a later one reuses the SQL compiled for an
    earlier one when their None, boolean and expression values agree, and must not otherwise."""
    names = sorted(draw(st.sets(st.sampled_from(sorted(CHANGES)))))
    if draw(st.booleans()):
        return [services.TOMBSTONE | {"deleted_at": NOW}]
    return [{name: draw(CHANGES[name]) for name in names} for _ in range(3)]


@pytest.mark.django_db
@PROFILE
@given(
    given=st.lists(rows, max_size=4),
    target=st.integers(0, 5),
    change_sets=change_sets(),
    non_recurring=st.booleans(),
    versions=st.lists(st.integers(1, 3), max_size=3, unique=True),
)
def test_every_update_shape_writes_what_the_orm_writes(
    given, target, change_sets, non_recurring, versions
):
    with transaction.atomic():
        tasks = stored(given)
        pk = tasks[target % len(tasks)].pk
        shape = statements.UpdateShape(non_recurring=non_recurring, versions=len(versions))
        for changes in change_sets:
            values = {
                "pk": pk,
                "updated_at": NOW,
                **changes,
                **{f"version__{i}": version for i, version in enumerate(versions)},
            }
            compiled = undone(
                lambda values=values: statements.run_compiled(
                    statements.update, shape, user_id="alice", **values
                )
            )
            orm = undone(
                lambda values=values: statements.run_orm(
                    statements.update, shape, Task.all_objects.for_user("alice"), **values
                )
            )
            assert compiled == orm, changes
        transaction.set_rollback(True)


@pytest.mark.django_db
@PROFILE
@given(
    given=st.lists(rows, max_size=4),
    fields=st.fixed_dictionaries(
        {"title": TEXT},
        optional={
            "details": TEXT,
            "completed": st.booleans(),
            "due_at": DUE,
            "priority": st.integers(0, 3),
            "labels": st.lists(TEXT, max_size=2),
            "recurrence": st.sampled_from(["", "FREQ=DAILY"]),
        },
    ),
    limit=st.integers(1, 8),
)
def test_the_create_inserts_what_the_orm_inserts(monkeypatch, given, fields, limit):
    monkeypatch.setattr(timezone, "now", lambda: NOW)  # `updated_at` is `auto_now`
    fields = {"id": uuid.uuid4(), "user_id": "alice", "created_at": NOW, **fields}
    with transaction.atomic():
        stored(given)
        fields["list_id"] = TaskList.all_objects.create(user_id="alice", title="Tasks").pk

        def orm_create() -> list[Task]:
            if Task.all_objects.for_user("alice").count() >= limit:
                return []
            change_seq = statements.NextChangeSeq(models.Value("alice"))
            task = Task.all_objects.create(**fields, change_seq=change_seq)
            return [Task.all_objects.get(pk=task.pk)]

        def compiled_create() -> list[Task]:
            task = statements.insert_within_limit(limit=limit, **fields)
            return [] if task is None else [Task.all_objects.get(pk=task.pk)]

        assert undone(compiled_create) == undone(orm_create)
        transaction.set_rollback(True)


# --- Placeholders and builders ---------------------------------------------------------------


THROWAWAY_FIELDS = [
    models.BigIntegerField(),
    models.BinaryField(),
    models.CharField(max_length=10),
    models.DateField(),
    models.DateTimeField(),
    models.DecimalField(max_digits=5, decimal_places=2),
    models.DurationField(),
    models.EmailField(),
    models.FloatField(),
    models.GenericIPAddressField(),
    models.IntegerField(),
    models.JSONField(),
    models.PositiveBigIntegerField(),
    models.PositiveIntegerField(),
    models.PositiveSmallIntegerField(),
    models.SlugField(),
    models.SmallIntegerField(),
    models.TextField(),
    models.TimeField(),
    models.URLField(),
    models.UUIDField(),
]


@pytest.mark.parametrize(
    "field",
    [*Task._meta.concrete_fields, *THROWAWAY_FIELDS],
    ids=lambda field: field.name or type(field).__name__,
)
def test_every_field_type_has_a_placeholder_the_database_takes(field, db):
    if field.get_internal_type() in statements.SHAPED_TYPES:
        with pytest.raises(TypeError):
            statements.placeholder(field, connection, [])
        return
    value = statements.placeholder(field, connection, [])
    other = statements.placeholder(field, connection, [value])
    assert value != other
    field.get_db_prep_value(value, connection, prepared=False)
    if isinstance(field, models.DecimalField):
        assert value == Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places))


def test_a_field_type_without_a_placeholder_is_refused_at_compile_time(db):
    class Point(models.Field):
        def get_internal_type(self) -> str:
            return "PointField"

    with pytest.raises(TypeError, match="no placeholder for a PointField"):
        statements.placeholder(Point(), connection, [])


@pytest.mark.parametrize("builder", statements.BUILDERS, ids=lambda build: build.__name__)
def test_each_builder_can_use_nothing_but_its_arguments(builder):
    statements.check_builder(builder)
    assert builder.__closure__ is None and not builder.__defaults__


def captured_builder(title):
    def build(tasks, shape, *, pk):
        return tasks.filter(pk=pk, title=title)

    return build


def builder_with_default(tasks, shape, *, pk, title="x"):
    return tasks.filter(pk=pk, title=title)


def builder_of_another_module(tasks, shape, *, pk):
    return statements.by_pk(tasks, shape, pk=pk)


@pytest.mark.parametrize(
    "builder", [captured_builder("a"), builder_with_default, builder_of_another_module]
)
def test_a_builder_that_could_capture_a_value_is_refused(builder, db, monkeypatch):
    monkeypatch.setattr(statements, "_compiled", {})
    with pytest.raises(TypeError, match="is not a builder"):
        statements.run_compiled(builder, None, user_id="alice", pk=uuid.uuid4())


def test_a_compiler_fault_in_a_lookup_is_an_error_not_a_404(alice, make_task, monkeypatch):
    """Only an id that is not a UUID is a 404 before any query; a broken invariant of the
    compiled SQL must surface (a 500), not pass for a missing task."""
    task = make_task()
    monkeypatch.setattr(statements, "_compiled", {})

    def broken(*args):
        raise ValueError("'pk' is not a parameter of the query")

    monkeypatch.setattr(statements, "_compile", broken)
    alice.raise_request_exception = False
    assert alice.get(f"/v1/tasks/{task['id']}").status_code == 500
    assert alice.get("/v1/tasks/not-a-uuid").status_code == 404
