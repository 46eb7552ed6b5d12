"""Django settings, read from the environment (see the configuration table in README.md).

Nothing configured means the embedded mode: SQLite under DATA_DIR, tasks run in-process and a
local-memory cache. DATABASE_URL and REDIS_URL switch to the production mode: PostgreSQL,
Celery workers fed through Redis, and a Redis cache shared by every process.
"""

from datetime import timedelta
from pathlib import Path

from dashboard.env import (
    ConfigError,
    database_config,
    email_config,
    env_bool,
    env_header,
    env_int,
    env_interval,
    env_list,
    env_str,
    generated_secret_key,
    redis_url,
    site_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not env_str("DATABASE_URL") and not env_str("REDIS_URL"):
        # Embedded mode: one machine, one DATA_DIR, so a key generated there serves every
        # process. In production each host would generate its own: there it must be set.
        SECRET_KEY = generated_secret_key(DATA_DIR / "secret_key")
    elif DEBUG:
        SECRET_KEY = "insecure-local-development-key-only-used-with-DEBUG-on"  # noqa: S105
    else:
        raise ConfigError(
            "SECRET_KEY: required when DATABASE_URL or REDIS_URL is set (with neither, the "
            "embedded mode generates one in DATA_DIR/secret_key)"
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
SITE_URL = site_url("SITE_URL", "http://127.0.0.1:8000")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL])

# Git mirrors live here; one bare repository per upstream.
MIRROR_DIR = DATA_DIR / "mirrors"
# Local repositories (file paths or file:// URLs) are accepted only below these roots, so a
# fork registered through the UI cannot make the server read arbitrary directories.
GIT_LOCAL_ROOTS = [Path(p).resolve() for p in env_list("GIT_LOCAL_ROOTS", [str(DATA_DIR)])]
# Seconds one git command may run before it is killed; a first clone of Chromium takes long.
GIT_TIMEOUT = env_int("GIT_TIMEOUT", 3600, minimum=1)
# Seconds registration's `git ls-remote` of a fork or upstream may take: a person waits for it.
GIT_CHECK_TIMEOUT = env_int("GIT_CHECK_TIMEOUT", 60, minimum=1)
# Partial clone filter for upstream mirrors ("blob:none", "tree:0", or empty for a full clone).
GIT_CLONE_FILTER = env_str("GIT_CLONE_FILTER", "blob:none")

