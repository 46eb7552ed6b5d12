"""Private PostgreSQL and Redis servers for fault tests that restart them.

Each runs on a free port with its data in a temporary folder, so restarting it disturbs
nothing else on the machine (the suite's own servers, other test runs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require(path: str | None, what: str) -> str:
    if not path:
        pytest.fail(f"this fault test runs a private {what} server and needs it installed")
    return path


def _wait_until(probe, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} did not come up within {timeout} s: {last_error}")


class PrivateRedis:
    """A redis-server that keeps nothing on disk, like the ones here: a restart empties it."""

    def __init__(self) -> None:
        self.binary = _require(shutil.which("redis-server"), "Redis")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), "Redis")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, run as the postgres user (initdb refuses root)."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        self.bin = Path(_require(str(versions[-1]) if versions else None, "PostgreSQL")).parent
        # Its own folder under /tmp: the postgres user cannot enter pytest's root-only ones.
        self.folder = Path(tempfile.mkdtemp(prefix="forkhealth-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/forkhealth"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._as_postgres(
            self.bin / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def _as_postgres(self, *command) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *map(str, command)], check=True, capture_output=True, timeout=120)

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            self.bin / "pg_ctl",
            "-D",
            self.data,
            "-w",
            "-m",
            "fast",
            "-l",
            self.folder / "log",
            "-o",
            options,
            action,
        )

    def _answers(self) -> bool:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=2
        ):
            return True

    def start(self) -> None:
        self._ctl("start")
        _wait_until(self._answers, "PostgreSQL")
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname='forkhealth'").fetchone():
                conn.execute("CREATE DATABASE forkhealth")

    def restart(self) -> None:
        self._ctl("restart")  # every connection is cut
        _wait_until(self._answers, "PostgreSQL")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            self._ctl("stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def count(self, sql: str, params: tuple = ()) -> int:
        """One number from the private database (the test's own ORM talks to another one)."""
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                return conn.execute(sql, params).fetchone()[0]
        except psycopg.OperationalError:
            return -1  # restarting
