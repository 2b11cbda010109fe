"""The reads both store backends answer, written once over their ``_read`` hook."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from llmops_cli.monitor.records import COLUMNS, FeedbackRecord, RequestRecord

_FEEDBACK_COLUMNS = "id, request_id, ts, score, label, comment"


class StoreQueries:
    """Requests and feedback by id, time and endpoint; :class:`~llmops_cli.monitor.store.MonitorStore` mixes it in."""

    def _read(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Mapping[str, Any]]:
        """Rows of a read (``?`` placeholders) as mappings, streamed."""
        raise NotImplementedError

    def _scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        for row in self._read(sql, args):
            return next(iter(row.values()))
        return None

    def count(self, *, endpoint: str | None = None) -> int:
        """Number of logged requests (written ones: call :meth:`flush` first to include queued ones)."""
        if endpoint is None:
            return int(self._scalar("SELECT COUNT(*) AS n FROM requests"))
        return int(self._scalar("SELECT COUNT(*) AS n FROM requests WHERE endpoint = ?", (endpoint,)))

    def get(self, request_id: str) -> RequestRecord | None:
        cols = ", ".join(COLUMNS)
        for row in self._read(f"SELECT {cols} FROM requests WHERE id = ?", (request_id,)):
            return RequestRecord.from_row(row)
        return None

    def has_request(self, request_id: str) -> bool:
        return self._scalar("SELECT 1 AS found FROM requests WHERE id = ?", (request_id,)) is not None

    def requests_between(
        self, t0: float | None = None, t1: float | None = None, *, endpoint: str | None = None
    ) -> list[RequestRecord]:
        """Requests with ``t0 <= ts < t1`` (either bound may be None), oldest first."""
        return list(self.iter_requests(t0, t1, endpoint=endpoint))

    def iter_requests(
        self, t0: float | None = None, t1: float | None = None, *, endpoint: str | None = None
    ) -> Iterator[RequestRecord]:
        """Like :meth:`requests_between` without holding every row in memory."""
        clauses, args = _time_clauses(t0, t1)
        if endpoint is not None:
            clauses.append("endpoint = ?")
            args.append(endpoint)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        for row in self._read(f"SELECT {', '.join(COLUMNS)} FROM requests {where} ORDER BY ts, id", args):
            yield RequestRecord.from_row(row)

    def feedback_between(self, t0: float | None = None, t1: float | None = None) -> list[FeedbackRecord]:
        clauses, args = _time_clauses(t0, t1)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback {where} ORDER BY ts, id", args)
        return [FeedbackRecord(**dict(row)) for row in rows]

    def feedback_for(self, request_id: str) -> list[FeedbackRecord]:
        rows = self._read(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE request_id = ? ORDER BY id", (request_id,))
        return [FeedbackRecord(**dict(row)) for row in rows]


def _time_clauses(t0: float | None, t1: float | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if t0 is not None:
        clauses.append("ts >= ?")
        args.append(t0)
    if t1 is not None:
        clauses.append("ts < ?")
        args.append(t1)
    return clauses, args