# Upstream data sources. Base URLs are settings so a proxy or an internal mirror can stand in.
CHROMIUMDASH_URL = site_url("CHROMIUMDASH_URL", "https://chromiumdash.appspot.com")
VERSIONHISTORY_URL = site_url("VERSIONHISTORY_URL", "https://versionhistory.googleapis.com/v1")
CHROME_RELEASES_FEED_URL = site_url(
    "CHROME_RELEASES_FEED_URL", "https://chromereleases.googleblog.com/feeds/posts/default"
)
# Seconds before an HTTP request to an upstream source is abandoned (connect and read).
UPSTREAM_HTTP_TIMEOUT = env_int("UPSTREAM_HTTP_TIMEOUT", 30, minimum=1)
# Hours after which a source whose last success is older is shown (and alerted) as stale.
SOURCE_STALE_HOURS = env_int("SOURCE_STALE_HOURS", 24, minimum=1)
# Page bodies are cached until their data changes (tracker.pagecache); this bounds how stale
# their relative times get. 0 turns the cache off.
PAGE_CACHE_SECONDS = env_int("PAGE_CACHE_SECONDS", 60, minimum=0)
# Bearer token a Prometheus scraper sends to /metrics (unset: only logged-in users see it).
METRICS_TOKEN = env_str("METRICS_TOKEN")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tracker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a log-in it refused into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {
    "default": database_config(
        "DATABASE_URL",
        str(DATA_DIR / "forkhealth.sqlite3"),
        prepared_statements=env_bool("DATABASE_PREPARED_STATEMENTS", True),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's Redis backend, reusing its redis-py clients (tracker/rediscache.py).
            "BACKEND": "tracker.rediscache.ReusedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "forkhealth"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery. With REDIS_URL unset, tasks run eagerly in the calling process (embedded mode); the
# in-memory broker is never used then, but kombu warns about a URL without a host.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Nothing reads task results: state lives in the database (last_error, snapshots, ...).
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Three queues so that slow git work cannot starve the rest: "git" (fetch, ingest, snapshots:
# minutes to hours, run by workers with disk for mirrors), "http" (upstream sources: seconds,
# polite rate), "default" (linking, heartbeat, mail). Start workers with -Q for their roles.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "tracker.sync_fork": {"queue": "git"},
    "tracker.sync_all_forks": {"queue": "default"},
    "tracker.sync_upstream": {"queue": "git"},
    "tracker.maintain_mirror": {"queue": "git"},
    "tracker.maintain_mirrors": {"queue": "default"},
    "tracker.sync_chromiumdash": {"queue": "http"},
    "tracker.sync_versionhistory": {"queue": "http"},
    "tracker.sync_chrome_releases": {"queue": "http"},
}
# Acknowledge a task only once it finished: a worker killed half-way (SIGKILL, OOM, host
# lost) leaves it in the queue to be redone. Every task is idempotent, so redoing is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Take one task at a time: tasks are long, and a prefetched one would wait behind them while
# another worker sits idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Hard limit: the longest git command plus room for the database work around it; the soft
# limit lets the task record its error first.
CELERY_TASK_TIME_LIMIT = GIT_TIMEOUT + 1800
CELERY_TASK_SOFT_TIME_LIMIT = GIT_TIMEOUT + 1200
# Redis hands an unacknowledged task to another worker after the visibility timeout, so it
# must be longer than the longest task, or a long sync would run twice at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}
# git-heavy tasks leave large heaps behind; a fresh child process now and then returns them.
CELERY_WORKER_MAX_TASKS_PER_CHILD = 50
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Time to live of a sync lock: its holder renews it while it runs, so this is how long a sync
# of the same upstream stays blocked after its holder died (SIGKILL, lost host).
SYNC_LOCK_SECONDS = env_int("SYNC_LOCK_SECONDS", 300, minimum=3)
# Seconds between worker heartbeats; the health check calls workers down after three misses.
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 60, minimum=5)
# Upstream sources. Dash releases land several times a day (a run is a few dozen small
# requests); VersionHistory serving periods change with rollouts; the blog gets new bulletins
# and edits to old ones. Linking is a safety net: syncs that change data queue it already.
# 0 leaves a source unscheduled (script/server: the demo's upstream data is recorded, and
# live data would mix with it).
CHROMIUMDASH_SYNC_SECONDS = env_interval("CHROMIUMDASH_SYNC_SECONDS", 3600, minimum=300)
VERSIONHISTORY_SYNC_SECONDS = env_interval("VERSIONHISTORY_SYNC_SECONDS", 21600, minimum=900)
CHROME_RELEASES_SYNC_SECONDS = env_interval("CHROME_RELEASES_SYNC_SECONDS", 3600, minimum=300)
LINK_FIXES_SECONDS = env_int("LINK_FIXES_SECONDS", 21600, minimum=900)
# Forks: fetch, ingest upstream history and snapshot every tracked branch.
FORK_SYNC_SECONDS = env_int("FORK_SYNC_SECONDS", 3600, minimum=60)
# Mirror housekeeping (git gc, under the sync lock): git's automatic gc is off in mirrors, so
# this is what keeps the packs that fetches and blob fetches add from piling up.
MIRROR_MAINTENANCE_SECONDS = env_interval("MIRROR_MAINTENANCE_SECONDS", 86400, minimum=3600)
# Alerts: evaluated every ALERTS_EVALUATE_SECONDS and after each sync; the outbox is
# drained every ALERTS_DELIVER_SECONDS (immediate mail waits at most that long).
ALERTS_EVALUATE_SECONDS = env_int("ALERTS_EVALUATE_SECONDS", 900, minimum=60)
ALERTS_DELIVER_SECONDS = env_int("ALERTS_DELIVER_SECONDS", 60, minimum=5)
# The periodic table, read by celery beat and, in embedded mode, by the scheduler that
# script/server starts (manage.py run_scheduler, tracker/scheduler.py).
CELERY_BEAT_SCHEDULE = {
    "worker heartbeat": {
        "task": "tracker.record_worker_heartbeat",
        "schedule": WORKER_HEARTBEAT_SECONDS,
    },
    # "expires": a run that waited a whole interval in the queue is superseded by the next.
    "sync chromium dash": {
        "task": "tracker.sync_chromiumdash",
        "schedule": CHROMIUMDASH_SYNC_SECONDS,
        "options": {"expires": CHROMIUMDASH_SYNC_SECONDS},
    },
    "sync versionhistory": {
        "task": "tracker.sync_versionhistory",
        "schedule": VERSIONHISTORY_SYNC_SECONDS,
        "options": {"expires": VERSIONHISTORY_SYNC_SECONDS},
    },
    "sync chrome releases": {
        "task": "tracker.sync_chrome_releases",
        "schedule": CHROME_RELEASES_SYNC_SECONDS,
        "options": {"expires": CHROME_RELEASES_SYNC_SECONDS},
    },
    "link fixes": {"task": "tracker.link_all_fixes", "schedule": LINK_FIXES_SECONDS},
    "sync forks": {
        "task": "tracker.sync_all_forks",
        "schedule": FORK_SYNC_SECONDS,
        "options": {"expires": FORK_SYNC_SECONDS},
    },
    "maintain mirrors": {
        "task": "tracker.maintain_mirrors",
        "schedule": MIRROR_MAINTENANCE_SECONDS,
        "options": {"expires": MIRROR_MAINTENANCE_SECONDS},
    },
    # Syncs queue an evaluation when they finish; this catches what only time changes
    # (deadlines passing, sources going stale) and queues the daily reminders.
    "evaluate alerts": {
        "task": "tracker.evaluate_alerts",
        "schedule": ALERTS_EVALUATE_SECONDS,
        "options": {"expires": ALERTS_EVALUATE_SECONDS},
    },
    "deliver alerts": {
        "task": "tracker.deliver_alerts",
        "schedule": ALERTS_DELIVER_SECONDS,
        "options": {"expires": ALERTS_DELIVER_SECONDS},
    },
}
# An interval of 0 leaves its entry out.
CELERY_BEAT_SCHEDULE = {k: v for k, v in CELERY_BEAT_SCHEDULE.items() if v["schedule"]}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Axes first: it refuses a locked-out log-in before any backend checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes, tracker/lockout.py). After AXES_FAILURE_LIMIT wrong
# passwords for one user name from one address, that pair is refused, password unchecked,
# until AXES_COOLOFF_MINUTES after its last counted failure. By the pair, not by either
# alone: by user name alone anyone could lock the on-call engineer out in an incident by
# typing their name; by address alone one guesser would lock out a whole office behind its
# NAT (and everyone, behind a proxy mistaken for the client). Spreading guesses over many
# addresses or many names stays possible: the limit makes each pair slow, not the site.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Tries during a lockout are refused without counting, so the end the page shows holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful log-in forgets the pair's failures: one typo later is not the fifth.
AXES_RESET_ON_SUCCESS = True
# Failures are what throttling needs; a row per successful log-in would grow without bound.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "tracker.lockout.lockout_response"
# The client's address, behind proxies too (tracker.lockout.client_ip): REMOTE_ADDR, or a
# header the proxies set, such as X-Forwarded-For, read CLIENT_IP_PROXY_COUNT entries from
# the right. Only name a header the proxy in front always sets: clients can send any header.
CLIENT_IP_HEADER = env_header("CLIENT_IP_HEADER", "REMOTE_ADDR")
CLIENT_IP_PROXY_COUNT = env_int("CLIENT_IP_PROXY_COUNT", 1, minimum=1)
AXES_CLIENT_IP_CALLABLE = "tracker.lockout.client_ip"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# whitenoise expects the folder even when files are served from the finders (no collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

