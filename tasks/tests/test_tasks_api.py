"""The /v1/tasks routes: happy paths, validation and the error table of the contract."""

import datetime as dt
import re
import sys
import uuid
import zoneinfo
from datetime import datetime

import pytest
from django.conf import settings

from tasks.models import DETAILS_MAX_LENGTH, TITLE_MAX_LENGTH, Task
from tasks.parsing import WHITESPACE

MISSING_ID = "00000000-0000-0000-0000-000000000000"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, "timestamps carry an offset"
    return parsed


def test_create_returns_201_with_the_stored_task(alice):
    response = alice.post("/v1/tasks", {"title": "Buy milk", "details": "2 l"}, format="json")
    assert response.status_code == 201
    task = response.json()
    assert set(task) == {
        "id", "user_id", "title", "details", "completed", "created_at", "updated_at",
        "due_at", "completed_at", "priority", "labels", "position", "recurrence", "list_id",
        "parent_id",
    }  # fmt: skip
    assert uuid.UUID(task["id"])
    assert task["user_id"] == "alice"
    assert (task["title"], task["details"], task["completed"]) == ("Buy milk", "2 l", False)
    parse_time(task["created_at"]), parse_time(task["updated_at"])
    stored = Task.all_objects.get(pk=task["id"])
    assert (stored.user_id, stored.title, stored.details) == ("alice", "Buy milk", "2 l")


def test_create_trims_the_title_and_defaults_details_to_empty(alice):
    task = alice.post("/v1/tasks", {"title": "  Buy milk \n"}, format="json").json()
    assert task["title"] == "Buy milk"
    assert task["details"] == ""


def test_create_stores_null_details_as_empty(alice):
    task = alice.post("/v1/tasks", {"title": "x", "details": None}, format="json").json()
    assert task["details"] == ""


def test_create_accepts_completed_true(alice):
    assert alice.post("/v1/tasks", {"title": "x", "completed": True}, format="json").json()[
        "completed"
    ]


def test_read_only_fields_in_a_body_are_ignored(alice):
    sent = {
        "title": "x",
        "id": str(uuid.uuid4()),
        "user_id": "bob",
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    }
    task = alice.post("/v1/tasks", sent, format="json").json()
    assert task["id"] != sent["id"]
    assert task["user_id"] == "alice"
    assert not task["created_at"].startswith("2000")
    assert not task["updated_at"].startswith("2000")
    updated = alice.put(f"/v1/tasks/{task['id']}", sent, format="json").json()
    assert (updated["id"], updated["user_id"]) == (task["id"], "alice")
    assert updated["created_at"] == task["created_at"]


def test_list_returns_the_callers_tasks_newest_first(alice, make_task):
    first, second = make_task(title="first"), make_task(title="second")
    body = alice.get("/v1/tasks").json()
    assert [t["id"] for t in body["results"]] == [second["id"], first["id"]]
    assert body["next"] is None and body["previous"] is None


def test_list_filters_by_completed(alice, make_task):
    done = make_task(title="done", completed=True)
    open_ = make_task(title="open")
    assert [t["id"] for t in alice.get("/v1/tasks?completed=true").json()["results"]] == [
        done["id"]
    ]
    assert [t["id"] for t in alice.get("/v1/tasks?completed=false").json()["results"]] == [
        open_["id"]
    ]


