"""Read configuration from environment variables, failing loudly on malformed values.

Every helper names the variable in its error, so a typo in a deployment stops start-up with
a sentence an operator can act on instead of a stack trace deep inside a library.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A configuration value taken from the environment is missing or malformed."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(name, default).strip()


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, "", environ).lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = env_str(name, "", environ)
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: must be at most {maximum}, got {value}")
    return value


def env_interval(
    name: str, default: int, environ: Mapping[str, str] | None = None, *, minimum: int
) -> int:
    """Seconds between runs of a periodic task: 0 leaves the task out of the schedule, other
    values below `minimum` are refused."""
    value = env_int(name, default, environ, minimum=0)
    if 0 < value < minimum:
        raise ConfigError(f"{name}: must be 0 (not scheduled) or at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    raw = env_str(name, "", environ)
    if raw == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_header(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """The request.META key of the HTTP header a variable names ("X-Forwarded-For" gives
    "HTTP_X_FORWARDED_FOR"); "REMOTE_ADDR" stands for the connection's own address."""
    raw = env_str(name, default, environ)
    if raw.upper() == "REMOTE_ADDR":
        return "REMOTE_ADDR"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", raw):
        raise ConfigError(
            f"{name}: expected REMOTE_ADDR or a header name such as X-Forwarded-For, got {raw!r}"
        )
    return "HTTP_" + raw.upper().replace("-", "_")


def _port(name: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}: port {port} is out of range 1-65535")
    return port


def _url_port(name: str, url: str) -> int | None:
    """The port of a URL, with urllib's ValueError turned into a ConfigError naming `name`."""
    try:
        return urlsplit(url).port
    except ValueError:
        netloc = urlsplit(url).netloc.rpartition("@")[2]
        raise ConfigError(f"{name}: malformed port in {netloc!r}") from None


DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}
# The embedded mode's web server and scheduler share the SQLite file. Write-ahead logging lets
# pages read while the scheduler writes; transactions take the write lock when they begin,
# so a second writer waits for it (`timeout`, seconds) instead of failing at once when a
# transaction that began by reading tries to write.
SQLITE_OPTIONS = {
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL",
    "transaction_mode": "IMMEDIATE",
}


def database_config(
    name: str,
    default_sqlite_path: str,
    environ: Mapping[str, str] | None = None,
    prepared_statements: bool = True,
) -> dict:
    """Django DATABASES['default'] from a URL such as postgres://user@host:5432/db.

    Unset means a SQLite file at `default_sqlite_path`: the embedded mode. On PostgreSQL,
    `prepared_statements` has psycopg bind parameters on the server and prepare a query once
    it ran five times on a connection: PostgreSQL otherwise plans every query again, and for
    the pages' small queries planning costs as much as running them.
    """
    import dj_database_url

    raw = env_str(name, "", environ)
    if raw == "":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": default_sqlite_path,
            "OPTIONS": SQLITE_OPTIONS,
        }
    scheme = urlsplit(raw).scheme
    if scheme not in DATABASE_SCHEMES:
        shown = scheme or "(none)"
        raise ConfigError(
            f"{name}: expected postgres://user:password@host:port/name or sqlite:///path, "
            f"got a URL with scheme {shown}"
        )
    if scheme != "sqlite":
        _url_port(name, raw)
        if not urlsplit(raw).path.strip("/"):
            raise ConfigError(f"{name}: the URL names no database (add /name at the end)")
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{name}: cannot parse the URL ({exc.__class__.__name__})") from None
    if prepared_statements and config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    return config


def generated_secret_key(path: Path) -> str:
    """The secret key kept in the file `path`, generated there (mode 0600) on first use.

    For the embedded mode, where nothing is configured: the key survives restarts (log-ins and
    encrypted git credentials with it) without anyone choosing one. Processes starting at
    once agree on it: each writes its key aside and links it into place, and the first wins.
    """
    path = Path(path)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
            try:
                with os.fdopen(fd, "w") as file:
                    file.write(secrets.token_urlsafe(50) + "\n")
                os.link(aside, path)
            except FileExistsError:
                pass  # another process was first: use its key
            finally:
                os.unlink(aside)
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"SECRET_KEY: unset, and {path} cannot be used: {exc.strerror}") from None
    if len(key) < 50:
        raise ConfigError(
            f"SECRET_KEY: unset, and {path} holds no usable key (50 characters or more); "
            "delete the file to have one generated, or set SECRET_KEY"
        )
    return key


def redis_url(name: str, environ: Mapping[str, str] | None = None) -> str:
    raw = env_str(name, "", environ)
    if raw == "":
        return ""
    scheme = urlsplit(raw).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name}: expected redis://host:port/db, got scheme {scheme or '(none)'}")
    _url_port(name, raw)
    return raw


def email_config(environ: Mapping[str, str] | None = None) -> dict:
    """Django EMAIL_* settings from EMAIL_URL or from the separate EMAIL_HOST... variables.

    EMAIL_URL looks like smtp://user:password@host:587?tls=1 (or smtps:// for implicit TLS,
    or console:// to print mail, the default when nothing is configured).
    """
    url = env_str("EMAIL_URL", "", environ)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps", "console"}:
            raise ConfigError(
                "EMAIL_URL: expected smtp://, smtps:// or console://, "
                f"got {parts.scheme or '(none)'}"
            )
        if parts.scheme == "console":
            return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = query.get("tls", "0").lower() in _TRUE
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname or "localhost",
            "EMAIL_PORT": _url_port("EMAIL_URL", url) or (465 if parts.scheme == "smtps" else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": tls,
            "EMAIL_USE_SSL": parts.scheme == "smtps",
        }
    host = env_str("EMAIL_HOST", "", environ)
    if not host:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    port_raw = env_str("EMAIL_PORT", "25", environ)
    use_tls = env_bool("EMAIL_USE_TLS", False, environ)
    use_ssl = env_bool("EMAIL_USE_SSL", False, environ)
    if use_tls and use_ssl:
        raise ConfigError("EMAIL_USE_TLS and EMAIL_USE_SSL: set at most one of them")
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": host,
        "EMAIL_PORT": _port("EMAIL_PORT", port_raw),
        "EMAIL_HOST_USER": env_str("EMAIL_HOST_USER", "", environ),
        "EMAIL_HOST_PASSWORD": env_str("EMAIL_HOST_PASSWORD", "", environ),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
    }


def site_url(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    raw = env_str(name, default, environ).rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name}: expected an absolute http(s) URL, got {raw!r}")
    _url_port(name, raw)
    return raw
