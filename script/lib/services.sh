# Shell helpers shared by script/test and script/server: make sure local PostgreSQL and Redis
# answer, starting installed-but-stopped servers, and failing with a clear message otherwise.

_is_local() { case "$1" in 127.0.0.1|localhost|::1|"") return 0 ;; *) return 1 ;; esac; }

_py() { .venv/bin/python - "$@"; }

postgres_answers() {
  _py "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
# Probe the maintenance database: the named one may not exist yet (ensure_database makes it).
psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
PY
}

redis_answers() {
  _py "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
PY
}

url_host() { _py "$1" <<'PY'
import sys
from urllib.parse import urlsplit
print(urlsplit(sys.argv[1]).hostname or "")
PY
}

ensure_postgres() {
  local url=$1
  postgres_answers "$url" && return 0
  local host; host=$(url_host "$url")
  if _is_local "$host" && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "services: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do postgres_answers "$url" && return 0; sleep 1; done
  fi
  echo "services: PostgreSQL does not answer at $url and no local server could be started." >&2
  echo "          Install it (apt-get install postgresql) or point TEST_DATABASE_URL at one." >&2
  return 1
}

ensure_redis() {
  local url=$1
  redis_answers "$url" && return 0
  local host; host=$(url_host "$url")
  if _is_local "$host" && command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
    for _ in $(seq 1 30); do redis_answers "$url" && return 0; sleep 1; done
  fi
  echo "services: Redis does not answer at $url and no local server could be started." >&2
  echo "          Install it (apt-get install redis-server) or point TEST_REDIS_URL at one." >&2
  return 1
}

ensure_database() {
  # Create the database named in the URL if the server does not have it yet.
  _py "$1" <<'PY'
import sys
from urllib.parse import urlsplit
import psycopg
from psycopg import sql
url = sys.argv[1]
name = urlsplit(url).path.lstrip("/")
admin = url.rsplit("/", 1)[0] + "/postgres"
with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
PY
}

ensure_chromium() {
  # Debian's chromium for the browser tests (never a downloaded browser build).
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "services: installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "services: the browser tests need Debian's chromium and it could not be installed." >&2
    echo "          Install it (apt-get install chromium) or set CHROMIUM_PATH." >&2
    return 1
  fi
  export CHROMIUM_PATH=${CHROMIUM_PATH:-$(command -v chromium)}
}