@pytest.mark.parametrize("value", ["1", "0", "yes", "True", "FALSE", "", "null"])
def test_list_rejects_a_completed_filter_that_is_not_true_or_false(alice, value):
    response = alice.get("/v1/tasks", {"completed": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "completed"


def test_get_returns_the_task(alice, make_task):
    task = make_task()
    response = alice.get(f"/v1/tasks/{task['id']}")
    assert response.status_code == 200
    assert response.json() == task


def test_put_replaces_writable_fields_and_advances_updated_at(alice, make_task):
    task = make_task(details="old")
    response = alice.put(
        f"/v1/tasks/{task['id']}",
        {"title": "new", "details": "new details", "completed": True},
        format="json",
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["title"], updated["details"], updated["completed"]) == (
        "new", "new details", True,
    )  # fmt: skip
    assert parse_time(updated["updated_at"]) > parse_time(task["updated_at"])
    assert updated["created_at"] == task["created_at"]
    assert Task.all_objects.get(pk=task["id"]).title == "new"


def test_put_keeps_omitted_optional_fields(alice, make_task):
    task = make_task(details="keep me", completed=True)
    updated = alice.put(f"/v1/tasks/{task['id']}", {"title": "renamed"}, format="json").json()
    assert (updated["details"], updated["completed"]) == ("keep me", True)


def test_put_requires_the_title(alice, make_task):
    task = make_task()
    response = alice.put(f"/v1/tasks/{task['id']}", {"details": "x"}, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "title"
    assert Task.all_objects.get(pk=task["id"]).details == ""


def test_patch_changes_only_the_given_fields(alice, make_task):
    task = make_task(details="keep")
    response = alice.patch(f"/v1/tasks/{task['id']}", {"completed": True}, format="json")
    assert response.status_code == 200
    updated = response.json()
    assert (updated["title"], updated["details"], updated["completed"]) == (
        "Buy milk", "keep", True,
    )  # fmt: skip
    assert parse_time(updated["updated_at"]) > parse_time(task["updated_at"])


def test_patch_with_an_empty_object_advances_updated_at_only(alice, make_task):
    task = make_task()
    updated = alice.patch(f"/v1/tasks/{task['id']}", {}, format="json").json()
    assert {k: v for k, v in updated.items() if k != "updated_at"} == {
        k: v for k, v in task.items() if k != "updated_at"
    }
    assert parse_time(updated["updated_at"]) > parse_time(task["updated_at"])


def test_delete_returns_204_with_an_empty_body_and_removes_the_task(alice, make_task):
    task = make_task()
    response = alice.delete(f"/v1/tasks/{task['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Task.all_objects.for_user("alice").filter(pk=task["id"]).exists()
    tombstone = Task.all_objects.get(pk=task["id"])
    assert tombstone.deleted_at is not None
    assert (tombstone.title, tombstone.details) == ("", "")
    assert alice.get(f"/v1/tasks/{task['id']}").status_code == 404
    assert alice.delete(f"/v1/tasks/{task['id']}").status_code == 404


def test_toggle_flips_completed_and_advances_updated_at(alice, make_task):
    task = make_task()
    first = alice.post(f"/v1/tasks/{task['id']}/toggle")
    assert first.status_code == 200
    assert first.json()["completed"] is True
    assert parse_time(first.json()["updated_at"]) > parse_time(task["updated_at"])
    second = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert second["completed"] is False
    assert parse_time(second["updated_at"]) > parse_time(first.json()["updated_at"])
    assert Task.all_objects.get(pk=task["id"]).completed is False


def test_toggle_ignores_any_body(alice, make_task):
    task = make_task()
    response = alice.post(
        f"/v1/tasks/{task['id']}/toggle", {"completed": False, "title": "x"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["completed"], response.json()["title"]) == (True, "Buy milk")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/tasks/", "get"),
        ("/v1/tasks/{id}/", "get"),
        ("/v1/tasks/{id}/", "patch"),
        ("/v1/tasks/{id}/toggle/", "post"),
        ("/v1/schema/", "get"),
        ("/v1/docs/", "get"),
        ("/healthz/", "get"),
        ("/readyz/", "get"),
    ],
)
def test_paths_answer_with_a_trailing_slash_without_redirecting(alice, make_task, path, method):
    task = make_task()
    response = getattr(alice, method)(path.format(id=task["id"]), {}, format="json")
    assert response.status_code == 200


def test_create_with_a_trailing_slash(alice):
    assert alice.post("/v1/tasks/", {"title": "x"}, format="json").status_code == 201


def test_delete_with_a_trailing_slash(alice, make_task):
    task = make_task()
    assert alice.delete(f"/v1/tasks/{task['id']}/").status_code == 204


# --- The error table ---------------------------------------------------------------------------


def assert_error(response, status: int, code: str | None = None, attr: str | None = None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"type", "errors"}
    assert body["errors"] and all(set(e) == {"code", "detail", "attr"} for e in body["errors"])
    if code:
        assert body["errors"][0]["code"] == code
    if attr:
        assert attr in [e["attr"] for e in body["errors"]]
    return body


@pytest.mark.parametrize(
    "body",
    ["{not json", '{"title": "x",}', "", "\xff", '{"title": "\\ud800"}'],
    ids=["broken", "trailing-comma", "empty", "not-utf8", "lone-surrogate"],
)
def test_malformed_json_is_400(alice, body):
    if body == "":
        # An empty body is an empty object to DRF: title is then missing.
        response = alice.post("/v1/tasks", body, content_type="application/json")
        assert_error(response, 422, attr="title")
        return
    response = alice.post(
        "/v1/tasks",
        body.encode("utf-8", "surrogatepass") if body != "\xff" else b"\xff",
        content_type="application/json",
    )
    assert_error(response, 400, code="parse_error")
    assert Task.all_objects.count() == 0


@pytest.mark.parametrize("body", ["[]", '["title"]', '"title"', "42", "null", "true"])
def test_a_body_that_is_not_a_json_object_is_400(alice, make_task, body):
    assert_error(
        alice.post("/v1/tasks", body, content_type="application/json"), 400, code="parse_error"
    )
    task = make_task()
    response = alice.put(f"/v1/tasks/{task['id']}", body, content_type="application/json")
    assert_error(response, 400, code="parse_error")
    assert alice.get(f"/v1/tasks/{task['id']}").json() == task


def test_a_body_over_1_mib_is_413(alice, make_task):
    task = make_task()
    huge = '{"title": "x", "details": "' + "a" * settings.MAX_REQUEST_BODY_BYTES + '"}'
    assert_error(
        alice.post("/v1/tasks", huge, content_type="application/json"), 413,
        code="request_too_large",
    )  # fmt: skip
    assert_error(alice.put(f"/v1/tasks/{task['id']}", huge, content_type="application/json"), 413)
    assert Task.all_objects.count() == 1
    assert alice.get(f"/v1/tasks/{task['id']}").json() == task


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain",
     "application/xml"],
)  # fmt: skip
def test_a_body_that_is_not_json_is_415(alice, content_type):
    response = alice.post("/v1/tasks", "title=x", content_type=content_type)
    assert_error(response, 415, code="unsupported_media_type")
    assert Task.all_objects.count() == 0


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   \t\n"}, "title"),
        ({"title": "x" * (TITLE_MAX_LENGTH + 1)}, "title"),
        ({"title": None}, "title"),
        ({"title": 42}, "title"),
        ({"title": ["x"]}, "title"),
        ({"title": {"x": 1}}, "title"),
        ({"title": True}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"title": "\x85\u3000\u2028"}, "title"),  # Unicode whitespace only
        ({"title": " " + "x" * TITLE_MAX_LENGTH}, "title"),  # too long as sent, though not trimmed
        ({"title": "x", "details": "a\x00b"}, "details"),
        ({"title": "x", "labels": ["a\x00b"]}, "labels.0"),
        ({"title": "x", "labels": ["\x85"]}, "labels.0"),
        ({"title": "x", "details": "d" * (DETAILS_MAX_LENGTH + 1)}, "details"),
        ({"title": "x", "details": 5}, "details"),
        ({"title": "x", "completed": "true"}, "completed"),
        ({"title": "x", "completed": "1"}, "completed"),
        ({"title": "x", "completed": 1}, "completed"),
        ({"title": "x", "completed": 0}, "completed"),
        ({"title": "x", "completed": None}, "completed"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(alice, make_task, body, attr):
    assert_error(alice.post("/v1/tasks", body, format="json"), 422, attr=attr)
    task = make_task()
    response = alice.patch(f"/v1/tasks/{task['id']}", body, format="json")
    if body:
        assert_error(response, 422, attr=attr)
        assert alice.get(f"/v1/tasks/{task['id']}").json() == task
    assert Task.all_objects.count() == 1


def test_limits_are_inclusive(alice):
    body = {"title": "t" * TITLE_MAX_LENGTH, "details": "d" * DETAILS_MAX_LENGTH}
    assert alice.post("/v1/tasks", body, format="json").status_code == 201


@pytest.mark.parametrize(
    "path",
    [f"/v1/tasks/{MISSING_ID}", "/v1/tasks/not-a-uuid", "/v1/tasks/12345",
     f"/v1/tasks/{MISSING_ID}/toggle", "/v1/tasks/not-a-uuid/toggle"],
)  # fmt: skip
def test_a_missing_or_malformed_id_is_404(alice, path):
    for method in ("get", "put", "patch", "delete", "post"):
        if path.endswith("toggle") != (method == "post"):
            continue
        assert_error(getattr(alice, method)(path, {"title": "x"}, format="json"), 404, "not_found")


@pytest.mark.parametrize(
    "path", ["/v1/nope", "/v1/", "/v1", "/v1/tasks/x/y/z", "/v1/tasks/" + MISSING_ID + "/nope"]
)
def test_unknown_paths_under_v1_are_json_404(alice, path):
    assert_error(alice.get(path), 404, "not_found")
    assert_error(alice.post(path, {}, format="json"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/v1/tasks"), ("put", "/v1/tasks"), ("patch", "/v1/tasks"),
     ("get", "/v1/tasks/{id}/toggle"), ("post", "/v1/tasks/{id}"), ("post", "/healthz")],
)  # fmt: skip
def test_a_method_the_route_does_not_have_is_405(alice, make_task, method, path):
    task = make_task()
    response = getattr(alice, method)(path.format(id=task["id"]), {}, format="json")
    assert_error(response, 405, "method_not_allowed")
    assert alice.get(f"/v1/tasks/{task['id']}").json() == task


def test_serializer_fast_path_matches_drf(alice, make_task):
    """TaskSerializer.to_representation skips DRF's per-field machinery for speed; it must
    write exactly what DRF's own fields would."""
    from rest_framework import serializers

    from tasks.serializers import TaskSerializer

    task = make_task(
        details="d", completed=True, due_at="2026-03-01", priority="high", labels=["a", "B"]
    )
    alice.patch(f"/v1/tasks/{task['id']}", {"recurrence": "FREQ=WEEKLY;BYDAY=MO"}, format="json")
    stored = Task.all_objects.get(pk=task["id"])
    fast = TaskSerializer(stored).data
    drf = serializers.ModelSerializer.to_representation(TaskSerializer(stored), stored)
    assert fast == dict(drf)
    assert fast["completed_at"] and fast["due_at"] == "2026-03-01T00:00:00Z"


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC),  # no microseconds: none written
        dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2026, 7, 1, 9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        dt.datetime(2026, 7, 1, 9, tzinfo=zoneinfo.ZoneInfo("UTC")),
    ],
)
def test_timestamps_are_written_as_drf_writes_them(value):
    from rest_framework import serializers

    from tasks.serializers import timestamp

    assert timestamp(value) == serializers.DateTimeField().to_representation(value)


def test_the_whitespace_the_schema_spells_out_is_what_trimming_removes():
    spelled = re.compile(f"[{WHITESPACE}]")
    characters = [chr(code) for code in range(sys.maxunicode + 1)]
    assert [c for c in characters if spelled.fullmatch(c)] == [c for c in characters if c.isspace()]


def test_the_default_manager_is_live_tasks_and_all_objects_keeps_tombstones(alice, make_task):
    """`Task.objects` (the shell's) leaves deleted tasks out; `Task.all_objects` has them."""
    kept, deleted = make_task(), make_task()
    assert alice.delete(f"/v1/tasks/{deleted['id']}").status_code == 204
    assert {str(pk) for pk in Task.objects.values_list("pk", flat=True)} == {kept["id"]}
    assert Task.all_objects.count() == 2
