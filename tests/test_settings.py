"""Configuration from the environment: good values work, malformed ones stop start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.env import (
    ConfigError,
    database_config,
    email_config,
    env_bool,
    env_header,
    env_int,
    env_interval,
    site_url,
)

ROOT = Path(__file__).resolve().parent.parent


def _manage_check(*command, **env):
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update({"DEBUG": "true", "SECRET_KEY": "x"})
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *(command or ["check"])],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "postgres://u@localhost:notaport/db"),
        ("DEBUG", "maybe"),
        ("EMAIL_PORT", "twenty-five"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://localhost:port/0"),
        ("SITE_URL", "example.com"),
        ("GIT_TIMEOUT", "soon"),
        ("AXES_FAILURE_LIMIT", "0"),
        ("AXES_COOLOFF_MINUTES", "a quarter of an hour"),
        ("CLIENT_IP_HEADER", "X-Forwarded-For: 1.2.3.4"),
    ],
)
def test_malformed_value_stops_startup_naming_the_variable(variable, value):
    env = {variable: value}
    if variable == "EMAIL_PORT":
        env["EMAIL_HOST"] = "mail.example.com"
    result = _manage_check(**env)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: ")
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "production", [{"DATABASE_URL": "postgres://u@db.internal:5432/fh"}, {"REDIS_URL": "redis://r"}]
)
def test_secret_key_required_in_production_without_debug(production, tmp_path):
    result = _manage_check(DEBUG="false", SECRET_KEY="", DATA_DIR=str(tmp_path), **production)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: SECRET_KEY: required when DATABASE_URL")
    assert not (tmp_path / "secret_key").exists()


def test_embedded_defaults_need_nothing_configured(tmp_path):
    result = _manage_check(DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_embedded_mode_generates_its_secret_key_once_without_debug(tmp_path):
    """manage.py works with nothing set, not even DEBUG: the key is made once in DATA_DIR."""
    show = (
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
    )
    first = _manage_check(*show, DEBUG="", SECRET_KEY="", DATA_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.stdout.strip() == key_file.read_text().strip()
    assert len(first.stdout.strip()) >= 50
    again = _manage_check(*show, DEBUG="", SECRET_KEY="", DATA_DIR=str(tmp_path))
    assert again.stdout == first.stdout
    assert _manage_check(DEBUG="", SECRET_KEY="", DATA_DIR=str(tmp_path)).returncode == 0


def test_generated_secret_key_is_shared_by_processes_starting_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from dashboard.env import generated_secret_key

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(generated_secret_key, [tmp_path / "k" / "secret_key"] * 32))
    assert len(keys) == 1
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["secret_key"]


def test_a_damaged_secret_key_file_stops_startup_naming_it(tmp_path):
    (tmp_path / "secret_key").write_text("short\n")
    result = _manage_check(DEBUG="", SECRET_KEY="", DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr and str(tmp_path / "secret_key") in result.stderr


def test_env_bool_spellings():
    assert env_bool("X", False, {"X": "Yes"}) is True
    assert env_bool("X", True, {"X": "off"}) is False
    assert env_bool("X", True, {}) is True
    with pytest.raises(ConfigError, match="X"):
        env_bool("X", True, {"X": "2"})


def test_env_int_minimum():
    assert env_int("N", 3, {"N": "7"}) == 7
    with pytest.raises(ConfigError, match="N: must be at least 1"):
        env_int("N", 3, {"N": "0"}, minimum=1)


def test_env_interval_zero_leaves_the_task_unscheduled():
    assert env_interval("S", 3600, {"S": "0"}, minimum=300) == 0
    assert env_interval("S", 3600, {}, minimum=300) == 3600
    with pytest.raises(ConfigError, match="S: must be 0 \\(not scheduled\\) or at least 300"):
        env_interval("S", 3600, {"S": "10"}, minimum=300)
    result = _manage_check(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(sorted(settings.CELERY_BEAT_SCHEDULE))",
        CHROMIUMDASH_SYNC_SECONDS="0",
    )
    assert result.returncode == 0, result.stderr
    assert "sync chromium dash" not in result.stdout and "sync forks" in result.stdout


def test_database_config_sqlite_default_and_postgres_url():
    assert database_config("DATABASE_URL", "/tmp/x.sqlite3", {})["NAME"] == "/tmp/x.sqlite3"
    config = database_config(
        "DATABASE_URL", "/unused", {"DATABASE_URL": "postgres://me:secret@db.internal:6543/fh"}
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 6543, "fh")
    with pytest.raises(ConfigError, match="names no database"):
        database_config("DATABASE_URL", "/unused", {"DATABASE_URL": "postgres://h:5432"})


def test_database_config_prepares_statements_on_postgres_unless_told_not_to():
    url = {"DATABASE_URL": "postgres://me@db.internal:5432/fh"}
    options = database_config("DATABASE_URL", "/unused", url)["OPTIONS"]
    assert options == {"server_side_binding": True, "prepare_threshold": 5}
    off = database_config("DATABASE_URL", "/unused", url, prepared_statements=False)
    assert "server_side_binding" not in off.get("OPTIONS", {})
    sqlite = database_config("DATABASE_URL", "/tmp/x.sqlite3", {})
    assert "server_side_binding" not in sqlite["OPTIONS"]


def test_embedded_sqlite_pages_read_while_a_writer_works_and_writers_wait_their_turn(
    tmp_path, django_db_blocker
):
    """The web server and the scheduler share the SQLite file of the embedded mode."""
    import time

    from django.db import OperationalError, connections, transaction

    config = database_config("DATABASE_URL", str(tmp_path / "fh.sqlite3"), {})
    config["OPTIONS"] = {**config["OPTIONS"], "timeout": 0.5}
    aliases = ["embedded_web", "embedded_scheduler"]
    filled = connections.configure_settings({a: dict(config) for a in ["default", *aliases]})
    connections.settings.update({alias: filled[alias] for alias in aliases})
    try:
        with django_db_blocker.unblock():
            web, scheduler = (connections[alias] for alias in aliases)
            scheduler.cursor().execute("CREATE TABLE t (x integer)")
            assert web.cursor().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            with transaction.atomic(using="embedded_scheduler"):
                scheduler.cursor().execute("INSERT INTO t VALUES (1)")
                # A page reads meanwhile, the data as it was before.
                assert web.cursor().execute("SELECT count(*) FROM t").fetchone()[0] == 0
                # A second writer waits for the lock (here half a second) when it begins,
                # not after it read, when SQLite could only refuse it.
                started = time.monotonic()
                with (
                    pytest.raises(OperationalError, match="locked"),
                    transaction.atomic(using="embedded_web"),
                ):
                    pass
                assert time.monotonic() - started >= 0.4
            assert web.cursor().execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        for alias in aliases:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


def test_email_url_and_separate_variables():
    config = email_config({"EMAIL_URL": "smtp://bot%40x.org:p%2Fw@mail.x.org:587?tls=1"})
    assert config["EMAIL_HOST"] == "mail.x.org"
    assert config["EMAIL_PORT"] == 587
    assert config["EMAIL_HOST_USER"] == "bot@x.org"
    assert config["EMAIL_HOST_PASSWORD"] == "p/w"
    assert config["EMAIL_USE_TLS"] is True
    assert email_config({})["EMAIL_BACKEND"].endswith("console.EmailBackend")
    separate = email_config({"EMAIL_HOST": "smtp.local", "EMAIL_PORT": "2525"})
    assert (separate["EMAIL_HOST"], separate["EMAIL_PORT"]) == ("smtp.local", 2525)
    with pytest.raises(ConfigError, match="EMAIL_PORT"):
        email_config({"EMAIL_HOST": "smtp.local", "EMAIL_PORT": "99999"})
    with pytest.raises(ConfigError, match="EMAIL_URL"):
        email_config({"EMAIL_URL": "imap://x"})


def test_env_header_names_a_request_meta_key():
    assert env_header("H", "REMOTE_ADDR", {}) == "REMOTE_ADDR"
    assert env_header("H", "REMOTE_ADDR", {"H": "remote_addr"}) == "REMOTE_ADDR"
    assert env_header("H", "", {"H": "X-Forwarded-For"}) == "HTTP_X_FORWARDED_FOR"
    with pytest.raises(ConfigError, match="H: expected REMOTE_ADDR or a header name"):
        env_header("H", "", {"H": "X_Forwarded For"})


def test_site_url_must_be_absolute():
    assert site_url("SITE_URL", "", {"SITE_URL": "https://fh.example.com/"}) == (
        "https://fh.example.com"
    )
    with pytest.raises(ConfigError, match="SITE_URL"):
        site_url("SITE_URL", "", {"SITE_URL": "/relative"})


def test_every_environment_variable_is_in_the_readme_table():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = (root / "dashboard" / "settings.py").read_text() + (
        root / "dashboard" / "env.py"
    ).read_text()
    read = set(re.findall(r'(?:env_\w+|database_config|redis_url|site_url)\("([A-Z_]+)"', source))
    table = "\n".join(
        line for line in (root / "README.md").read_text().splitlines() if line.startswith("| `")
    )
    documented = set(re.findall(r"`([A-Z_]+)`", table))
    assert len(read) > 30
    assert read - documented == set()
