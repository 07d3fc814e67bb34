"""The OpenAPI description: served, complete, and the same as the committed contract."""

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from tasks.parsing import NO_NUL, NOT_BLANK
from tasks.recurrence import RRULE_PATTERN
from tasks.views import IANA_ZONES

CONTRACT = Path(settings.BASE_DIR) / "specs/001-backend-api-data/contracts/tasks.openapi.yaml"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--file", str(path), "--validate", "--fail-on-warn")
    return yaml.safe_load(path.read_text())


def test_the_committed_contract_matches_the_generated_schema(generated):
    committed = yaml.safe_load(CONTRACT.read_text())
    assert generated == committed, "contracts/tasks.openapi.yaml is stale: run `make schema`"


def test_the_schema_route_serves_yaml_and_json_without_auth(api_client, generated):
    as_yaml = api_client.get("/v1/schema")
    assert as_yaml.status_code == 200
    assert "openapi" in as_yaml["Content-Type"] or "yaml" in as_yaml["Content-Type"]
    assert yaml.safe_load(as_yaml.content) == generated
    as_json = api_client.get("/v1/schema?format=json")
    assert as_json.status_code == 200
    assert as_json.json() == generated


def test_the_docs_route_serves_swagger_ui_from_our_own_static_files(api_client):
    response = api_client.get("/v1/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(asset.startswith("/") for asset in assets), assets  # no CDN, nothing external


AUTHENTICATED = {"401", "429", "503"}
BODY = {"400", "413", "415", "422"}
EXPECTED_OPERATIONS = {
    ("/v1/tasks", "get"): {"200", "404", "422"} | AUTHENTICATED,
    ("/v1/tasks", "post"): {"201", "404", "409"} | BODY | AUTHENTICATED,
    ("/v1/tasks/{id}", "get"): {"200", "304", "404"} | AUTHENTICATED,
    ("/v1/tasks/{id}", "put"): {"200", "404", "409", "412"} | BODY | AUTHENTICATED,
    ("/v1/tasks/{id}", "patch"): {"200", "404", "409", "412"} | BODY | AUTHENTICATED,
    ("/v1/tasks/{id}", "delete"): {"204", "404", "412"} | AUTHENTICATED,
    ("/v1/tasks/{id}/toggle", "post"): {"200", "404", "412"} | AUTHENTICATED,
    ("/v1/tasks/{id}/move", "post"): {"200", "404"} | BODY | AUTHENTICATED,
    ("/v1/tasks/bulk", "post"): {"200", "404", "409"} | BODY | AUTHENTICATED,
    ("/v1/tasks/changes", "get"): {"200", "410", "422"} | AUTHENTICATED,
    ("/v1/tasks/clear-completed", "post"): {"200", "404", "422"} | AUTHENTICATED,
    ("/v1/tasks/stats", "get"): {"200", "404", "422"} | AUTHENTICATED,
    ("/v1/lists", "get"): {"200", "422"} | AUTHENTICATED,
    ("/v1/lists", "post"): {"201", "409"} | BODY | AUTHENTICATED,
    ("/v1/lists/{id}", "get"): {"200", "304", "404"} | AUTHENTICATED,
    ("/v1/lists/{id}", "put"): {"200", "404", "412"} | BODY | AUTHENTICATED,
    ("/v1/lists/{id}", "patch"): {"200", "404", "412"} | BODY | AUTHENTICATED,
    ("/v1/lists/{id}", "delete"): {"204", "404", "409", "412"} | AUTHENTICATED,
    ("/v1/lists/{id}/move", "post"): {"200", "404"} | BODY | AUTHENTICATED,
    ("/v1/changes", "get"): {"200", "410", "422"} | AUTHENTICATED,
    ("/healthz", "get"): {"200"},
    ("/readyz", "get"): {"200", "503"},
}


def test_every_route_and_its_error_responses_are_described(generated):
    operations = {
        (path, method): set(operation["responses"])
        for path, item in generated["paths"].items()
        for method, operation in item.items()
    }
    assert operations == EXPECTED_OPERATIONS


OPERATION_IDS = {
    ("/v1/tasks", "get"): "listTasks",
    ("/v1/tasks", "post"): "createTask",
    ("/v1/tasks/{id}", "get"): "getTask",
    ("/v1/tasks/{id}", "put"): "replaceTask",
    ("/v1/tasks/{id}", "patch"): "updateTask",
    ("/v1/tasks/{id}", "delete"): "deleteTask",
    ("/v1/tasks/{id}/toggle", "post"): "toggleTask",
    ("/v1/tasks/{id}/move", "post"): "moveTask",
    ("/v1/tasks/bulk", "post"): "bulkTasks",
    ("/v1/tasks/changes", "get"): "listTaskChanges",
    ("/v1/tasks/clear-completed", "post"): "clearCompletedTasks",
    ("/v1/tasks/stats", "get"): "getTaskStats",
    ("/v1/lists", "get"): "listLists",
    ("/v1/lists", "post"): "createList",
    ("/v1/lists/{id}", "get"): "getList",
    ("/v1/lists/{id}", "put"): "replaceList",
    ("/v1/lists/{id}", "patch"): "updateList",
    ("/v1/lists/{id}", "delete"): "deleteList",
    ("/v1/lists/{id}/move", "post"): "moveList",
    ("/v1/changes", "get"): "listChanges",
    ("/healthz", "get"): "healthz",
    ("/readyz", "get"): "readyz",
}


def test_every_operation_has_a_friendly_id_and_a_plain_text_summary(generated):
    operations = {
        (path, method): operation
        for path, item in generated["paths"].items()
        for method, operation in item.items()
    }
    assert {key: op["operationId"] for key, op in operations.items()} == OPERATION_IDS
    for key, operation in operations.items():
        assert not re.search(r"[`*\[\]]", operation["summary"]), (key, operation["summary"])


def test_task_routes_require_the_bearer_scheme(generated):
    scheme = generated["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, item in generated["paths"].items():
        for operation in item.values():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured is path.startswith(("/v1/tasks", "/v1/lists", "/v1/changes"))


def test_the_task_schema_states_the_field_rules(generated):
    schemas = generated["components"]["schemas"]
    request = schemas["TaskRequest"]
    assert request["required"] == ["title"]
    assert request["properties"]["title"]["maxLength"] == 255
    assert request["properties"]["details"]["maxLength"] == 10_000
    assert request["properties"]["details"]["nullable"] is True
    assert set(schemas["Task"]["required"]) >= {"id", "user_id", "created_at", "updated_at"}
    properties = request["properties"]
    assert properties["title"]["pattern"] == NOT_BLANK
    assert properties["labels"]["items"]["pattern"] == NOT_BLANK
    assert properties["details"]["pattern"] == NO_NUL
    assert properties["recurrence"]["pattern"] == RRULE_PATTERN
    assert properties["due_at"]["anyOf"] == [{"format": "date-time"}, {"format": "date"}]


def parameters(generated, path: str, method: str = "get") -> dict:
    return {p["name"]: p for p in generated["paths"][path][method]["parameters"]}


def test_the_query_and_header_parameters_state_what_is_accepted(generated):
    listing = parameters(generated, "/v1/tasks")
    assert listing["q"]["schema"] == {"type": "string", "maxLength": 200, "pattern": NO_NUL}
    assert listing["label"]["schema"]["pattern"] == NO_NUL
    for name in ("due_after", "due_before"):
        assert listing[name]["schema"]["anyOf"] == [{"format": "date-time"}, {"format": "date"}]
        assert listing[name]["description"]
    for path in ("/v1/tasks", "/v1/tasks/changes"):
        assert parameters(generated, path)["page_size"]["schema"] == {
            "type": "integer",
            "minimum": 1,
        }
    tz = parameters(generated, "/v1/tasks/stats")["tz"]["schema"]
    assert set(tz["enum"]) == IANA_ZONES and "UTC" in IANA_ZONES
    key = parameters(generated, "/v1/tasks", "post")["Idempotency-Key"]["schema"]
    assert (key["minLength"], key["maxLength"]) == (1, 255)


def test_a_change_is_a_changed_task_or_a_tombstone(generated):
    schemas = generated["components"]["schemas"]
    assert schemas["Change"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/ChangedTask"},
            {"$ref": "#/components/schemas/Tombstone"},
        ]
    }
    assert set(schemas["Tombstone"]["required"]) == {"id", "deleted", "deleted_at"}
    assert "title" in schemas["ChangedTask"]["required"]


def test_each_bulk_op_has_its_own_schema(generated):
    schemas = generated["components"]["schemas"]
    operations = schemas["BulkRequest"]["properties"]["operations"]
    assert (operations["minItems"], operations["maxItems"]) == (1, 100)
    variants = [ref["$ref"].rsplit("/", 1)[1] for ref in schemas["OperationRequest"]["oneOf"]]
    assert variants == ["CreateOperationRequest", "UpdateOperationRequest", "TaskOperationRequest"]
    create, update = schemas["CreateOperationRequest"], schemas["UpdateOperationRequest"]
    assert create["properties"]["id"] == {"not": {}}
    assert create["properties"]["data"] == {"$ref": "#/components/schemas/NewTaskRequest"}
    assert update["properties"]["data"] == {"$ref": "#/components/schemas/PatchedTaskRequest"}


def test_task_responses_declare_their_headers_and_link_the_operations_on_the_task(generated):
    paths = generated["paths"]
    created = paths["/v1/tasks"]["post"]["responses"]["201"]
    assert set(created["headers"]) == {"ETag", "Location"}
    for method in ("get", "put", "patch"):
        assert "ETag" in paths["/v1/tasks/{id}"][method]["responses"]["200"]["headers"]
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values()}
    for name, link in created["links"].items():
        assert link["operationId"] in operation_ids, name
        assert link["parameters"]["id"] == "$response.body#/id"
    assert created["links"]["MoveTaskFirst"]["requestBody"] == {"after": None}
    assert created["links"]["ReplaceTask"]["parameters"]["header.If-Match"] == (
        "$response.header.ETag"
    )


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_schema_route_refuses_other_methods_in_json(api_client, method):
    response = getattr(api_client, method)("/v1/schema")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["code"] == "method_not_allowed"


def test_an_empty_sync_token_or_cursor_is_outside_the_schema_and_422(alice, generated):
    for path, name in (("/v1/tasks/changes", "since"), ("/v1/tasks", "cursor")):
        assert parameters(generated, path)[name]["schema"]["minLength"] == 1
        response = alice.get(path, {name: ""})
        assert response.status_code == 422, response.content
        assert response.json()["errors"][0]["attr"] == name


def test_the_task_schema_documents_next_occurrence_id(generated):
    task = generated["components"]["schemas"]["Task"]
    assert task["properties"]["next_occurrence_id"]["format"] == "uuid"
    assert "next_occurrence_id" not in task["required"]


def test_a_new_task_with_a_rule_needs_a_due_at_in_the_schema_too(generated):
    """What NewTaskSerializer refuses (422), the create body's schema refuses: no schema-valid
    create is rejected, and the fuzzer's negative cases include the rule without a date."""
    new_task = generated["components"]["schemas"]["NewTaskRequest"]
    operation = generated["paths"]["/v1/tasks"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewTaskRequest"
    }
    assert new_task["anyOf"] == [
        {"properties": {"recurrence": {"maxLength": 0}}},
        {"required": ["due_at"], "properties": {"due_at": {"type": "string"}}},
    ]
