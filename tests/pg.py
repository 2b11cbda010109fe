"""A real PostgreSQL server for the tests: a fresh database per test.

``make test`` runs pytest through ``scripts/with-postgres.sh``, which starts a throwaway server and
exports ``LLMOPS_TEST_POSTGRES_URL``. Run pytest directly and the first test that needs the server
starts one the same way (the script, kept running until the session ends). Tests skip, with the
script's reason, only when no server can be had.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV = "LLMOPS_TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "with-postgres.sh"
_server: dict[str, object] = {}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _start_own_server() -> str:
    """Start scripts/with-postgres.sh around a process that prints the URL and waits for stdin to close."""
    if "url" in _server or "skip" in _server:
        return str(_server.get("url") or "")
    waiter = "import os, sys; print(os.environ.get('LLMOPS_TEST_POSTGRES_URL', ''), flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), sys.executable, "-c", waiter],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        proc.stdin.close()  # type: ignore[union-attr]
        err = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]
        proc.wait(timeout=60)
        _server["skip"] = " ".join(err.split())[-300:] or "scripts/with-postgres.sh found no PostgreSQL"
        return ""
    _server.update(url=url, proc=proc)
    atexit.register(stop_own_server)  # and if pytest dies, the waiter reads EOF and the script cleans up
    return url


def stop_own_server() -> None:
    proc = _server.pop("proc", None)
    if isinstance(proc, subprocess.Popen):
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=60)


def server_url() -> str:
    """The admin URL of a running test server; skips the test when there is none."""
    url = os.environ.get(ENV) or _start_own_server()
    if not url:
        pytest.skip(f"no PostgreSQL server for the tests: {_server.get('skip') or ENV + ' is not set'}")
    return url


def admin(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty database on the test server (dropped after the test)."""
    base = server_url()
    name = "t_" + secrets.token_hex(6)
    with admin(base) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(base, name)
    finally:
        with admin(base) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def block_connections(url: str, blocked: bool) -> None:
    """Make the database of ``url`` refuse connections (and drop the open ones), or accept them again."""
    name = urlsplit(url).path.lstrip("/")
    with admin(with_database(url, "postgres")) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if blocked else "true"}')
        if blocked:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
