"""A database of a benchmark's own on the PostgreSQL server of DATABASE_URL."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit


def database_urls(url: str, name: str, script: str) -> tuple[str, str]:
    """(URL of the benchmark database `name`, URL of the server's maintenance database);
    `script` names the caller in the message when `url` is not PostgreSQL."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        sys.exit(f"{script}: DATABASE_URL must point at PostgreSQL")
    bench = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    return bench, admin


def admin(url: str, statement: str) -> None:
    """Run one statement (CREATE / DROP DATABASE) outside a transaction."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)