globals().update(email_config())
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "forkhealth@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# An SMTP server that hangs must not hold a delivery worker for long.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
# Alert mail: the daily digest goes out at this hour (UTC). Failed deliveries are retried
# after ALERT_RETRY_SECONDS, doubling each time up to ALERT_RETRY_MAX_SECONDS, never given up.
# A delivery claimed by a worker that died is retried after ALERT_CLAIM_SECONDS (longer than
# any send can take: EMAIL_TIMEOUT and ALERT_WEBHOOK_TIMEOUT bound those).
ALERT_DIGEST_HOUR = env_int("ALERT_DIGEST_HOUR", 7, minimum=0, maximum=23)
ALERT_RETRY_SECONDS = env_int("ALERT_RETRY_SECONDS", 60, minimum=1)
ALERT_RETRY_MAX_SECONDS = env_int("ALERT_RETRY_MAX_SECONDS", 3600, minimum=1)
ALERT_CLAIM_SECONDS = env_int("ALERT_CLAIM_SECONDS", 600, minimum=60)
ALERT_WEBHOOK_TIMEOUT = env_int("ALERT_WEBHOOK_TIMEOUT", 10, minimum=1)

# Sessions are read from the cache and written through to the database: every page reads
# its session, and a Redis GET is cheaper than a query; the database copy keeps log-ins
# across a Redis restart and lets an administrator end them.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = SITE_URL.startswith("https://")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fork health API",
    "VERSION": "1",
    # The schema names every endpoint: as private as the data behind them.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI at /api/docs/ from the static files drf-spectacular-sidecar ships (served
    # by whitenoise like ours), not from a CDN: no third party sees who reads the API.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigError(
        f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"tracker": {"level": LOG_LEVEL}, "dashboard": {"level": LOG_LEVEL}},
}
