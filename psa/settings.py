"""Settings, read from the environment.

With nothing set the project runs on SQLite with Celery tasks executed in-process
(the one-command start). With DATABASE_URL / REDIS_URL it runs on PostgreSQL and
Redis with real workers and beat.
"""

import datetime
import logging
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab  # noqa: F401  (kept for beat schedule readers)
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from psa import queues

BASE_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("psa.settings")


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
PRODUCTION = env_bool("PSA_PRODUCTION", False)
if PRODUCTION and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("PSA_PRODUCTION is set but SECRET_KEY is the development key; set SECRET_KEY.")

# --- HTTPS: on by default in production (README, "Configuration") ------------------------
# Behind a TLS-terminating proxy that overwrites X-Forwarded-Proto (deploy/nginx does), trust it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("PSA_TRUST_X_FORWARDED_PROTO") else None
# PSA_SSL_REDIRECT=0 when the proxy redirects HTTP to HTTPS itself.
SECURE_SSL_REDIRECT = env_bool("PSA_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("PSA_SECURE_COOKIES", PRODUCTION)
SECURE_HSTS_SECONDS = int(os.environ.get("PSA_HSTS_SECONDS", "31536000" if PRODUCTION else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PSA_HSTS_INCLUDE_SUBDOMAINS", True)
# Browser preload lists are a one-way commitment for the whole domain: opt in only.
SECURE_HSTS_PRELOAD = env_bool("PSA_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if PRODUCTION and not SECURE_SSL_REDIRECT and SECURE_PROXY_SSL_HEADER:
    SILENCED_SYSTEM_CHECKS.append("security.W008")  # the TLS proxy redirects (PSA_SSL_REDIRECT=0)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PUBLIC_BASE_URL = os.environ.get("PSA_PUBLIC_BASE_URL", "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "psa",
    "tickets",
    "assets",
    "integrations",
    "alerts",
    "integrations.generic",
    "integrations.tactical",
    "integrations.level",
    "integrations.ninjaone",
    "integrations.huntress",
    "incidents",
    "outbox",
]
# More provider apps (a provider packaged on its own): PSA_PLUGINS=acme_rmm,other_rmm
INSTALLED_APPS += env_list("PSA_PLUGINS")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "psa.middleware.RejectNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "psa.tenancy.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes documents: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "psa.urls"
WSGI_APPLICATION = "psa.wsgi.application"
AUTH_USER_MODEL = "psa.User"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/tickets/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "psa" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "psa.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Health checks: a connection broken by a database restart is replaced at the next request, not failed on.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("PSA_SQLITE_PATH", str(BASE_DIR / "psa.sqlite3")),
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EMBEDDED = not DATABASE_URL

# --- Celery -------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL or env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery closes Django's DB connection around every task unless told to reuse it; a new
# PostgreSQL connection per alert halved pipeline throughput (docs/benchmarks.md).
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down must not hang the webhook: fail fast, the sweeper re-enqueues.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "socket_timeout": 2, "socket_connect_timeout": 2}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT
# Declared, so a plain `celery -A psa worker` consumes every queue (`-Q intake` still narrows it);
# without this list a worker started with no -Q listened on "default" only and webhooks sat in
# "intake" forever. Same exchange/routing key as Celery's auto-created queues, so existing
# bindings and messages stay valid.
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name), routing_key=name) for name in queues.QUEUES)
CELERY_TASK_ROUTES = {
    "alerts.*": {"queue": "intake"},
    "integrations.sync.*": {"queue": "sync"},
    "notifications.*": {"queue": "notifications"},
    "outbox.*": {"queue": "notifications"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "integrations-dispatch-polls": {"task": "integrations.dispatch_due_polls", "schedule": 60.0},
    # Device (and inventory) syncs older than PSA_DEVICE_SYNC_HOURS run again (integrations.services.schedule).
    "integrations-dispatch-device-syncs": {"task": "integrations.dispatch_due_device_syncs", "schedule": 900.0},
    # Every 5 s (one count query): a killed worker's events (its 15 s lease no longer renewed by its heartbeat,
    # alerts.services.lease) are taken over by another worker within ~20 s.
    "alerts-sweep-inbound-events": {"task": "alerts.sweep_inbound_events", "schedule": 5.0},
    "alerts-reevaluate-maintenance": {"task": "alerts.reevaluate_ended_windows", "schedule": 60.0},
    # Noise control: coalesced occurrence notes written; flapping conditions' tickets closed once stable.
    "alerts-flush-occurrence-notes": {"task": "alerts.flush_occurrence_notes", "schedule": 60.0},
    "alerts-close-stable-flapping": {"task": "alerts.close_stable_flapping", "schedule": 60.0},
    # Side effects due and in no worker's hands (a broker outage, a killed worker): published again.
    "outbox-sweep": {"task": "outbox.sweep", "schedule": 30.0},
    # Quiet-provider alarm (integrations.services.health): notifies admins once per alarm.
    "integrations-check-quiet-providers": {"task": "integrations.check_quiet_providers", "schedule": 300.0},
    # A tiny task to each queue every minute: the RMM tab warns about a queue nobody consumes.
    **queues.beat_schedule(),
}

# --- Cache (used for throttles and locks) ----------------------------------------
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth / i18n ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account or address before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Login throttling (psa/lockout.py): PSA_LOGIN_FAILURE_LIMIT failures lock the account (from any
# address) and the address (for any account) for PSA_LOGIN_LOCKOUT_MINUTES; success resets.
AXES_FAILURE_LIMIT = int(os.environ.get("PSA_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = datetime.timedelta(minutes=int(os.environ.get("PSA_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "psa.lockout.client_ip"
AXES_USERNAME_CALLABLE = "psa.lockout.username"
AXES_USERNAME_FORM_FIELD = "username"  # the login form's field (USERNAME_FIELD is "email")
# Proxies in front that append to X-Forwarded-For (the docker-compose proxy: 1). 0 = REMOTE_ADDR.
PSA_TRUSTED_PROXY_COUNT = int(os.environ.get("PSA_TRUSTED_PROXY_COUNT", "0"))
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage" if not DEBUG else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# --- Email -----------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if os.environ.get("EMAIL_HOST") else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "psa@localhost")

# --- REST framework ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "psa.api.authentication.TenantTokenAuthentication",
        "psa.api.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["psa.api.permissions.IsTenantMember"],
    "DEFAULT_PAGINATION_CLASS": "psa.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "psa.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "psa.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["psa.api.parsers.JSONParser", "rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser"],
    "UNAUTHENTICATED_USER": None,
    # psa/api/throttles.py: wrong API tokens per address; member changes per admin.
    "DEFAULT_THROTTLE_RATES": {
        "bad_token": os.environ.get("PSA_API_BAD_TOKEN_RATE", "30/min"),
        "accounts": os.environ.get("PSA_API_ACCOUNT_CHANGES_RATE", "60/hour"),
        # Accepting an invitation (API and web page, no sign-in), per client address.
        "invitation_accept": os.environ.get("PSA_API_INVITATION_ACCEPT_RATE", "20/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PSA API",
    "DESCRIPTION": "Multi-tenant PSA with an RMM integration module",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets served from our own static files (no CDN: works offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields named state/status with different choice sets: stable names instead of hash suffixes.
    "ENUM_NAME_OVERRIDES": {
        "AlertStateEnum": "alerts.models.AlertState",
        "InboundEventStatusEnum": "alerts.models.InboundEventStatus",
    },
}

# --- Product settings -----------------------------------------------------------------
# Credential encryption keys: comma-separated Fernet keys, first encrypts, all decrypt.
PSA_CREDENTIAL_KEYS = env_list("PSA_CREDENTIAL_KEYS")
if not PSA_CREDENTIAL_KEYS:
    if PRODUCTION:
        raise ImproperlyConfigured("PSA_PRODUCTION is set but PSA_CREDENTIAL_KEYS is empty.")
    # Development-only key derived from SECRET_KEY; production must set its own.
    import base64
    import hashlib

    PSA_CREDENTIAL_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(("cred:" + SECRET_KEY).encode()).digest()).decode()]
PSA_ALLOW_PRIVATE_PROVIDER_URLS = env_bool("PSA_ALLOW_PRIVATE_PROVIDER_URLS", False)
PSA_WEBHOOK_MAX_BYTES = int(os.environ.get("PSA_WEBHOOK_MAX_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = max(PSA_WEBHOOK_MAX_BYTES + 1024, 2621440)
PSA_WEBHOOK_FLOOD_PER_MINUTE = int(os.environ.get("PSA_WEBHOOK_FLOOD_PER_MINUTE", "60000"))
PSA_WEBHOOK_FLOOD_PER_MINUTE_TENANT = int(os.environ.get("PSA_WEBHOOK_FLOOD_PER_MINUTE_TENANT", "120000"))
# The operator (not a tenant) hears of backlogs that keep growing: PSA_OPERATOR_EMAILS=ops@example.com,...
PSA_BACKLOG_ALARM = int(os.environ.get("PSA_BACKLOG_ALARM", "1000"))
# The fair dispatcher (alerts.services.dispatch): events one turn claims in all, and per integration.
PSA_DISPATCH_TURN = int(os.environ.get("PSA_DISPATCH_TURN", "32"))
PSA_DISPATCH_PER_INTEGRATION = int(os.environ.get("PSA_DISPATCH_PER_INTEGRATION", "8"))
# Drains commit without waiting for the WAL flush (intake's stored row stays synchronous): see
# alerts.services.dispatch._asynchronous_commit. 0 makes every commit wait.
PSA_DRAIN_ASYNC_COMMIT = env_bool("PSA_DRAIN_ASYNC_COMMIT", True)
# Every connected device provider is synced again when its last device sync is older than this (0: off).
PSA_DEVICE_SYNC_HOURS = float(os.environ.get("PSA_DEVICE_SYNC_HOURS", "6"))
ADMINS = [(email, email) for email in env_list("PSA_OPERATOR_EMAILS")]
# Days an invitation link (POST /api/v1/users/, psa.services.invitations) stays valid; a resend restarts it.
PSA_INVITATION_DAYS = float(os.environ.get("PSA_INVITATION_DAYS", "7"))
PSA_HTTP_TIMEOUT = float(os.environ.get("PSA_HTTP_TIMEOUT", "15"))
PSA_HTTP_RETRIES = int(os.environ.get("PSA_HTTP_RETRIES", "3"))
# Side effects (the outbox) and noise control: docs/alerts.md.
PSA_OUTBOX_RETRY_BASE_SECONDS = float(os.environ.get("PSA_OUTBOX_RETRY_BASE_SECONDS", "10"))
PSA_OUTBOX_RETRY_MAX_SECONDS = float(os.environ.get("PSA_OUTBOX_RETRY_MAX_SECONDS", "600"))
PSA_OUTBOX_GIVE_UP_SECONDS = float(os.environ.get("PSA_OUTBOX_GIVE_UP_SECONDS", str(6 * 3600)))
PSA_INBOUND_LEASE_SECONDS = int(os.environ.get("PSA_INBOUND_LEASE_SECONDS", "15"))
PSA_STORM_NEW_CONDITIONS_PER_MINUTE = int(os.environ.get("PSA_STORM_NEW_CONDITIONS_PER_MINUTE", "50"))
PSA_FLAP_COUNT = int(os.environ.get("PSA_FLAP_COUNT", "2"))
PSA_FLAP_WINDOW_MINUTES = float(os.environ.get("PSA_FLAP_WINDOW_MINUTES", "30"))
PSA_FLAP_STABLE_MINUTES = float(os.environ.get("PSA_FLAP_STABLE_MINUTES", "10"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"},
    },
    # Invitation links carry their secret in the path: psa.redact keeps it out of every log line (and out
    # of runserver's request lines, Django's own "django.server" handler otherwise).
    "filters": {"redact": {"()": "psa.redact.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
