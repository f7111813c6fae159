"""Settings come from the environment; every value has a default that works on a bare machine,
except the two secrets: with DEBUG off, SECRET_KEY and FIELD_ENCRYPTION_KEY must be set (README,
"Production settings").

DATABASE_URL  default: SQLite file under var/            (postgres://... for PostgreSQL)
REDIS_URL     default: none; CELERY_BROKER_URL then defaults to kombu's filesystem transport
EMAIL_URL     default: smtp://127.0.0.1:1025             (`make run` starts a sink there)
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from notify import keys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("NOTIFY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """`HTTP_X_FORWARDED_PROTO,https` → ("HTTP_X_FORWARDED_PROTO", "https"); '' → None."""
    if not value:
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    if not header.startswith("HTTP_") or not expected or "," in expected:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must be 'HTTP_<HEADER>,<value>', "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    return header, expected


env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# No built-in keys: with DEBUG off both come from the environment or the process stops here
# (notify/keys.py). With DEBUG on, a missing one is a development key kept in VAR_DIR.
SECRET_KEY = env.str("SECRET_KEY", default="")
# Earlier SECRET_KEYs, still accepted for signatures while sessions and tokens roll over.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# Fernet key(s) for provider credentials and legacy app secrets at rest, comma-separated and
# newest first. Independent of SECRET_KEY: a stolen database without it stays unreadable.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
if DEBUG and not (SECRET_KEY and FIELD_ENCRYPTION_KEY):
    _development_keys = keys.development_keys(VAR_DIR)
    SECRET_KEY = SECRET_KEY or _development_keys["SECRET_KEY"]
    FIELD_ENCRYPTION_KEY = FIELD_ENCRYPTION_KEY or _development_keys["FIELD_ENCRYPTION_KEY"]
try:
    keys.require_keys(SECRET_KEY, FIELD_ENCRYPTION_KEY)
except keys.KeyConfigurationError as exc:
    raise ImproperlyConfigured(str(exc)) from None

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Behind a TLS-terminating proxy: the origins the admin's forms are posted from
# (https://notify.example.com) and the header that says the original request was HTTPS.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env.str("SECURE_PROXY_SSL_HEADER", default=""))
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes talk plain HTTP to the process itself; a redirect to HTTPS would fail them.
SECURE_REDIRECT_EXEMPT = [r"^(livez|readyz|healthz)$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Cookies (the admin's session and CSRF token) travel over HTTPS only unless DEBUG is on.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "notify.tenants",
    "notify.messaging",
    "notify.channels",
    "notify.api",
    "notify.rollout",
    "notify.health",
    "compat",
    "templates_store",
]

MIDDLEWARE = [
    "notify.logs.RequestIdMiddleware",
    # the legacy /gateway API, routed before the platform's own middleware (compat/)
    "compat.middleware.LegacyGatewayMiddleware",
    "notify.api.middleware.LengthRequiredMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "notify.urls"
WSGI_APPLICATION = "notify.wsgi.application"
APPEND_SLASH = False
# A 1,000,000-character body escaped as \uXXXX in JSON is 6 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Connections are kept (a new PostgreSQL connection per request or task costs more than the
# work), and checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The delivery path's hottest statements are prepared on the server (notify/db.py); 0 where a
# connection cannot keep them (PgBouncer in transaction mode: before 1.22, or without
# max_prepared_statements).
NOTIFY_DB_PREPARED_STATEMENTS = env.bool("NOTIFY_DB_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and worker are separate processes: wait for the write lock instead of failing,
    # and take it at BEGIN so two writers never deadlock upgrading a read lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not :memory:, so that a worker process started by the e2e tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Legacy IDs and legacy answers use this wall clock (SPEC: Asia/Shanghai).
LEGACY_TIME_ZONE = "Asia/Shanghai"
# The old gateway, for tenants still on stage `legacy` (proxy mode). Empty: every legacy call
# is answered by the platform.
LEGACY_GATEWAY_URL = env.str("LEGACY_GATEWAY_URL", default="")
# A proxied call answers `50000 system error` when the old gateway takes longer than this.
LEGACY_PROXY_CONNECT_TIMEOUT = env.float("LEGACY_PROXY_CONNECT_TIMEOUT", default=2.0)
LEGACY_PROXY_TIMEOUT = env.float("LEGACY_PROXY_TIMEOUT", default=10.0)
# How long each process keeps an app, a template and its published version it looked up for a
# legacy call (seconds; 0: no caching): a change to them applies that much later.
LEGACY_LOOKUP_CACHE_SECONDS = env.float("LEGACY_LOOKUP_CACHE_SECONDS", default=2.0)
# How long each process keeps a v2 API key and its tenant (seconds; 0: looked up on every call):
# a key revoked or a tenant disabled elsewhere is refused that much later.
NOTIFY_API_KEY_CACHE_SECONDS = env.float("NOTIFY_API_KEY_CACHE_SECONDS", default=2.0)
# A legacy call's body larger than this is refused (`50000`) before it is read.
LEGACY_MAX_BODY_BYTES = env.int("LEGACY_MAX_BODY_BYTES", default=16 * 1024 * 1024)
# Delivery reports to a tenant's callback_url: first try at once, then after these delays
# (seconds), each try given LEGACY_CALLBACK_TIMEOUT seconds (SPEC: 10, 60, 300; 5 s).
LEGACY_CALLBACK_DELAYS = [
    float(delay) for delay in env.list("LEGACY_CALLBACK_DELAYS", default=["10", "60", "300"])
]
LEGACY_CALLBACK_TIMEOUT = env.float("LEGACY_CALLBACK_TIMEOUT", default=5.0)
# Requests to URLs tenants give (callbacks, webhooks) may go to loopback, private and
# link-local addresses only when this is on (development and tests; never in production).
ALLOW_PRIVATE_TARGETS = env.bool("ALLOW_PRIVATE_TARGETS", default=False)
# The legacy gateway's export (apps/templates/messages/samples .jsonl).
LEGACY_DATA_DIR = Path(
    env.str("LEGACY_DATA_DIR", default=str(BASE_DIR.parent / "shared" / "legacy" / "data"))
)
# Converted legacy templates run as compiled Python functions (the fast path) unless this is
# off; off, every render goes through Jinja (templates_store.engines passes it to the engine).
# Read by the engine's own rule (velocity.engine.fast_path_default): only 0/false/off/no is off.
TEMPLATE_FAST_PATH = env.str("NOTIFY_TEMPLATE_FAST_PATH", default="1").strip().lower() not in (
    "0",
    "false",
    "off",
    "no",
)

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="smtp://127.0.0.1:1025")
vars().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="notify@localhost")
# The platform's public base URL (https://notify.example.com): links it puts in messages (a
# bulk email's one-click List-Unsubscribe) and the receipts URLs it shows are made from it.
NOTIFY_PUBLIC_URL = env.str("NOTIFY_PUBLIC_URL", default="")
# An ESP's HTTP API instead of SMTP for the platform's own email: an anymail backend, e.g.
# EMAIL_BACKEND=anymail.backends.mailgun.EmailBackend with ANYMAIL='{"MAILGUN_API_KEY": "…",
# "MAILGUN_WEBHOOK_SIGNING_KEY": "…", "WEBHOOK_SECRET": "user:password"}'; its tracking
# webhooks are /anymail/<esp>/tracking/ (docs/providers.md).
if env.str("EMAIL_BACKEND", default=""):
    EMAIL_BACKEND = env.str("EMAIL_BACKEND")
ANYMAIL = env.json("ANYMAIL", default={})

# The generic HTTP SMS and push providers (docs/http-providers.md): a channel without a URL
# has no provider (its messages fail permanently, saying so).
SMS_HTTP_URL = env.str("SMS_HTTP_URL", default="")
SMS_HTTP_SECRET = env.str("SMS_HTTP_SECRET", default="")
PUSH_HTTP_URL = env.str("PUSH_HTTP_URL", default="")
PUSH_HTTP_SECRET = env.str("PUSH_HTTP_SECRET", default="")
HTTP_PROVIDER_TIMEOUT = env.float("HTTP_PROVIDER_TIMEOUT", default=10.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["notify.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["notify.api.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "notify.api.negotiation.QualityAwareNegotiation",
    "EXCEPTION_HANDLER": "notify.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["notify.api.throttling.TenantRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "notify.api.schema.NotifyAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Notify API v2",
    "DESCRIPTION": "Multi-channel notifications. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "2.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Every channel is sendable (registry.SENDABLE_CHANNEL_CHOICES == CHANNEL_CHOICES): one
    # enum, since two names for one choice set is a warning. A channel declared without a
    # transport brings back "SendableChannelEnum": "...registry.SENDABLE_CHANNEL_CHOICES".
    "ENUM_NAME_OVERRIDES": {
        "ChannelEnum": "notify.channels.registry.CHANNEL_CHOICES",
    },
    # every operation's shared error answers (401, 404, 400, 429…), in the API's error shape
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "notify.api.schema.document_shared_answers",
    ],
}

# Celery. Without REDIS_URL the broker is kombu's filesystem transport: no server needed.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Retries wait in the database, not in the broker; an unacknowledged task is redelivered
    # after this (the conditional claim makes a redelivery harmless).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="notify")
# Lanes: transactional messages and bulk chunks wait in queues of their own. A worker started
# without -Q serves all of them; production runs a pool per lane (README).
NOTIFY_TRANSACTIONAL_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.transactional"
NOTIFY_BULK_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.bulk"
# calls to tenants' own endpoints (webhooks, legacy delivery reports): a slow endpoint holds
# these workers, never the ones sending codes
NOTIFY_HOOKS_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.hooks"
CELERY_TASK_QUEUES = [
    Queue(CELERY_TASK_DEFAULT_QUEUE),
    Queue(NOTIFY_TRANSACTIONAL_QUEUE),
    Queue(NOTIFY_BULK_QUEUE),
    Queue(NOTIFY_HOOKS_QUEUE),
]
CELERY_TASK_ROUTES = {
    "messaging.deliver_message": {"queue": NOTIFY_TRANSACTIONAL_QUEUE},
    "messaging.deliver_due_transactional": {"queue": NOTIFY_TRANSACTIONAL_QUEUE},
    "messaging.deliver_bulk": {"queue": NOTIFY_BULK_QUEUE},
    "messaging.deliver_webhook": {"queue": NOTIFY_HOOKS_QUEUE},
    "compat.deliver_callback": {"queue": NOTIFY_HOOKS_QUEUE},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Health: workers write a heartbeat this often (seconds); /readyz counts a worker alive while its
# last one is younger than three intervals. HEALTH_TOKEN (bearer) shows the checks' details.
NOTIFY_HEARTBEAT_INTERVAL = env.float("NOTIFY_HEARTBEAT_INTERVAL", default=5.0)
HEALTH_TOKEN = env.str("HEALTH_TOKEN", default="")

# Dispatch: delays in seconds before retry 1, 2, ...; after the last one a message fails.
NOTIFY_RETRY_DELAYS = env.list("NOTIFY_RETRY_DELAYS", cast=int, default=[10, 60, 300, 900, 3600])
# The database holds the pending work; broker messages are wake-ups. Every NOTIFY_SWEEP_INTERVAL
# seconds the sweep (Celery beat: `celery -A notify worker -B`) queues again the messages whose
# worker stopped mid-send (NOTIFY_SENDING_LEASE after their claim) and publishes again the due
# messages no worker claimed within NOTIFY_REPUBLISH_AFTER seconds of their last publish, at most
# NOTIFY_SWEEP_BATCH of each per run.
NOTIFY_SWEEP_INTERVAL = env.float("NOTIFY_SWEEP_INTERVAL", default=2.0)
NOTIFY_REPUBLISH_AFTER = env.float("NOTIFY_REPUBLISH_AFTER", default=60.0)
# ... sooner for the transactional lane (codes): a wake-up lost with its pending mark set holds
# back the codes accepted meanwhile this long at most (they are republished together, coalesced)
NOTIFY_TRANSACTIONAL_REPUBLISH_AFTER = env.float(
    "NOTIFY_TRANSACTIONAL_REPUBLISH_AFTER", default=10.0
)
NOTIFY_SENDING_LEASE = env.float("NOTIFY_SENDING_LEASE", default=300.0)
NOTIFY_SWEEP_BATCH = env.int("NOTIFY_SWEEP_BATCH", default=1000)
# A batch's messages are published in chunks of this many (one task sends a chunk).
NOTIFY_CHUNK_SIZE = env.int("NOTIFY_CHUNK_SIZE", default=100)
# The transactional lane: a woken worker sends its message, then the lane's other due messages
# one at a time (helpers share a burst); while a wake-up is pending (published, not yet taken;
# the mark lasts NOTIFY_WAKEUP_PENDING_MS at most) newly accepted messages publish none of their
# own (notify/messaging/wakeups.py).
NOTIFY_COALESCE_WAKEUPS = env.bool("NOTIFY_COALESCE_WAKEUPS", default=True)
NOTIFY_WAKEUP_PENDING_MS = env.int("NOTIFY_WAKEUP_PENDING_MS", default=3000)
# Bulk lane wake-ups in flight at most (each one that finds work publishes its successor): more
# than the bulk workers' total concurrency keeps them all busy.
NOTIFY_BULK_WAKEUPS = env.int("NOTIFY_BULK_WAKEUPS", default=32)
# Idempotency-Key: a key's first answer is replayed this long (seconds); a first request that
# has not completed after NOTIFY_IDEMPOTENCY_TAKEOVER seconds is taken over by its retry.
NOTIFY_IDEMPOTENCY_TTL = env.int("NOTIFY_IDEMPOTENCY_TTL", default=24 * 3600)
NOTIFY_IDEMPOTENCY_TAKEOVER = env.int("NOTIFY_IDEMPOTENCY_TAKEOVER", default=60)
# An email attachment's bytes are deleted by the sweep this many days after the latest message
# naming them was due (a retry by hand after that fails, saying so).
NOTIFY_ATTACHMENT_RETENTION_DAYS = env.float("NOTIFY_ATTACHMENT_RETENTION_DAYS", default=7.0)
# Follow-ups (notify/messaging/followups.py): the fallback, inbox item, webhook deliveries and
# legacy report of a finished message are written by the `message_finished` receivers right
# after its final status commits; a process that dies in between (or a receiver that fails)
# leaves one missing. Every NOTIFY_FOLLOW_UP_INTERVAL seconds the beat's follow-up sweep
# announces again the messages finished between NOTIFY_FOLLOW_UP_WINDOW and
# NOTIFY_FOLLOW_UP_GRACE seconds ago whose follow-up is missing (the receivers are idempotent),
# at most NOTIFY_FOLLOW_UP_BATCH per run. A follow-up missing for longer than the window stays
# missing: the window bounds each run's work.
NOTIFY_FOLLOW_UP_INTERVAL = env.float("NOTIFY_FOLLOW_UP_INTERVAL", default=60.0)
NOTIFY_FOLLOW_UP_WINDOW = env.float("NOTIFY_FOLLOW_UP_WINDOW", default=6 * 3600.0)
NOTIFY_FOLLOW_UP_GRACE = env.float("NOTIFY_FOLLOW_UP_GRACE", default=60.0)
NOTIFY_FOLLOW_UP_BATCH = env.int("NOTIFY_FOLLOW_UP_BATCH", default=1000)
# A delivery report that arrives before the worker recorded the send it reports on is kept
# and applied by the beat every NOTIFY_EARLY_RECEIPT_INTERVAL seconds; one that matches
# nothing for NOTIFY_EARLY_RECEIPT_TTL seconds is dropped (notify/messaging/receipts.py).
NOTIFY_EARLY_RECEIPT_INTERVAL = env.float("NOTIFY_EARLY_RECEIPT_INTERVAL", default=5.0)
NOTIFY_EARLY_RECEIPT_TTL = env.int("NOTIFY_EARLY_RECEIPT_TTL", default=600)
CELERY_BEAT_SCHEDULE = {
    "messaging-sweep": {
        "task": "messaging.sweep",
        "schedule": NOTIFY_SWEEP_INTERVAL,
        # a sweep that waited past the next one is useless
        "options": {"expires": NOTIFY_SWEEP_INTERVAL},
    },
    "shadow-sweep": {
        "task": "compat.sweep_shadow",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "rollout-evaluate": {
        "task": "rollout.evaluate",
        "schedule": env.float("ROLLOUT_EVALUATE_INTERVAL", default=10.0),
        "options": {"expires": 10.0},
    },
    "webhooks-sweep": {
        "task": "messaging.sweep_webhooks",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    "legacy-callbacks-sweep": {
        "task": "compat.sweep_callbacks",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    "early-receipts": {
        "task": "messaging.apply_early_receipts",
        "schedule": NOTIFY_EARLY_RECEIPT_INTERVAL,
        "options": {"expires": NOTIFY_EARLY_RECEIPT_INTERVAL},
    },
    "follow-ups-sweep": {
        "task": "messaging.sweep_follow_ups",
        "schedule": NOTIFY_FOLLOW_UP_INTERVAL,
        "options": {"expires": NOTIFY_FOLLOW_UP_INTERVAL},
    },
}

# Development: `console` or `file` "sends" the messages of a channel without a configured
# provider (SMS_HTTP_URL, PUSH_HTTP_URL unset) to the log or to NOTIFY_DEV_OUTBOX (`make run`).
NOTIFY_DEV_TRANSPORT = env.str("NOTIFY_DEV_TRANSPORT", default="")
NOTIFY_DEV_OUTBOX = env.str("NOTIFY_DEV_OUTBOX", default=str(VAR_DIR / "outbox.jsonl"))
if NOTIFY_DEV_TRANSPORT not in ("", "console", "file"):
    raise ImproperlyConfigured("NOTIFY_DEV_TRANSPORT is `console`, `file` or empty")

# Tenant webhooks (notify/messaging/webhooks.py): retries after these delays (seconds; the
# Standard Webhooks recommended schedule), each try's time limit, and how many deliveries in a
# row may give up before the subscription is disabled.
WEBHOOK_RETRY_DELAYS = env.list(
    "WEBHOOK_RETRY_DELAYS", cast=int, default=[5, 300, 1800, 7200, 18000, 36000, 36000]
)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=5)

# Providers' circuit breakers (notify.channels.breaker): this many failures within the window
# open one; it stays open for the cool-down, then lets one probe through.
PROVIDER_BREAKER_FAILURES = env.int("PROVIDER_BREAKER_FAILURES", default=5)
PROVIDER_BREAKER_WINDOW = env.float("PROVIDER_BREAKER_WINDOW", default=30.0)
PROVIDER_BREAKER_COOLDOWN = env.float("PROVIDER_BREAKER_COOLDOWN", default=10.0)

# Rollout (notify.rollout, docs/rollout.md). Gates, judged over ROLLOUT_GATE_WINDOW seconds:
# at least ROLLOUT_MIN_SHADOW_CALLS compared shadow calls, a mismatch rate at most
# ROLLOUT_MAX_MISMATCH_RATE (0: any mismatch blocks), and a platform error rate at most the old
# gateway's + ROLLOUT_ERROR_MARGIN. A tenant at canary or new whose platform error rate over
# ROLLOUT_AUTO_ROLLBACK_WINDOW seconds (at least ROLLOUT_AUTO_ROLLBACK_MIN_CALLS calls), or whose
# delivery failure rate (as many attempts), crosses ROLLOUT_AUTO_ROLLBACK_ERROR_RATE goes back to
# its previous stage.
ROLLOUT_GATE_WINDOW = env.int("ROLLOUT_GATE_WINDOW", default=24 * 3600)
ROLLOUT_MIN_SHADOW_CALLS = env.int("ROLLOUT_MIN_SHADOW_CALLS", default=20)
ROLLOUT_MAX_MISMATCH_RATE = env.float("ROLLOUT_MAX_MISMATCH_RATE", default=0.0)
ROLLOUT_ERROR_MARGIN = env.float("ROLLOUT_ERROR_MARGIN", default=0.01)
# the platform's deliveries of legacy-API messages failing for another reason than the recipient
ROLLOUT_MAX_DELIVERY_FAILURE_RATE = env.float("ROLLOUT_MAX_DELIVERY_FAILURE_RATE", default=0.05)
ROLLOUT_CANARY_STEPS = env.list("ROLLOUT_CANARY_STEPS", cast=int, default=[10, 25, 50])
ROLLOUT_AUTO_ROLLBACK_ERROR_RATE = env.float("ROLLOUT_AUTO_ROLLBACK_ERROR_RATE", default=0.05)
ROLLOUT_AUTO_ROLLBACK_MIN_CALLS = env.int("ROLLOUT_AUTO_ROLLBACK_MIN_CALLS", default=20)
ROLLOUT_AUTO_ROLLBACK_WINDOW = env.int("ROLLOUT_AUTO_ROLLBACK_WINDOW", default=300)
# each process writes its legacy-call counts every 5 s from a thread of its own (also when idle)
ROLLOUT_METRICS_FLUSH_THREAD = env.bool("ROLLOUT_METRICS_FLUSH_THREAD", default=True)
# Shadow comparison: at most SHADOW_MAX_MESSAGES messages of a call are compared; reading the
# old gateway's side is tried again after SHADOW_RETRY_DELAYS seconds, then given up.
SHADOW_MAX_MESSAGES = env.int("SHADOW_MAX_MESSAGES", default=20)
SHADOW_RETRY_DELAYS = env.list("SHADOW_RETRY_DELAYS", cast=int, default=[5, 30, 120])
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "notify.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "notify.logs.RequestIdFilter"}},
    # LOG_FORMAT=json: one JSON object per line, with the ids it is about (notify/logs.py)
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain"),
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
