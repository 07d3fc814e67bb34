"""Every operation's first click works: each request-body example in the schema, sent as Swagger
UI's "Try it out" sends it (as is, with the query parameters that have a default), is a 2xx for a
user with a real token, and so is every operation that takes no body.

Only the path's `{id}` is filled in, with a task or list created for the purpose: an example
itself names no id (it would name nobody's task).

Also the browsable API's HTML form (DEBUG only): what its due-date and labels inputs send is read
as the form means it; JSON stays strict. tasks/tests/test_browser.py clicks through both in a
real browser.
"""

import datetime as dt
import re
from typing import Any

import pytest
from django.http import QueryDict
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tasks.serializers import NewTaskSerializer

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
METHODS = ("get", "put", "post", "patch", "delete")


def generated_schema() -> dict[str, Any]:
    schema: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return schema


SCHEMA = generated_schema()


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in SCHEMA["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def cases() -> list[Any]:
    """One case per request-body example, and one per operation without a body."""
    found = []
    for path, method, operation in operations():
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            found.append(pytest.param(path, method, None, id=operation["operationId"]))
            continue
        for name, example in content.get("examples", {}).items():
            found.append(
                pytest.param(
                    path, method, example["value"], id=f"{operation['operationId']}-{name}"
                )
            )
    return found


def values(value: Any) -> list[Any]:
    """Every scalar in a JSON value, and every key."""
    if isinstance(value, dict):
        return [*value, *(item for child in value.values() for item in values(child))]
    if isinstance(value, list):
        return [item for child in value for item in values(child)]
    return [value]


def test_every_request_body_has_an_example_without_ids():
    for path, method, operation in operations():
        request_body = operation.get("requestBody")
        if request_body is None:
            continue
        for media_type, content in request_body["content"].items():
            examples = content.get("examples", {})
            assert examples, f"{method.upper()} {path} ({media_type}) has no example"
            for name, example in examples.items():
                assert example.get("summary"), (path, method, name)
                ids = [v for v in values(example["value"]) if isinstance(v, str) and UUID.search(v)]
                assert ids == [], f"{method.upper()} {path} example {name} names ids {ids}"


def test_summaries_are_plain_text_and_operation_ids_are_friendly():
    for path, method, operation in operations():
        summary = operation["summary"]
        assert not re.search(r"[`*_\[\]<>]", summary), (path, method, summary)
        assert re.fullmatch(r"[a-z][A-Za-z]+", operation["operationId"]), (path, method)


def path_ids(client: APIClient, path: str) -> str:
    """The path, with `{id}` a task or list of the caller's created for this request."""
    if "{id}" not in path:
        return path
    if path.startswith("/v1/tasks/"):
        created = client.post("/v1/tasks", {"title": "A task to try things on"}, format="json")
    else:
        created = client.post("/v1/lists", {"title": "A list to try things on"}, format="json")
    assert created.status_code == 201, created.content
    return path.replace("{id}", created.json()["id"])


def default_query(operation: dict[str, Any]) -> dict[str, Any]:
    """The query parameters Swagger UI sends untouched: those with a default."""
    return {
        parameter["name"]: parameter["schema"]["default"]
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and "default" in parameter.get("schema", {})
    }


@pytest.mark.parametrize(("path", "method", "body"), cases())
def test_the_example_of_every_operation_succeeds(alice, path, method, body):
    operation = SCHEMA["paths"][path][method]
    url = path_ids(alice, path)
    query = default_query(operation)
    if query:
        url += "?" + "&".join(f"{name}={value}" for name, value in query.items())
    kwargs: dict[str, Any] = {"data": body, "format": "json"} if body is not None else {}
    if path in ("/healthz", "/readyz"):
        alice = APIClient()  # no token needed
    response = getattr(alice, method)(url, **kwargs)
    assert 200 <= response.status_code < 300, (
        f"{operation['operationId']}: {method.upper()} {url} {body} -> "
        f"{response.status_code} {response.content[:500]!r}"
    )


def test_every_operation_is_tried():
    tried = {(path, method) for path, method, _ in (case.values for case in cases())}
    assert tried == {(path, method) for path, method, _ in operations()}


# The browsable API's HTML form (DEBUG only) sends text: its inputs are read as that form means
# them, and JSON stays strict.


def html_form(**fields: str) -> QueryDict:
    form = QueryDict(mutable=True)
    form.update({"title": "Buy milk", **fields})
    return form


def test_the_html_form_reads_a_datetime_local_value_as_utc_and_labels_comma_separated():
    serializer = NewTaskSerializer(
        data=html_form(due_at="2030-06-07T17:30", labels="home, errands ,, home")
    )
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["due_at"] == dt.datetime(2030, 6, 7, 17, 30, tzinfo=dt.UTC)
    assert serializer.validated_data["labels"] == ["home", "errands"]
    for due_at in ("2030-06-07T17:30:15", "2030-06-07T17:30:15.250"):
        serializer = NewTaskSerializer(data=html_form(due_at=due_at))
        assert serializer.is_valid(), serializer.errors
    empty = NewTaskSerializer(data=html_form(due_at="", labels=""))
    assert empty.is_valid(), empty.errors
    assert (empty.validated_data["due_at"], empty.validated_data["labels"]) == (None, [])


@pytest.mark.parametrize(
    "body",
    [
        {"due_at": "2030-06-07T17:30"},  # no offset
        {"labels": "home, errands"},  # not a list
    ],
)
def test_json_stays_strict(alice, body):
    response = alice.post("/v1/tasks", {"title": "Buy milk", **body}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == next(iter(body))
