"""The monitor store on both backends: SQLite files and a real PostgreSQL server (``tests/fixtures/postgres.py``).

Faults are real where the database allows it (a PostgreSQL database that refuses connections,
rows the driver cannot encode); SQLite's "cannot write" is a writer connection put in
``query_only`` mode, since the tests may run as root, for whom a read-only file is still writable.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.monitor import MonitorStore, RequestRecord, open_store
from llmops_cli.monitor import store as store_module
from llmops_cli.monitor.query import StoreReader
from llmops_cli.monitor.store import StoreError, mask_url, store_location
from llmops_cli.monitor.windows import TimeWindow
from tests.fixtures.postgres import block_connections


def record(i: int, ts: float, **extra: Any) -> RequestRecord:
    values: dict[str, Any] = {"endpoint": "/v1/chat/completions", "status": 200, "input": f"in {i}", **extra}
    return RequestRecord(id=f"r{i}", ts=ts, **values)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new, empty store's location on each backend."""
    if request.param == "sqlite":
        return tmp_path / "m.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(location: Path | str) -> Iterator[MonitorStore]:
    with MonitorStore(location) as opened:
        yield opened


def wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


class Breaker:
    """Make a store's writes fail, for real, until ``mend()``; works on both backends."""

    def __init__(self, store: MonitorStore, location: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store, self.location, self.broken = store, location, False
        if store.kind == "sqlite":
            connect = store._connect_writer

            def connect_maybe_read_only() -> Any:
                conn = connect()
                if self.broken:
                    conn.execute("PRAGMA query_only = 1")  # "attempt to write a readonly database"
                return conn

            monkeypatch.setattr(store, "_connect_writer", connect_maybe_read_only)

    def break_(self) -> None:
        self.broken = True
        if self.store.kind == "postgres":
            block_connections(str(self.location), True)
        else:
            with self.store._write_lock:
                self.store._writer_conn.execute("PRAGMA query_only = 1")

    def mend(self) -> None:
        self.broken = False
        if self.store.kind == "postgres":
            block_connections(str(self.location), False)
        else:
            with self.store._write_lock:
                if self.store._writer_conn is not None:  # else the next connection is a normal one
                    self.store._writer_conn.execute("PRAGMA query_only = 0")


# --- the interface, on both backends --------------------------------------------------------------


def test_store_batches_writes_from_many_threads(location: Path | str) -> None:
    with MonitorStore(location) as store:
        if isinstance(location, Path):
            assert store.journal_mode == "wal"  # readers run while the writer writes

        def write(start: int) -> None:
            for i in range(start, start + 250):
                store.log_request(record(i, 1000.0 + i, meta={"i": i}))

        threads = [threading.Thread(target=write, args=(k * 250,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.flush()
        assert store.count() == 1000 and store.healthy and store.write_errors == 0
        window = store.requests_between(1100.0, 1200.0)
        assert [r.id for r in window] == [f"r{i}" for i in range(100, 200)] and window[0].meta == {"i": 100}
        assert store.has_request("r5") and not store.has_request("nope")
        first = store.add_feedback("r5", score=1.0, label="good")
        second = store.add_feedback("r5", score=-1.0, comment="wrong")
        assert second > first
        assert [f.label for f in store.feedback_between()] == ["good", None]
        assert [f.score for f in store.feedback_for("r5")] == [1.0, -1.0]
    with MonitorStore(location) as again:  # close() wrote everything; a new connection sees it
        assert again.count() == 1000 and again.get("r7").input == "in 7"  # type: ignore[union-attr]
        assert again.log_many(record(i, 5000.0 + i) for i in range(1000, 6000)) == 5000
        assert again.count(endpoint="/v1/chat/completions") == 6000
        again.log_request(record(7, 1007.0, output="second version"))  # same id: the last version wins
        again.flush()
        assert again.count() == 6000 and again.get("r7").output == "second version"  # type: ignore[union-attr]


def test_monitor_reads_the_same_rows_on_both_backends(store: MonitorStore) -> None:
    store.log_many(
        [
            record(1, 100.0, output="one", latency_ms=10.0, completion_tokens=3),
            record(2, 101.0, output="two", status=500, error="boom"),
            record(3, 102.0, output=None, status=401, endpoint="/v1/models"),
            record(4, 200.0, output="late"),
        ]
    )
    store.add_feedback("r1", score=-1.0, label="bad")
    with StoreReader(store.location) as reader:
        assert reader.exists
        window = TimeWindow(100.0, 150.0)
        ops = reader.ops_rows(window)
        assert [(o.status, o.error) for o in ops] == [(200, False), (500, True), (401, False)]
        assert reader.ops_rows(window, "/v1/models")[0].status == 401
        texts, total = reader.sample_texts(window, "output", None, seed=0)
        assert texts == ["one", "two"] and total == 2
        assert reader.sample_texts(window, "output", None, seed=0, ok_only=True)[0] == ["one"]
        assert [rid for rid, _ in reader.finished_requests(window)] == ["r1"]
        [logged] = reader.logged_requests(["r1"])
        assert logged.output == "one" and logged.latency_ms == 10.0 and logged.completion_tokens == 3
        assert [(f.request_id, f.label) for f in reader.feedback(window.__class__(0.0, time.time() + 1))] == [
            ("r1", "bad")
        ]


def test_a_store_nobody_wrote_reads_as_empty(location: Path | str) -> None:
    with StoreReader(location) as reader:
        assert not reader.exists and reader.ops_rows(TimeWindow(0.0, 1e12)) == []


# --- the writer never dies --------------------------------------------------------------------------


def test_writer_survives_unencodable_text_and_keeps_every_row(store: MonitorStore) -> None:
    store.log_request(record(1, 1.0, input="bad \ud800 text", meta={"messages": ["\udfff"]}))
    store.log_request(record(2, 2.0, input="nul \x00 byte"))
    store.log_request(record(3, 3.0))
    assert store.flush(10)
    store.log_request(record(4, 4.0))  # the writer thread is still alive
    assert store.flush(10)
    assert store.count() == 4 and store.write_errors == 0 and store.healthy
    assert store.get("r1").input == "bad \ufffd text"  # type: ignore[union-attr]
    assert store.get("r1").meta == {"messages": ["\ufffd"]}  # type: ignore[union-attr]
    assert store.get("r2").input in ("nul \x00 byte", "nul \ufffd byte")  # type: ignore[union-attr]
    feedback = store.add_feedback("r1", comment="odd \ud800")
    assert feedback and store.feedback_for("r1")[0].comment == "odd \ufffd"


def test_rows_lost_while_the_store_is_unwritable_are_counted_and_health_recovers(
    store: MonitorStore, location: Path | str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "_BACKOFF_S", 0.01)
    monkeypatch.setattr(store_module, "_PROBE_S", 0.1)
    breaker = Breaker(store, location, monkeypatch)
    store.log_request(record(1, 1.0))
    assert store.flush(10) and store.count() == 1
    breaker.break_()
    with caplog.at_level(logging.ERROR, logger="llmops.serve"):
        for i in range(2, 12):
            store.log_request(record(i, float(i)))
        assert store.flush(10)
    assert store.write_errors == 10
    assert not store.healthy and store.last_error
    assert any("10 request rows lost" in r.getMessage() or "rows lost" in r.getMessage() for r in caplog.records)
    breaker.mend()
    wait_for(lambda: store.healthy)  # the idle writer probes the store until it works again
    store.log_request(record(20, 20.0))
    assert store.flush(10)
    assert store.count() == 2 and store.has_request("r20") and store.write_errors == 10 and store.healthy


def test_add_feedback_on_a_broken_store_fails_fast_with_a_clear_error(
    store: MonitorStore, location: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.log_many([record(1, 1.0)])
    Breaker(store, location, monkeypatch).break_()
    started = time.monotonic()
    with pytest.raises(StoreError, match="Could not record feedback in the monitor store"):
        store.add_feedback("r1", score=1.0)
    assert time.monotonic() - started < 8
    assert not store.healthy


def test_log_request_on_a_full_queue_returns_at_once_and_counts_the_drop(
    location: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_MAX_QUEUE", 5)
    with MonitorStore(location) as store:
        store.log_request(record(0, 0.0))
        assert store.flush(10)
        with store._write_lock:  # the writer is stuck (a slow database): nothing leaves the queue
            started = time.monotonic()
            for i in range(1, 101):
                store.log_request(record(i, float(i)))
            elapsed = time.monotonic() - started
        assert elapsed < 0.5
        assert store.flush(10)
        assert store.write_errors >= 90
        assert store.count() + store.write_errors == 101


def test_flush_gives_up_after_its_timeout_instead_of_hanging(store: MonitorStore) -> None:
    store.log_request(record(1, 1.0))
    with store._write_lock:
        started = time.monotonic()
        assert store.flush(0.3) is False
        assert time.monotonic() - started < 2
    assert store.flush(10) and store.count() == 1


# --- PostgreSQL: a shared store ---------------------------------------------------------------------

_WRITER = """
import sys
from llmops_cli.monitor import MonitorStore, RequestRecord
url, prefix = sys.argv[1], sys.argv[2]
with MonitorStore(url) as store:
    for i in range(1000):
        store.log_request(RequestRecord(id=f"{prefix}-{i}", ts=float(i), endpoint="/v1/completions", status=200))
    assert store.flush(60)
    assert store.write_errors == 0, store.last_error
"""


def test_two_processes_write_1000_rows_each_into_one_postgres_store(pg_url: str) -> None:
    with MonitorStore(pg_url) as store:  # the tables exist before the writers race for them
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, name]) for name in ("a", "b")]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        assert store.count() == 2000
        assert store.count(endpoint="/v1/completions") == 2000


def test_two_processes_create_the_tables_at_once(pg_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with MonitorStore(pg_url) as store:
        assert store.count() == 2000


# --- locations, the env override, passwords -----------------------------------------------------------


def test_env_var_overrides_monitor_store_and_urls_stay_urls(project: Path) -> None:
    from llmops_cli.validation import load_config

    config = load_config(project)
    assert store_location(config, {}) == project / ".llmops" / "monitor.db"
    url = "postgresql://llm@db.internal:5432/monitor"
    assert store_location(config, {"LLMOPS_MONITOR_STORE": url}) == url
    assert store_location(config, {"LLMOPS_MONITOR_STORE": "other.db"}) == project / "other.db"


def test_passwords_never_show() -> None:
    assert mask_url("postgresql://llm:s3cret@db:5432/monitor") == "postgresql://llm:***@db:5432/monitor"
    assert mask_url("postgres://db/monitor?password=s3cret&sslmode=require") == (
        "postgres://db/monitor?password=***&sslmode=require"
    )
    assert mask_url("postgresql://llm@db/monitor") == "postgresql://llm@db/monitor"
    assert mask_url(Path("/tmp/m.db")) == "/tmp/m.db"


def test_an_unreachable_postgres_store_is_a_clear_error_without_the_password(project: Path) -> None:
    from llmops_cli.errors import EXIT_UNAVAILABLE
    from llmops_cli.validation import load_config

    with pytest.raises(StoreError) as caught:
        open_store(load_config(project), "postgresql://llm:s3cret@127.0.0.1:1/monitor")
    message = str(caught.value)
    assert "Cannot connect to the monitor store postgresql://llm:***@127.0.0.1:1/monitor" in message
    assert "s3cret" not in message + str(caught.value.hint) and caught.value.exit_code == EXIT_UNAVAILABLE
