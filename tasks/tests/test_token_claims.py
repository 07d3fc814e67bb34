"""Validly signed tokens whose claims or header are malformed: each is a 401, never a 500, and a
`sub` that cannot be stored exactly never reaches the database (it would name another account)."""

import json

import jwt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks.authentication import token_backend
from tasks.models import USER_ID_MAX_LENGTH

from .test_authentication import SECRET, assert_unauthorized, claims, hs256

pytestmark = pytest.mark.database_independent

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["", "\x00", "\ud800", "1e20", "9" * 30, "HS256", "EdDSA"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
CLAIM_VALUES = JSON_VALUES | st.sampled_from([1e20, -1e20, 2**64, -(2**63), 0.5, 10**12])


def signed_raw(payload: bytes, header: dict | None = None) -> str:
    """An HS256 token over exactly these payload bytes (PyJWT would refuse to encode some)."""
    head = jwt.utils.base64url_encode(
        json.dumps({"alg": "HS256", "typ": "JWT", **(header or {})}).encode()
    )
    body = jwt.utils.base64url_encode(payload)
    signature = jwt.utils.base64url_encode(
        jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
            head + b"." + body, SECRET.encode()
        )
    )
    return (head + b"." + body + b"." + signature).decode()


@pytest.fixture(autouse=True)
def fresh_token_backend():
    token_backend.cache_clear()
    yield
    token_backend.cache_clear()


def get_tasks(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client.get("/v1/tasks")


def test_a_sub_longer_than_the_column_is_401_not_a_truncated_account(api_client, db, alice):
    alice.post("/v1/tasks", {"title": "alice's"}, format="json")
    at_limit = "v" * USER_ID_MAX_LENGTH
    owner = get_tasks(api_client, hs256(claims(sub=at_limit)))
    assert owner.status_code == 200
    api_client.post("/v1/tasks", {"title": "mine"}, format="json")

    response = get_tasks(api_client, hs256(claims(sub=at_limit + "X")))

    assert_unauthorized(response, token_given=True)
    assert (
        get_tasks(api_client, hs256(claims(sub=at_limit))).json()["results"][0]["title"] == "mine"
    )


@pytest.mark.parametrize(
    "sub", ["nul\x00inside", "\ud800", "a" * (USER_ID_MAX_LENGTH + 1), 42, ["alice"], {"a": 1}]
)
def test_a_sub_that_cannot_be_stored_exactly_is_401_before_any_query(
    api_client, db, django_assert_num_queries, sub
):
    token = signed_raw(json.dumps(claims(sub=sub)).encode())
    with django_assert_num_queries(0):
        response = get_tasks(api_client, token)
    assert_unauthorized(response, token_given=True)


@pytest.mark.parametrize("exp", ["9999999999", 1e20, -1e20, 2**64, True, None, [1], {"a": 1}, 1.5])
def test_an_exp_that_is_not_a_usable_numeric_date_is_401(api_client, db, exp):
    token = signed_raw(json.dumps({**claims(), "exp": exp}).encode())
    assert_unauthorized(get_tasks(api_client, token), token_given=True)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
@pytest.mark.parametrize("value", ["0", 1e20, True, [0]])
def test_an_iat_or_nbf_that_is_not_a_numeric_date_is_401(api_client, db, claim, value):
    token = signed_raw(json.dumps({**claims(), claim: value}).encode())
    assert_unauthorized(get_tasks(api_client, token), token_given=True)


def test_a_deeply_nested_payload_is_401(api_client, db):
    payload = json.dumps(claims())[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    assert_unauthorized(get_tasks(api_client, signed_raw(payload.encode())), token_given=True)


@example(overrides={}, header={"crit": ["\ud800"]})
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["sub", "exp", "iat", "nbf", "iss", "aud", "jti", "email"]),
        CLAIM_VALUES,
        max_size=4,
    ),
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "cty", "jku", "x5u", "b64"]),
        JSON_VALUES,
        max_size=3,
    ),
)
def test_no_signed_claim_or_header_value_is_a_server_error(api_client, db, overrides, header):
    payload = json.dumps({**claims(), **overrides}).encode()
    response = get_tasks(api_client, signed_raw(payload, header))
    assert response.status_code in {200, 401}, response.content
    if response.status_code == 401:
        assert_unauthorized(response, token_given=True)
