"""Read-side queries over the monitor store for ``llmops monitor``.

The server writes through :class:`~llmops_cli.monitor.store.MonitorStore`; this reader opens the
same SQLite file or PostgreSQL database (the schema documented there) without creating either
(PostgreSQL's ``seq`` column stands in for SQLite's ``rowid``), and asks only for the
columns each part of the report needs: the operational stats read no input/output text, and the
drift report reads row ids first and the text of a seeded sample only, so a window of 100k
requests costs one narrow scan plus a few thousand row lookups.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.monitor.locations import is_postgres_url, mask_url
from llmops_cli.monitor.ops import REJECTED_STATUSES, OpsRow
from llmops_cli.monitor.records import FeedbackRecord, StoreError
from llmops_cli.monitor.store import BUSY_TIMEOUT_MS
from llmops_cli.monitor.windows import TimeWindow

_IN_CHUNK = 500  # ids per "IN (...)" query: well under SQLite's variable limit


@dataclass(frozen=True)
class LoggedRequest:
    """What continuous evaluation needs of one request."""

    id: str
    ts: float
    endpoint: str
    input: str
    output: str
    latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int


class StoreReader:
    """Read-only queries; a store that does not exist yet reads as empty (nothing was served)."""

    def __init__(self, location: Path | str) -> None:
        self.location = location
        self.display = mask_url(location)
        self._conn: Any = None
        self._postgres = is_postgres_url(location)
        self._rowid = "seq" if self._postgres else "rowid"
        if self._postgres:
            from llmops_cli.monitor.store_postgres import connect

            conn = connect(str(location), self.display)
            if conn.execute("SELECT to_regclass('requests') IS NOT NULL").fetchone()[0]:
                self._conn = conn
            else:
                conn.close()  # the server never wrote here yet
            return
        path = Path(location)
        if path.exists():
            # mode=rw: never create a stray database, but let SQLite use the WAL index as usual.
            uri = path.resolve().as_uri() + "?mode=rw"
            self._conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    @property
    def exists(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._conn is None:
            return []
        if self._postgres:
            sql = sql.replace("?", "%s")
        try:
            return [tuple(row) for row in self._conn.execute(sql, tuple(args)).fetchall()]
        except sqlite3.Error as error:
            raise StoreError(f"Cannot read the monitor store {self.display}: {error}") from error
        except Exception as error:
            if self._postgres and type(error).__module__.startswith("psycopg"):
                reason = " ".join(str(error).split())
                raise StoreError(f"Cannot read the monitor store {self.display}: {reason}") from error
            raise

    @staticmethod
    def _where(window: TimeWindow, endpoint: str | None, extra: str = "") -> tuple[str, list[Any]]:
        clauses: list[str] = ["ts >= ?", "ts < ?"]
        args: list[Any] = [window.start, window.end]
        if endpoint is not None:
            clauses.append("endpoint = ?")
            args.append(endpoint)
        if extra:
            clauses.append(extra)
        return " AND ".join(clauses), args

    def ops_rows(self, window: TimeWindow, endpoint: str | None = None) -> list[OpsRow]:
        where, args = self._where(window, endpoint)
        sql = (
            "SELECT ts, endpoint, status, latency_ms, prompt_tokens, completion_tokens, "
            f"error IS NOT NULL AND error != '' FROM requests WHERE {where} ORDER BY ts"
        )
        return [
            OpsRow(float(ts), str(ep or ""), int(st), None if lat is None else float(lat), int(pt or 0), int(ct or 0),
                   bool(err))
            for ts, ep, st, lat, pt, ct, err in self._rows(sql, args)
        ]  # fmt: skip

    def text_ids(
        self, window: TimeWindow, column: str, *, endpoint: str | None = None, ok_only: bool = False,
        served_only: bool = False,
    ) -> list[int]:  # fmt: skip
        """Row ids of requests with a non-empty ``input`` or ``output`` in the window, oldest first.

        ``ok_only``: answered requests (status < 400); ``served_only``: leave out the gate's refusals
        (REJECTED_STATUSES), whose inputs are whatever unauthenticated traffic sent."""
        if column not in ("input", "output"):
            raise ValueError(column)
        extra = f"{column} IS NOT NULL AND {column} != ''" + (" AND status < 400" if ok_only else "")
        if served_only:
            extra += f" AND status NOT IN ({', '.join(str(int(s)) for s in REJECTED_STATUSES)})"
        where, args = self._where(window, endpoint, extra)
        rowid = self._rowid
        return [int(r[0]) for r in self._rows(f"SELECT {rowid} FROM requests WHERE {where} ORDER BY ts, {rowid}", args)]

    def texts(self, rowids: Sequence[int], column: str) -> list[str]:
        """The ``column`` text of each row id, in the order given."""
        if column not in ("input", "output"):
            raise ValueError(column)
        found: dict[int, str] = {}
        for first in range(0, len(rowids), _IN_CHUNK):
            chunk = list(rowids[first : first + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {self._rowid}, {column} FROM requests WHERE {self._rowid} IN ({marks})"
            for rowid, text in self._rows(sql, chunk):
                found[int(rowid)] = str(text)
        return [found[r] for r in rowids if r in found]

    def sample_texts(
        self, window: TimeWindow, column: str, k: int | None, *, seed: int, endpoint: str | None = None,
        ok_only: bool = False, served_only: bool = False,
    ) -> tuple[list[str], int]:  # fmt: skip
        """A seeded sample of at most ``k`` texts (all of them when ``k`` is None) and how many there were."""
        ids = self.text_ids(window, column, endpoint=endpoint, ok_only=ok_only, served_only=served_only)
        chosen = ids if k is None or len(ids) <= k else sorted(random.Random(seed).sample(ids, k))
        return self.texts(chosen, column), len(ids)

    def finished_requests(self, window: TimeWindow, *, endpoint: str | None = None) -> list[tuple[str, float]]:
        """(id, ts) of the answered requests (status < 400, with an output), oldest first."""
        where, args = self._where(window, endpoint, "status < 400 AND output IS NOT NULL")
        return [
            (str(i), float(ts)) for i, ts in self._rows(f"SELECT id, ts FROM requests WHERE {where} ORDER BY ts", args)
        ]

    def logged_requests(self, ids: Sequence[str]) -> list[LoggedRequest]:
        out: dict[str, LoggedRequest] = {}
        for first in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[first : first + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT id, ts, endpoint, input, output, latency_ms, prompt_tokens, completion_tokens "
                f"FROM requests WHERE id IN ({marks})"
            )
            for rid, ts, ep, inp, outp, lat, pt, ct in self._rows(sql, chunk):
                out[str(rid)] = LoggedRequest(
                    str(rid), float(ts), str(ep or ""), str(inp or ""), str(outp or ""),
                    None if lat is None else float(lat), int(pt or 0), int(ct or 0),
                )  # fmt: skip
        return [out[i] for i in ids if i in out]

    def feedback(self, window: TimeWindow) -> list[FeedbackRecord]:
        sql = "SELECT id, request_id, ts, score, label, comment FROM feedback WHERE ts >= ? AND ts < ? ORDER BY ts, id"
        return [FeedbackRecord(*row) for row in self._rows(sql, (window.start, window.end))]
