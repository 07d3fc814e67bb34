"""Settings for the Tasks API, read from the environment (12-factor) and an optional `.env`.

Production safety is the default: DEBUG is off and the service refuses to start without a key to
check tokens with. Development is opt-in (`make run` writes a `.env` with DEBUG on).
"""

import hmac
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from todo_project.environment import Env

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
# Real environment variables win over the file.
Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# --- Token verification ---------------------------------------------------------------------
# Shared-secret mode: HS256 tokens signed with BETTER_AUTH_SECRET. JWKS mode: tokens signed by a
# Better Auth server's own keys (EdDSA by default), published at BETTER_AUTH_URL/api/auth/jwks.
# Either or both.
BETTER_AUTH_SECRET = env.str("BETTER_AUTH_SECRET", default="")
BETTER_AUTH_SECRET_MIN_LENGTH = 32
BETTER_AUTH_URL = env.http_url("BETTER_AUTH_URL")
BETTER_AUTH_JWKS_URL = env.http_url("BETTER_AUTH_JWKS_URL") or (
    f"{BETTER_AUTH_URL}/api/auth/jwks" if BETTER_AUTH_URL else None
)
JWKS_ALGORITHMS = ["EdDSA", "ES256", "ES512", "PS256", "RS256"]  # what Better Auth can sign with
SUPPORTED_JWT_ALGORITHMS = ["HS256", *JWKS_ALGORITHMS]
JWT_ALGORITHMS = env.list(
    "JWT_ALGORITHMS",
    default=(["HS256"] if BETTER_AUTH_SECRET else [])
    + (JWKS_ALGORITHMS if BETTER_AUTH_JWKS_URL else []),
)
JWT_ISSUER = env.str("JWT_ISSUER", default="") or None
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="") or None
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
JWKS_CACHE_SECONDS = env.int("JWKS_CACHE_SECONDS", default=600)
JWKS_MISS_REFETCH_SECONDS = env.int("JWKS_MISS_REFETCH_SECONDS", default=30)
JWKS_FETCH_TIMEOUT_SECONDS = env.float("JWKS_FETCH_TIMEOUT_SECONDS", default=3.0)

# ImproperlyConfigured (not SystemExit) so that the gunicorn master exits instead of restarting
# workers in a loop.
if (
    not DEBUG
    and not BETTER_AUTH_JWKS_URL
    and len(BETTER_AUTH_SECRET) < BETTER_AUTH_SECRET_MIN_LENGTH
):
    raise ImproperlyConfigured(
        f"BETTER_AUTH_SECRET must be set to at least {BETTER_AUTH_SECRET_MIN_LENGTH} characters, "
        "or BETTER_AUTH_URL (Better Auth's JWKS) must be set, when DEBUG is off."
    )
if not DEBUG and 0 < len(BETTER_AUTH_SECRET) < BETTER_AUTH_SECRET_MIN_LENGTH:
    raise ImproperlyConfigured(
        f"BETTER_AUTH_SECRET must be at least {BETTER_AUTH_SECRET_MIN_LENGTH} characters."
    )
if unknown := set(JWT_ALGORITHMS) - set(SUPPORTED_JWT_ALGORITHMS):
    raise ImproperlyConfigured(
        f"JWT_ALGORITHMS: unsupported {sorted(unknown)}; use {list(SUPPORTED_JWT_ALGORITHMS)}."
    )
if not 0 <= JWT_LEEWAY_SECONDS <= 60:
    raise ImproperlyConfigured("JWT_LEEWAY_SECONDS must be between 0 and 60.")

# Django's key signs the pagination cursors and sync tokens (and, in DEBUG, the login form's CSRF
# cookie), so every worker and instance needs the same one, and nobody else may know it:
# DJANGO_SECRET_KEY, or, in shared-secret mode, a key derived from BETTER_AUTH_SECRET (an HMAC:
# whoever knows the shared secret can sign any token already). Never one derived from settings
# that are not secret (the database and JWKS URLs). With DEBUG on, a fixed development key.
SECRET_KEY_MIN_LENGTH = 50  # and 5 distinct characters: Django's deployment check (security.W009)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if SECRET_KEY:
    if not DEBUG and (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or len(set(SECRET_KEY)) < 5):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} random characters."
        )
elif BETTER_AUTH_SECRET:
    SECRET_KEY = hmac.new(
        BETTER_AUTH_SECRET.encode(), b"tasks-api: Django SECRET_KEY", "sha256"
    ).hexdigest()
elif DEBUG:
    SECRET_KEY = "django-insecure-development-only"
else:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be set (at least {SECRET_KEY_MIN_LENGTH} random characters) "
        "when DEBUG is off and BETTER_AUTH_SECRET is not set."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# --- Applications -----------------------------------------------------------------------------
INSTALLED_APPS = [
    # First: its `createsuperuser` and `changepassword` replace django.contrib.auth's.
    "tasks",
    # simplejwt imports django.contrib.auth (which needs contenttypes); the database router keeps
    # both apps' tables out of the database.
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "tasks.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # API views are exempt (bearer tokens are not sent by browsers on their own); it guards the
    # development login form and the DEBUG-only cookie authentication.
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it answers from process_view, so every response header above still applies.
    "tasks.middleware.BearerTokenGate",
]

ROOT_URLCONF = "todo_project.urls"
WSGI_APPLICATION = "todo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] not in (
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
):
    raise ImproperlyConfigured("DATABASE_URL: only postgres://… and sqlite:///… are supported.")
