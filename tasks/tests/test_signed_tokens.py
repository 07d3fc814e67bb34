"""Cursors and sync tokens are signed by the service, but every field is still checked when one
comes back: a payload of any shape is a 422 (or 410 for an expired sync token), never a 500."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.pagination import CURSORS
from tasks.selectors import ORDERINGS
from tasks.sync import SYNC_TOKENS

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "nan",
            "inf",
            "-1",
            "9" * 25,
            "9999-12-31T23:59:59.999999-23:59",
            "0001-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00Z",
            "00000000-0000-0000-0000-000000000000",
            "\x00",
        ]
    )
)
VALUES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=3), max_leaves=5)


PROFILE = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROFILE
@given(seq=VALUES, last_id=VALUES, issued_at=VALUES)
def test_any_signed_sync_token_is_answered_without_a_server_error(alice, seq, last_id, issued_at):
    token = SYNC_TOKENS.encode({"s": seq, "i": last_id, "t": issued_at})
    response = alice.get("/v1/tasks/changes", {"since": token})
    assert response.status_code in {200, 410, 422}, response.content


@pytest.mark.parametrize("issued_at", ["nan", float("inf"), 1e300, True])
def test_a_sync_token_with_an_impossible_time_is_422(alice, issued_at):
    token = SYNC_TOKENS.encode({"s": 0, "i": "", "t": issued_at})
    response = alice.get("/v1/tasks/changes", {"since": token})
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "since"


@PROFILE
@given(
    ordering=st.sampled_from(list(ORDERINGS)), values=st.lists(VALUES, max_size=3), data=st.data()
)
def test_any_signed_cursor_is_answered_without_a_server_error(alice, ordering, values, data):
    reverse = data.draw(st.booleans() | SCALARS)
    token = CURSORS.encode({"o": ordering, "p": values, "r": reverse})
    response = alice.get("/v1/tasks", {"ordering": ordering, "cursor": token})
    assert response.status_code in {200, 422}, response.content
