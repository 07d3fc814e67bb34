"""Every authentication failure in the contract is a 401 with a Bearer challenge and a JSON body,
decided without touching the database."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.test import override_settings

from tasks.authentication import issue_token, token_backend

SECRET = settings.BETTER_AUTH_SECRET


def hs256(claims: dict, secret: str = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def claims(**overrides) -> dict:
    now = int(time.time())
    values = {"sub": "alice", "iat": now, "exp": now + 600, **overrides}
    return {name: value for name, value in values.items() if value is not None}


def unsigned(payload: dict) -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(jwt.api_jwt._jwt_global_obj._encode_payload(payload)).decode()
    return f"{header}.{body}."


def get_tasks(api_client, authorization: str | None):
    if authorization is not None:
        api_client.credentials(HTTP_AUTHORIZATION=authorization)
    return api_client.get("/v1/tasks")


def assert_unauthorized(response, *, token_given: bool) -> None:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is token_given
    body = response.json()
    assert body["type"] == "client_error"
    assert body["errors"][0]["code"] in {"not_authenticated", "token_not_valid"}


@pytest.fixture(autouse=True)
def fresh_token_backend():
    """The backend is built once from settings; tests that override settings need a new one."""
    token_backend.cache_clear()
    yield
    token_backend.cache_clear()


def test_a_valid_token_is_accepted_and_its_sub_is_the_user(api_client, db):
    response = get_tasks(api_client, f"Bearer {hs256(claims(sub='user_42'))}")
    assert response.status_code == 200
    created = api_client.post("/v1/tasks", {"title": "mine"}, format="json")
    assert created.json()["user_id"] == "user_42"


def test_a_better_auth_style_user_id_and_extra_claims_are_accepted(api_client, db):
    sub = "eytewwOfsiESENxhipop102ubH2xjN5g"
    token = hs256(claims(sub=sub, email="a@example.com", name="A", emailVerified=False))
    response = get_tasks(api_client, f"Bearer {token}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic YWxpY2U6cGFzc3dvcmQ=", "Token abc", "bearer-ish"],
    ids=["no-header", "empty-header", "basic-scheme", "other-scheme", "no-scheme"],
)
def test_no_bearer_token_is_401_without_an_error_code(api_client, db, authorization):
    assert_unauthorized(get_tasks(api_client, authorization), token_given=False)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer a b", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer e30.e30.e30"],
    ids=["scheme-only", "three-parts", "junk", "bad-segments", "empty-json"],
)
def test_a_malformed_token_is_401(api_client, db, authorization):
    response = get_tasks(api_client, authorization)
    # "Bearer" alone carries no token at all.
    assert_unauthorized(response, token_given=authorization != "Bearer")


def test_a_token_signed_with_another_secret_is_401(api_client, db):
    token = hs256(claims(), secret="another-secret-that-is-long-enough-000000")
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_tampered_payload_is_401(api_client, db):
    header, _, signature = hs256(claims(sub="alice")).split(".")
    forged = jwt.utils.base64url_encode(b'{"sub":"bob","exp":9999999999}').decode()
    assert_unauthorized(
        get_tasks(api_client, f"Bearer {header}.{forged}.{signature}"), token_given=True
    )


def test_an_expired_token_is_401(api_client, db):
    token = hs256(claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_token_expired_within_the_leeway_is_accepted(api_client, db):
    token = hs256(claims(exp=int(time.time()) - settings.JWT_LEEWAY_SECONDS // 2))
    assert get_tasks(api_client, f"Bearer {token}").status_code == 200


def test_a_token_expired_beyond_the_leeway_is_401(api_client, db):
    token = hs256(claims(exp=int(time.time()) - settings.JWT_LEEWAY_SECONDS - 5))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_token_is_verified_once_and_its_claims_reused(api_client, db, monkeypatch):
    verifications = []
    backend = token_backend()
    verify = backend.verify
    monkeypatch.setattr(backend, "verify", lambda token: verifications.append(1) or verify(token))
    token = hs256(claims(sub="alice"))
    for _ in range(3):
        assert get_tasks(api_client, f"Bearer {token}").status_code == 200
    assert len(verifications) == 1
    # One byte changed (the signature's last character) is another token, checked afresh.
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_unauthorized(get_tasks(api_client, f"Bearer {tampered}"), token_given=True)
    assert len(verifications) == 2


@override_settings(JWT_LEEWAY_SECONDS=0)
def test_a_reused_token_is_401_once_it_expires(api_client, db):
    token_backend.cache_clear()
    token = hs256(claims(exp=int(time.time()) + 2))  # valid for 1 to 2 s: time for a request
    assert get_tasks(api_client, f"Bearer {token}").status_code == 200
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_token_not_yet_valid_is_401(api_client, db):
    token = hs256(claims(nbf=int(time.time()) + 600))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_token_issued_in_the_future_is_401(api_client, db):
    token = hs256(claims(iat=int(time.time()) + 600))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_a_token_without_exp_is_401(api_client, db):
    token = hs256(claims(exp=None))
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


@pytest.mark.parametrize("sub", [None, "", 42, ["alice"]], ids=["missing", "empty", "int", "list"])
def test_a_token_without_a_usable_sub_is_401(api_client, db, sub):
    payload = claims()
    if sub is None:
        del payload["sub"]
    else:
        payload["sub"] = sub
    # PyJWT refuses to encode a non-string sub, so sign the JSON by hand.
    token = jwt.api_jws.encode(
        jwt.api_jwt._jwt_global_obj._encode_payload(payload), SECRET, algorithm="HS256"
    )
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_an_unsigned_alg_none_token_is_401(api_client, db):
    assert_unauthorized(get_tasks(api_client, f"Bearer {unsigned(claims())}"), token_given=True)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_secret_are_401(api_client, db, algorithm):
    token = jwt.encode(claims(), SECRET, algorithm=algorithm)
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


@pytest.mark.parametrize(
    ("algorithm", "private_key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_asymmetric_tokens_are_never_checked_against_the_secret(
    api_client, db, algorithm, private_key
):
    token = jwt.encode(claims(), private_key, algorithm=algorithm)
    assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


@override_settings(JWT_ISSUER="https://auth.example.com", JWT_AUDIENCE="https://api.example.com")
def test_issuer_and_audience_are_enforced_when_configured(api_client, db):
    good = claims(iss="https://auth.example.com", aud="https://api.example.com")
    assert get_tasks(api_client, f"Bearer {hs256(good)}").status_code == 200
    for wrong in (
        {"iss": "https://evil.example.com"},
        {"aud": "https://other.example.com"},
        {"iss": None},
        {"aud": None},
    ):
        token = hs256(claims(**{**good, **wrong}))
        assert_unauthorized(get_tasks(api_client, f"Bearer {token}"), token_given=True)


def test_issuer_and_audience_are_not_checked_when_unset(api_client, db):
    token = hs256(claims(iss="whoever", aud="whatever"))
    assert get_tasks(api_client, f"Bearer {token}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/tasks"),
        ("post", "/v1/tasks"),
        ("get", "/v1/tasks/00000000-0000-0000-0000-000000000000"),
        ("put", "/v1/tasks/00000000-0000-0000-0000-000000000000"),
        ("patch", "/v1/tasks/00000000-0000-0000-0000-000000000000"),
        ("delete", "/v1/tasks/00000000-0000-0000-0000-000000000000"),
        ("post", "/v1/tasks/00000000-0000-0000-0000-000000000000/toggle"),
    ],
)
def test_every_task_route_requires_a_token(api_client, db, method, path):
    response = getattr(api_client, method)(path, {"title": "x"}, format="json")
    assert_unauthorized(response, token_given=False)


def test_authentication_comes_before_body_checks(api_client, db):
    response = api_client.post("/v1/tasks", "{not json", content_type="application/json")
    assert_unauthorized(response, token_given=False)
    response = api_client.post("/v1/tasks", "title=x", content_type="text/plain")
    assert_unauthorized(response, token_given=False)


def test_authentication_does_no_database_query(api_client, db, django_assert_num_queries):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {hs256(claims(), secret='x' * 40)}")
    with django_assert_num_queries(0):
        assert api_client.get("/v1/tasks").status_code == 401


def test_issue_token_mints_a_token_the_service_accepts(api_client, db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("issue_token", "cli-user", "--ttl", "60", stdout=out)
    token = out.getvalue().strip()
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "cli-user"
    assert get_tasks(api_client, f"Bearer {token}").status_code == 200
    assert issue_token("x", ttl_seconds=5) != token
