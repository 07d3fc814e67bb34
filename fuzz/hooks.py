"""schemathesis hooks for the Tasks API fuzz run (loaded through SCHEMATHESIS_HOOKS).

Only `positive_data_acceptance` ("schema-valid data must not be refused") is ever relaxed, and only
for values that the server alone issues, which a fuzzer cannot know:

1. `cursor` (CONTRACT.md, "Listing": a cursor the server did not issue is 422, and "that parameter
   alone may be left out of a positive-data check"): a 422 on `GET /v1/tasks` whose every error
   names `cursor`; likewise `since` on `GET /v1/tasks/changes`, the sync token, which is the same
   kind of server-issued opaque token.
   The same for `cursor` on `GET /v1/lists` and `since` on `GET /v1/changes`.
2. `If-Match` (RFC 9110 §13.1.1): an ETag the task does not currently have is 412
   `precondition_failed` by design; a random, schema-valid ETag cannot be expected to match.
3. The rules of task trees that depend on what is stored, which no schema can state: a 422 whose
   every error is one of TREE_RULES (a cycle, a tree too deep, a recurring task in a tree, an
   `after` that is not a sibling, a parent in another list), or a bulk's temp-id rules (unique
   in the batch, not a UUID, defined before use: CONTRACT-lists.md).

And one stateful check, `ensure_resource_availability` ("a resource just created is found"), for
the 404s that name another resource than the path's: an id in the body (`after`, `parent_id`,
`list_id`: the error's `attr` says which) that is not the caller's (CONTRACT.md, errors.md), when
the task or list in the path was just created.

Every other failure is kept, and those same responses still go through every other check (no 5xx,
status documented, body and headers match the schema, content type).
"""

from __future__ import annotations

import json

import schemathesis
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

# Opaque tokens only the server issues, by operation: (method, path) -> query parameter.
SERVER_ISSUED_TOKENS = {
    ("GET", "/v1/tasks"): "cursor",
    ("GET", "/v1/tasks/changes"): "since",
    ("GET", "/v1/lists"): "cursor",
    ("GET", "/v1/changes"): "since",
}
# Ids in a request body that name another task or list than the path's.
BODY_REFERENCES = {"after", "parent_id", "list_id"}
TREE_RULES = {
    "cycle",
    "too_deep",
    "recurring_task_in_tree",
    "not_a_sibling",
    "parent_in_other_list",
    "unknown_temp_id",
}


def _errors(content: bytes) -> list[dict]:
    """The error body's `errors` (none if it is not one)."""
    try:
        errors = json.loads(content).get("errors")
    except (ValueError, AttributeError):
        return []
    if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
        return []
    return errors


def _errors_concern_only(content: bytes, parameter: str) -> bool:
    errors = _errors(content)
    return bool(errors) and all(e.get("attr") == parameter for e in errors)


def _error_codes(content: bytes) -> list:
    return [e.get("code") for e in _errors(content)]


def _is_unissued_token(case, response) -> bool:
    parameter = SERVER_ISSUED_TOKENS.get((case.operation.method.upper(), case.operation.path))
    return (
        parameter is not None
        and parameter in (case.query or {})
        and response.status_code == 422
        and _errors_concern_only(response.content, parameter)
    )


def _is_stale_etag(case, response) -> bool:
    sent = {name.lower() for name in (case.headers or {})}
    return (
        "if-match" in sent
        and response.status_code == 412
        and _error_codes(response.content) == ["precondition_failed"]
    )


def _breaks_a_tree_rule(case, response) -> bool:
    if response.status_code != 422:
        return False
    errors = _errors(response.content)
    return bool(errors) and all(
        e.get("code") in TREE_RULES or str(e.get("attr", "")).endswith(".temp_id") for e in errors
    )


def _names_another_resource(case, response) -> bool:
    """A 404 about an id in the body (`after`, `parent_id`, `list_id`: the error's `attr` names
    it), not about the resource in the path: that one may well exist, just created."""
    if response.status_code != 404:
        return False
    errors = _errors(response.content)
    return bool(errors) and all(
        e.get("code") == "not_found" and e.get("attr") in BODY_REFERENCES for e in errors
    )


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure except a positive-data rejection caused by a server-issued value, and
    a just-created task or list "not found" because an id in the body is what is missing."""
    if isinstance(failure, EnsureResourceAvailability):
        return not _names_another_resource(case, response)
    if not isinstance(failure, RejectedPositiveData):
        return True
    return not (
        _is_unissued_token(case, response)
        or _is_stale_etag(case, response)
        or _breaks_a_tree_rule(case, response)
    )
