"""Bearer JWT authentication: the one place where tokens are checked (and, for development,
minted).

Built on simplejwt's stateless authentication: the request user is a `TokenUser` whose `id` is
the token's `sub`; no database is touched. Keys come from key sources (the shared secret, Better
Auth's JWKS), each of which maps a token header to one key bound to one algorithm (RFC 8725
§3.1), so that an HS256 token can never be checked against a public key, nor the reverse.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cache
from typing import Any, Protocol

import jwt
import jwt.utils
from django.conf import settings
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.tokens import Token

from .jwks import JwksKeys, KeyNotFound
from .models import USER_ID_MAX_LENGTH

SHARED_SECRET_ALGORITHM = "HS256"
DEVELOPMENT_COOKIE_NAME = "dev_api_token"
# Where a request keeps its bearer token's outcome (user, token), once authenticated: in the
# WSGI environ (request.META), which every layer in front of the view shares. A client's header
# cannot reach this key (theirs are all named HTTP_…).
VERIFIED_KEY = "tasks.bearer_authentication"
# Tokens this process has verified, with their claims: a frontend sends the same token with
# every request of its lifetime, and parsing and checking it again was most of the cost of
# authentication (more so for EdDSA). A token differing by one byte is another entry, checked
# afresh.
VERIFIED_TOKENS_KEPT = 4096
# 9999-12-31T23:59:59Z: the last NumericDate a datetime can hold.
LAST_NUMERIC_DATE = 253402300799


class KeySource(Protocol):
    """Where the keys for a token come from: a key bound to one algorithm, or none."""

    issuer: str | None
    audience: str | None
    reverify_seconds: float  # how long a verified token may go unchecked against the source

    def key_for(self, header: dict[str, Any]) -> jwt.PyJWK | None: ...


class SharedSecretKeys:
    """HS256 with `BETTER_AUTH_SECRET`: for frontends that mint their own tokens with it."""

    def __init__(self, secret: str, *, issuer: str | None, audience: str | None) -> None:
        self.issuer = issuer
        self.audience = audience
        # The secret cannot change under a running process: a token stays verified until it
        # expires.
        self.reverify_seconds = float("inf")
        self.key = jwt.PyJWK.from_dict(
            {"kty": "oct", "k": jwt.utils.base64url_encode(secret.encode()).decode()},
            algorithm=SHARED_SECRET_ALGORITHM,
        )

    def key_for(self, header: dict[str, Any]) -> jwt.PyJWK | None:
        return self.key if header.get("alg") == SHARED_SECRET_ALGORITHM else None


class BetterAuthTokenBackend(TokenBackend):
    """Decodes a token with the key its header names, from the first source that has one."""

    def __init__(self, key_sources: list[KeySource], *, leeway: int) -> None:
        super().__init__(SHARED_SECRET_ALGORITHM, leeway=leeway)
        self.key_sources = key_sources
        self.verified: dict[bytes | str, tuple[dict[str, Any], float]] = {}

    # simplejwt annotates `token` as a Token, but passes (and means) the raw token.
    def decode(self, token: bytes | str, verify: bool = True) -> dict[str, Any]:  # type: ignore[override]
        """The token's claims, verified now or (the same token) earlier: until it expires, and
        for a JWKS key no longer than the key set is cached, so a key the auth server withdraws
        stops working as soon as it did without this."""
        now = time.time()
        claims, good_until = self.verified.get(token, ({}, 0.0))
        if now >= good_until:
            claims, source = self.verify(token)
            expiry = int(claims["exp"]) + self.get_leeway().total_seconds()
            good_until = min(expiry, now + source.reverify_seconds)
            if len(self.verified) >= VERIFIED_TOKENS_KEPT:
                self.verified.pop(next(iter(self.verified)), None)  # the oldest entry
            self.verified[token] = claims, good_until
        return dict(claims)

    def verify(self, token: bytes | str) -> tuple[dict[str, Any], KeySource]:
        """Checks the token's signature and claims; its claims and the key source that signed it."""
        try:
            header = jwt.get_unverified_header(token)
            for source in self.key_sources:
                key = source.key_for(header)
                if key is not None:
                    break
            else:
                raise KeyNotFound("Token is invalid: no key for its algorithm")
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                issuer=source.issuer,
                audience=source.audience,
                leeway=self.get_leeway(),
                options={"require": ["exp", "sub"], "verify_aud": source.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("Token is expired") from exc
        except jwt.InvalidTokenError as exc:
            # PyJWT's message may quote the header, whose text need not even be encodable.
            reason = str(exc).encode(errors="backslashreplace").decode()
            raise TokenError(f"Token is invalid: {reason}") from exc
        except (TypeError, ValueError, RecursionError) as exc:
            # A header or claim of an unexpected JSON type, or nested too deep to parse.
            raise TokenError("Token is invalid: malformed header or claims") from exc
        check_claims(claims)
        return claims, source


def check_claims(claims: dict[str, Any]) -> None:
    """The claims the service relies on have exactly the types it relies on, so that nothing
    after verification can fail on them: NumericDates (RFC 7519 §2) that fit a datetime, and a
    `sub` that the database stores exactly as given (never cut short into another account)."""
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TokenError(f"Token is invalid: {name} is not a number")
        if not 0 <= value <= LAST_NUMERIC_DATE:
            raise TokenError(f"Token is invalid: {name} is out of range")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("Token has no user id (sub)")
    storable = "\x00" not in subject and (subject.isascii() or not _has_surrogates(subject))
    if len(subject) > USER_ID_MAX_LENGTH or not storable:
        raise TokenError(
            f"Token is invalid: sub must be 1 to {USER_ID_MAX_LENGTH} characters, without NUL"
        )


def _has_surrogates(text: str) -> bool:
    """A lone surrogate (`"\\ud800"` in JSON) is no character: UTF-8 cannot encode it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


@cache
def token_backend() -> BetterAuthTokenBackend:
    """The backend built from settings, once per process (the JWKS cache lives in it)."""
    algorithms = frozenset(settings.JWT_ALGORITHMS)
    sources: list[KeySource] = []
    if settings.BETTER_AUTH_SECRET and SHARED_SECRET_ALGORITHM in algorithms:
        sources.append(
            SharedSecretKeys(
                settings.BETTER_AUTH_SECRET,
                issuer=settings.JWT_ISSUER,
                audience=settings.JWT_AUDIENCE,
            )
        )
    if settings.BETTER_AUTH_JWKS_URL:
        sources.append(
            JwksKeys(
                settings.BETTER_AUTH_JWKS_URL,
                algorithms=algorithms - {SHARED_SECRET_ALGORITHM},
                issuer=settings.JWT_ISSUER or settings.BETTER_AUTH_URL,
                audience=settings.JWT_AUDIENCE or settings.BETTER_AUTH_URL,
                cache_seconds=settings.JWKS_CACHE_SECONDS,
                miss_refetch_seconds=settings.JWKS_MISS_REFETCH_SECONDS,
                fetch_timeout=settings.JWKS_FETCH_TIMEOUT_SECONDS,
            )
        )
    return BetterAuthTokenBackend(sources, leeway=settings.JWT_LEEWAY_SECONDS)


class AccessToken(Token):
    """A Better Auth access token: `sub` and `exp` required, no token type, no jti."""

    token_type = "access"
    lifetime = timedelta(minutes=15)

    @property
    def token_backend(self) -> BetterAuthTokenBackend:
        return token_backend()


class TokenClaimsUser(TokenUser):
    """The request user: `id` is the token's `sub`; the other claims (email, name…) are kept for
    logs, never for authorization."""

    @property
    def claims(self) -> dict[str, Any]:
        return dict(self.token.payload)


class BearerTokenAuthentication(JWTStatelessUserAuthentication):
    """`Authorization: Bearer <JWT>`; every failure is a 401 with a `WWW-Authenticate` challenge."""

    def __init__(self) -> None:
        # simplejwt looks the user model up for every instance (one per request), for a
        # database user this stateless authentication never loads.
        pass

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        # A layer in front (tasks.middleware) ran this already for the same request: its
        # outcome stands.
        done = request.META.get(VERIFIED_KEY)
        if done is not None:
            return done  # type: ignore[no-any-return]
        result = super().authenticate(request)
        request.META[VERIFIED_KEY] = result
        return result

    def get_raw_token(self, header: bytes) -> bytes | None:
        # Authentication schemes are case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() == b"bearer":
            header = b"Bearer " + credentials
        return super().get_raw_token(header)

    def authenticate_header(self, request: Request) -> str:
        # RFC 6750 §3: name the error only when a bearer token was actually presented.
        scheme, *credentials = request.META.get("HTTP_AUTHORIZATION", "").split() or [""]
        if scheme.lower() == "bearer" and credentials:
            return 'Bearer realm="api", error="invalid_token"'
        return 'Bearer realm="api"'


class DevelopmentCookieAuthentication(BearerTokenAuthentication):
    """DEBUG only: the token from a cookie, so a browser can use the browsable API.

    The cookie is set by the development login page (`/dev/login`); it is never accepted with
    DEBUG off, where the only way in is the Authorization header.
    """

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        raw_token = request.COOKIES.get(DEVELOPMENT_COOKIE_NAME)
        if not settings.DEBUG or not raw_token:
            return None
        validated_token = self.get_validated_token(raw_token.encode())
        # A cookie is sent by the browser on its own: unsafe methods need the CSRF token too.
        SessionAuthentication().enforce_csrf(request)
        return self.get_user(validated_token), validated_token


def issue_token(user_id: str, *, ttl_seconds: int = 3600, **claims: Any) -> str:
    """An HS256 token for `user_id`, signed with `BETTER_AUTH_SECRET` (development and tests)."""
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + ttl_seconds, **claims}
    if settings.JWT_ISSUER:
        payload.setdefault("iss", settings.JWT_ISSUER)
    if settings.JWT_AUDIENCE:
        payload.setdefault("aud", settings.JWT_AUDIENCE)
    return jwt.encode(payload, settings.BETTER_AUTH_SECRET, algorithm=SHARED_SECRET_ALGORITHM)
