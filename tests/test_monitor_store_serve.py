"""``llmops serve`` on a PostgreSQL monitor store: /ready and /v1/feedback when the store is down,
and two server processes sharing one store, read back with ``llmops monitor``.

The servers run the tiny random Llama of ``tests/fixtures/models.py`` (the ``served`` project of
``tests/fixtures/serve.py``) and a real PostgreSQL database per test (``tests/fixtures/postgres.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llmops_cli.monitor import MonitorStore
from llmops_cli.serve import ServeOptions, create_app, serve_in_thread
from llmops_cli.validation import load_config
from tests.fixtures.postgres import block_connections
from tests.fixtures.serve import KEY, SlowProvider, auth, chat_body, wait_ready


def test_ready_turns_503_while_the_store_is_down_and_feedback_fails_fast(
    served: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmops_cli.monitor import store as store_module

    monkeypatch.setattr(store_module, "_BACKOFF_S", 0.01)
    monkeypatch.setattr(store_module, "_PROBE_S", 0.1)
    store = MonitorStore(pg_url)
    app = create_app(
        load_config(served),
        options=ServeOptions(api_keys=(KEY,)),
        provider_factory=lambda *_: SlowProvider(),
        store=store,
    )
    with serve_in_thread(app) as url:
        wait_ready(url)
        first = httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth(), timeout=30).json()["id"]
        store.flush()
        wait_for_row(store, first)  # the server logs a request just after answering it
        block_connections(pg_url, True)
        try:
            assert httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth()).status_code == 200
            deadline = time.monotonic() + 20
            while True:
                answer = httpx.get(url + "/ready")
                # The first failure can be the killed connection (AdminShutdown); the reconnects that
                # follow within a few hundredths of a second say why the store stays down.
                if answer.status_code == 503 and "accepting connections" in answer.json().get("store_error", ""):
                    break
                assert time.monotonic() < deadline, f"the store failure never reached /ready: {answer.text}"
                time.sleep(0.05)
            assert answer.status_code == 503 and answer.json()["status"] == "store_unavailable"
            assert "not currently accepting connections" in answer.json()["store_error"]
            started = time.monotonic()
            refused = httpx.post(
                url + "/v1/feedback", json={"request_id": first, "score": 1}, headers=auth(), timeout=30
            )
            assert refused.status_code == 503 and time.monotonic() - started < 15
            assert "Feedback cannot be recorded now" in refused.json()["error"]["message"]
            assert httpx.get(url + "/health").status_code == 200
        finally:
            block_connections(pg_url, False)
        deadline = time.monotonic() + 20
        while httpx.get(url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, "/ready never recovered"
            time.sleep(0.05)
        last = httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth(), timeout=30).json()["id"]
        assert (
            httpx.post(url + "/v1/feedback", json={"request_id": last, "score": 1}, headers=auth()).status_code == 200
        )
        metrics = httpx.get(url + "/metrics", headers=auth()).text
    assert re.search(r"^llmops_monitor_write_errors_total [1-9]", metrics, re.MULTILINE)
    # 3 chats and 2 feedback requests were logged; those logged while the database was blocked were lost
    assert 1 <= store.write_errors <= 2
    with MonitorStore(pg_url) as check:
        assert check.has_request(first) and check.has_request(last)
        assert check.count() + store.write_errors == 5 and len(check.feedback_for(last)) == 1


def wait_for_row(store: MonitorStore, request_id: str) -> None:
    deadline = time.monotonic() + 10
    while not store.has_request(request_id):
        assert time.monotonic() < deadline, f"{request_id} was never logged"
        store.flush()
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def llmops_serve(root: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", "-C", str(root), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/ready").status_code == 200:
                    break
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "llmops serve never became ready"
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # graceful: the store is flushed on shutdown
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_two_servers_on_one_postgres_store_log_every_request(served: Path, pg_url: str) -> None:
    env = {**os.environ, "LLMOPS_API_KEYS": KEY, "NO_COLOR": "1", "LLMOPS_MONITOR_STORE": pg_url}
    with llmops_serve(served, env) as (url_a, proc_a), llmops_serve(served, env) as (url_b, proc_b):
        urls = [url_a, url_b]

        def ask(i: int) -> str:
            answer = httpx.post(urls[i % 2] + "/v1/chat/completions", json=chat_body(f"question {i}"), headers=auth(),
                                timeout=120)  # fmt: skip
            assert answer.status_code == 200, answer.text
            return str(answer.json()["id"])

        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(ask, range(200)))
    assert proc_a.returncode == 0 and proc_b.returncode == 0
    assert len(set(ids)) == 200
    report = subprocess.run(
        [sys.executable, "-m", "llmops_cli", "-C", str(served), "monitor", "--json", "--since", "1h"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode in (0, 5), report.stderr  # 5: an alert fired (the tiny model answers nonsense)
    data = json.loads(report.stdout)
    assert data["store"] == pg_url and data["store_exists"]
    assert _requests_counted(data.get("operations") or data["ops"]) == 200
    with MonitorStore(pg_url) as store:
        assert store.count() == 200 and all(store.has_request(i) for i in ids)


def _requests_counted(ops: dict) -> int:  # type: ignore[type-arg]
    """The total request count of the report's operations section (served traffic)."""
    for key in ("requests", "served_requests", "total"):
        value = ops.get(key)
        if isinstance(value, int):
            return value
        if isinstance(value, dict) and isinstance(value.get("count"), int):
            return int(value["count"])
    served_part = ops.get("served")
    if isinstance(served_part, dict):
        return _requests_counted(served_part)
    raise AssertionError(f"no request count in {sorted(ops)}")