DATABASE_ROUTERS = ["tasks.routers.NoAuthTablesRouter"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A health check is one more round trip on every request. Without it, a connection broken
    # while idle fails one request (503, retryable) and is then replaced: Django closes a
    # connection that raised an error at the end of the request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    # A transaction-mode pooler (Neon's pooled endpoint, PgBouncer) cannot keep a cursor open
    # across transactions.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})
    # An unreachable database must answer 503 within seconds, never hang a worker: a bounded
    # connect, and a connection whose peer stops acknowledging is dropped (TCP_USER_TIMEOUT).
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    DATABASES["default"]["OPTIONS"].setdefault("tcp_user_timeout", 5000)
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=False):
        # Server-side binding, each statement prepared once per connection (saves the parse and
        # plan of every query). Only on a direct connection or a pooler that keeps
        # prepared statements (PgBouncer 1.21+ with max_prepared_statements, Neon's pooler).
        DATABASES["default"]["OPTIONS"].update(server_side_binding=True, prepare_threshold=1)
    DATABASES["default"]["OPTIONS"].setdefault("keepalives_idle", 30)
else:
    # Several gunicorn workers may write to the same SQLite file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and rate limits ---------------------------------------------------------------------
# Redis, when given, is shared by every worker: the JWKS keys and the rate-limit counters.
REDIS_URL = env.str("REDIS_URL", default="") or None
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # A hung Redis must cost a request half a second, not hold it (redis-py waits forever).
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
TOMBSTONE_RETENTION_DAYS = env.int("TOMBSTONE_RETENTION_DAYS", default=30)
RATE_LIMIT = env.str("RATE_LIMIT", default="600/minute")
MAX_TASKS_PER_USER = env.int("MAX_TASKS_PER_USER", default=100_000, minimum=1)
MAX_LISTS_PER_USER = env.int("MAX_LISTS_PER_USER", default=1000, minimum=1)

# --- Internationalisation and time ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files (Swagger UI, the browsable API) ---------------------------------------------
STATIC_URL = "/static/"
# WhiteNoise serves straight from the installed apps: no collectstatic step to forget on deploy.
WHITENOISE_USE_FINDERS = True

# --- Request limits ---------------------------------------------------------------------------
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
APPEND_SLASH = False

# --- REST framework ---------------------------------------------------------------------------
_renderers = ["tasks.renderers.ORJSONRenderer"]
_parsers = ["tasks.parsers.JSONObjectParser"]
_authentication = ["tasks.authentication.BearerTokenAuthentication"]
if DEBUG:
    # The browsable API, for debugging in a browser (docs/browsing.md).
    _renderers.append("tasks.browsable.TasksBrowsableAPIRenderer")
    _parsers += ["rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser"]
    _authentication.append("tasks.authentication.DevelopmentCookieAuthentication")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": _authentication,
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": _renderers,
    "DEFAULT_PARSER_CLASSES": _parsers,
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tasks.renderers.ContentNegotiation",
    "DEFAULT_THROTTLE_CLASSES": ["tasks.throttling.UserRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "tasks.schema.TaskAPIAutoSchema",
    "EXCEPTION_HANDLER": "tasks.exceptions.exception_handler",
    "DEFAULT_VERSIONING_CLASS": None,
}

DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_HANDLER_CLASS": "tasks.exceptions.TaskAPIExceptionHandler",
    "EXCEPTION_FORMATTER_CLASS": "tasks.exceptions.ErrorFormatter",
    # JSON errors with DEBUG on too: the contract allows no HTML page under /v1.
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
}

SIMPLE_JWT = {
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_CLAIM": "sub",
    "USER_ID_FIELD": "id",
    # Better Auth tokens carry neither a token type nor a jti.
    "TOKEN_TYPE_CLAIM": None,
    "JTI_CLAIM": None,
    "AUTH_TOKEN_CLASSES": ("tasks.authentication.AccessToken",),
    "TOKEN_USER_CLASS": "tasks.authentication.TokenClaimsUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tasks API",
    "DESCRIPTION": "A multi-user todo tasks service. Every task belongs to the user named by the "
    "bearer token's `sub` claim; nobody sees, changes or learns of another user's tasks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    # The token given to "Authorize" survives a reload; each operation shows its operationId
    # (the typed client's names).
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "persistAuthorization": True,
        "displayOperationId": True,
    },
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A sync feed's entries: `deleted` is false for a list or task, true for a tombstone.
    "ENUM_NAME_OVERRIDES": {"LiveEnum": [(False, False)], "DeletedEnum": [(True, True)]},
    "SCHEMA_PATH_PREFIX": r"/v1",
    # Routes answer with and without the trailing slash; the schema names the canonical form.
    "PREPROCESSING_HOOKS": ["tasks.schema.without_trailing_slashes"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default
        "tasks.schema.add_task_links",
    ],
}

# --- Security headers (HSTS and the proxy header are for deployments behind TLS) ---------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
CSRF_COOKIE_SECURE = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$"]
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- CORS: the browser frontend's origins ------------------------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = [
    "location",
    "etag",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
    "idempotent-replayed",
]
CORS_PREFLIGHT_MAX_AGE = 600

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
ACCESS_LOG_LEVEL = env.str("ACCESS_LOG_LEVEL", default="INFO").upper()
for _name, _level in {"LOG_LEVEL": LOG_LEVEL, "ACCESS_LOG_LEVEL": ACCESS_LOG_LEVEL}.items():
    if _level not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{_name}: {_level!r} is not one of {', '.join(LOG_LEVELS)}.")

# One JSON object per line on stderr, from every logger. gunicorn.conf.py hands gunicorn's own
# loggers to this configuration too.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "tasks.logging.JSONFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Without handlers of its own (Django's default ones print plain text with DEBUG on):
        # its records reach the root's JSON handler.
        "django": {},
        # The access log already has a line for every 4xx; keep django.request for 5xx.
        "django.request": {"level": "ERROR"},
        "tasks.access": {"level": ACCESS_LOG_LEVEL},
    },
}
