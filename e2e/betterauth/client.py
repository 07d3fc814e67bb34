"""Start the real Better Auth test server (server.mjs) and talk to it like a frontend does.

Stdlib only. Before use, install the server once: ``npm ci`` in this folder.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

SERVER_DIR = Path(__file__).resolve().parent
SESSION_COOKIE = "better-auth.session_token"
# Test-only secret; it only encrypts the JWT plugin's private keys in AUTH_DB.
DEFAULT_SECRET = "e2e-only-better-auth-secret-0123456789abcdef"
ALGORITHMS = ("EdDSA", "ES256", "ES512", "PS256", "RS256")


class RotationResult(TypedDict):
    """What ``POST /e2e/rotate-key`` answers."""

    expired_kids: list[str]
    new_kid: str
    alg: str


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_auth_server(
    port: int,
    db_path: str | os.PathLike[str],
    alg: str = "EdDSA",
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Start server.mjs on 127.0.0.1:port and wait for its ``ready`` line.

    ``db_path`` is the SQLite file (kept across restarts on the same path; keys in it
    are encrypted with BETTER_AUTH_SECRET, so keep that the same too). The key rotation
    endpoint is enabled (E2E_ALLOW_ROTATE=1) unless ``env`` says otherwise. ``env``
    entries override everything else (e.g. JWT_GRACE_PERIOD, BETTER_AUTH_SECRET).
    The server's stdout goes to ``<db_path>.stdout.log``, its stderr is appended to
    ``<db_path>.stderr.log``.
    Raises RuntimeError (with the server's stderr) if it exits or is not ready in time.
    """
    if not (SERVER_DIR / "node_modules" / "better-auth").is_dir():
        raise RuntimeError(f"Better Auth is not installed: run `npm ci` in {SERVER_DIR}")
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {ALGORITHMS}, got {alg!r}")
    full_env = {
        **os.environ,
        "BETTER_AUTH_SECRET": DEFAULT_SECRET,
        "E2E_ALLOW_ROTATE": "1",
        "AUTH_DB": os.fspath(db_path),
        "JWT_ALG": alg,
        "PORT": str(port),
        **(env or {}),
    }
    out_path = Path(f"{os.fspath(db_path)}.stdout.log")
    err_path = Path(f"{os.fspath(db_path)}.stderr.log")
    err_start = err_path.stat().st_size if err_path.exists() else 0
    with open(out_path, "wb") as out, open(err_path, "ab") as err:
        proc = subprocess.Popen(
            ["node", str(SERVER_DIR / "server.mjs")],
            cwd=SERVER_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + timeout
    while True:
        if out_path.read_bytes().startswith(b"ready "):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(
                f"Better Auth server exited with code {proc.returncode} before it was ready:\n"
                + _tail(err_path, err_start)
            )
        if time.monotonic() > deadline:
            stop_auth_server(proc)
            raise RuntimeError(
                f"Better Auth server not ready after {timeout:.0f}s:\n" + _tail(err_path, err_start)
            )
        time.sleep(0.05)


def _tail(path: Path, start: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def stop_auth_server(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Stop the server with SIGTERM (SIGKILL after ``timeout`` s) and return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def auth_base_url(port: int) -> str:
    """The server's base URL, which is also the ``iss`` and ``aud`` of its JWTs."""
    return f"http://127.0.0.1:{port}"


def _request(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(
            f"{method} {url} -> {e.code}: {e.read().decode(errors='replace')}"
        ) from None


def _session_call(base_url: str, path: str, body: Mapping[str, str]) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    # Better Auth refuses cookie-setting POSTs whose Origin is not in trustedOrigins.
    _request(base_url + path, method="POST", body=body, headers={"Origin": base_url}, opener=opener)
    for cookie in jar:
        if cookie.name == SESSION_COOKIE:
            return f"{cookie.name}={cookie.value}"
    raise RuntimeError(f"POST {path} set no {SESSION_COOKIE} cookie")


def sign_up(base_url: str, email: str, password: str, name: str) -> str:
    """Create a user (password >= 8 chars) and return its session cookie as ``name=value``."""
    return _session_call(
        base_url, "/api/auth/sign-up/email", {"email": email, "password": password, "name": name}
    )


def sign_in(base_url: str, email: str, password: str) -> str:
    """Start a new session for an existing user; return its session cookie as ``name=value``."""
    return _session_call(
        base_url, "/api/auth/sign-in/email", {"email": email, "password": password}
    )


def fetch_jwt(base_url: str, cookie: str) -> str:
    """Get a JWT for a session as a Next.js frontend does: GET /api/auth/token with the cookie."""
    return str(_request(base_url + "/api/auth/token", headers={"Cookie": cookie})["token"])


def jwks_url(base_url: str) -> str:
    """The JWKS URL to give the Django service."""
    return base_url + "/api/auth/jwks"


def fetch_jwks(base_url: str) -> dict[str, Any]:
    """Return the published JSON Web Key Set, ``{"keys": [...]}``."""
    return dict(_request(jwks_url(base_url)))


def rotate_signing_key(base_url: str) -> RotationResult:
    """Rotate the signing key: new tokens get a new ``kid``; old keys stay in the JWKS.

    The current key is marked expired exactly as Better Auth's ``jwks.rotationInterval``
    would; Better Auth then mints the new key and keeps listing the old one for
    ``JWT_GRACE_PERIOD`` seconds (default 30 days). Needs E2E_ALLOW_ROTATE=1 (the default
    of start_auth_server).
    """
    result = _request(base_url + "/e2e/rotate-key", method="POST")
    return RotationResult(
        expired_kids=list(result["expired_kids"]),
        new_kid=str(result["new_kid"]),
        alg=str(result["alg"]),
    )
