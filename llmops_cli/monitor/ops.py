"""Operational statistics of the requests in a window: counts, latency, errors, tokens, rates.

Served and rejected traffic. The server logs every ``/v1/...`` request, including the ones its
gate refuses before any handler runs: 401 (no or wrong API key), 413 (body over the size limit)
and 429 (no generation slot free, or a rate limit). Those are *rejected* traffic (REJECTED_STATUSES):
they cost the server almost nothing and answer in a millisecond, so counting them with real work
would let a flood of unauthenticated junk drown a 60 s p95 in 1 ms rows. Every other status is
*served* traffic: an authenticated request that reached a handler, whatever its outcome (200,
400/404/422 for a bad request, 5xx). The headline figures (``requests``, ``latency_ms.*``,
``error_rate``, ``throughput_rps``, tokens) describe served traffic; rejected traffic is counted by
status (``rejected``, ``rejected_rate``, ``rejected.401``...), and ``all.*`` keeps the old mixed
figures for anyone who wants them (``all.latency_ms.p95``, ``all.error_rate``).

What counts as an error (``error_rate``, served traffic): a server-side failure, i.e. status
>= 500, or a 2xx/3xx whose ``error`` is set (a stream that broke after its headers were sent).
Other 4xx (a malformed body, an unknown model) are the caller's mistakes; they are counted apart
as ``client_error_rate`` so one misconfigured client does not page anyone. In ``all.error_rate``
a 429 counts as an error too (the caller got no answer through no fault of its own); to be paged
on overload, alert on ``rejected.429`` or ``rejected_rate``.

``throughput_rps`` and ``peak_rps`` are measured at one resolution, PEAK_RESOLUTION_S (1 s): the
served requests are counted per 1-second interval of the window; ``peak_rps`` is the busiest
interval, ``throughput_rps`` the mean over the intervals from the first busy one to the last busy
one (while traffic flowed, not the whole window: a 200-request load test that took 10 s reads
~20 req/s whether the window is 1 h or 24 h). Both are means over the same equal intervals, so the
peak is never below the average. The time series' per-bucket ``rps`` is the bucket's mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops_cli.evals.thresholds import percentile
from llmops_cli.monitor.windows import TimeWindow, choose_bucket, format_duration, iso

# The gate's refusals: no API key (401), body too large (413), no capacity or rate limited (429).
REJECTED_STATUSES = (401, 413, 429)
PEAK_RESOLUTION_S = 1.0


@dataclass(frozen=True)
class OpsRow:
    """The columns operational stats need (no input/output text: a 100k-row window stays cheap)."""

    ts: float
    endpoint: str
    status: int
    latency_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    error: bool


def is_rejected(status: int) -> bool:
    """A request the server's gate refused before any handler ran (see the module docstring)."""
    return status in REJECTED_STATUSES


def outcome(status: int, has_error: bool) -> str:
    """``ok``, ``error`` (server-side, counts in error_rate) or ``client_error`` (other 4xx)."""
    if status >= 500 or status == 429 or (status < 400 and has_error):
        return "error"
    if status >= 400:
        return "client_error"
    return "ok"


@dataclass
class LatencyStats:
    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> LatencyStats:
        data = sorted(v for v in values if v is not None)
        if not data:
            return cls()
        return cls(
            n=len(data),
            mean=math.fsum(data) / len(data),
            p50=percentile(data, 50),
            p95=percentile(data, 95),
            p99=percentile(data, 99),
            max=data[-1],
        )


@dataclass
class TokenStats:
    prompt: int = 0
    completion: int = 0
    prompt_mean: float | None = None  # per request
    completion_mean: float | None = None

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass
class GroupStats:
    """Counts, rates, latency and tokens of a set of requests (a window, an endpoint, a bucket)."""

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    latency_ms: LatencyStats = field(default_factory=LatencyStats)
    tokens: TokenStats = field(default_factory=TokenStats)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def client_error_rate(self) -> float | None:
        return self.client_errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        tokens = asdict(self.tokens) | {"total": self.tokens.total}
        return {
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "error_rate": self.error_rate,
            "client_error_rate": self.client_error_rate,
            "latency_ms": asdict(self.latency_ms),
            "tokens": tokens,
        }


def group_stats(rows: Sequence[OpsRow]) -> GroupStats:
    outcomes = [outcome(r.status, r.error) for r in rows]
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    n = len(rows)
    return GroupStats(
        requests=n,
        errors=outcomes.count("error"),
        client_errors=outcomes.count("client_error"),
        latency_ms=LatencyStats.of(r.latency_ms for r in rows),
        tokens=TokenStats(prompt, completion, prompt / n if n else None, completion / n if n else None),
    )


@dataclass
class Bucket:
    start: float
    seconds: float
    stats: GroupStats  # served traffic
    rejected: int = 0

    @property
    def rps(self) -> float:
        return self.stats.requests / self.seconds

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "start": iso(self.start),
            "start_ts": self.start,
            "requests": stats.requests,
            "rejected": self.rejected,
            "rps": self.rps,
            "errors": stats.errors,
            "error_rate": stats.error_rate,
            "latency_ms": {"p50": stats.latency_ms.p50, "p95": stats.latency_ms.p95, "p99": stats.latency_ms.p99},
            "tokens": stats.tokens.total,
        }


@dataclass
class RateStats:
    """Served requests counted per ``resolution``-second interval (see the module docstring)."""

    resolution: float = PEAK_RESOLUTION_S
    intervals: int = 0  # from the first busy interval to the last busy one, both included
    mean: float | None = None
    peak: float | None = None

    @classmethod
    def of(cls, timestamps: Iterable[float], origin: float, resolution: float = PEAK_RESOLUTION_S) -> RateStats:
        counts: dict[int, int] = {}
        for ts in timestamps:
            index = math.floor((ts - origin) / resolution)
            counts[index] = counts.get(index, 0) + 1
        if not counts:
            return cls(resolution)
        intervals = max(counts) - min(counts) + 1
        total = sum(counts.values())
        return cls(resolution, intervals, total / (intervals * resolution), max(counts.values()) / resolution)


@dataclass
class OpsStats:
    """``total``, ``by_endpoint``, ``series`` and the rates describe served traffic; ``all`` every
    logged request; ``rejected`` the gate's refusals by status."""

    window: TimeWindow
    bucket_seconds: float
    total: GroupStats
    by_endpoint: dict[str, GroupStats]
    series: list[Bucket]
    first_ts: float | None
    last_ts: float | None
    all: GroupStats = field(default_factory=GroupStats)
    rejected: dict[int, int] = field(default_factory=dict)
    rates: RateStats = field(default_factory=RateStats)

    @property
    def throughput_rps(self) -> float | None:
        return self.rates.mean

    @property
    def peak_rps(self) -> float | None:
        return self.rates.peak

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def rejected_rate(self) -> float | None:
        return self.rejected_total / self.all.requests if self.all.requests else None

    def metrics(self) -> dict[str, float | None]:
        """The flat values alerts can name (``latency_ms.p95``, ``error_rate``, ``all.error_rate``...)."""
        t, lat = self.total, self.total.latency_ms
        everything, all_lat = self.all, self.all.latency_ms
        values: dict[str, float | None] = {
            "requests": float(t.requests),
            "throughput_rps": self.throughput_rps,
            "peak_rps": self.peak_rps,
            "errors": float(t.errors),
            "error_rate": t.error_rate,
            "client_error_rate": t.client_error_rate,
            "latency_ms.mean": lat.mean,
            "latency_ms.p50": lat.p50,
            "latency_ms.p95": lat.p95,
            "latency_ms.p99": lat.p99,
            "latency_ms.max": lat.max,
            "tokens.prompt": float(t.tokens.prompt),
            "tokens.completion": float(t.tokens.completion),
            "tokens.total": float(t.tokens.total),
            "tokens.prompt.mean": t.tokens.prompt_mean,
            "tokens.completion.mean": t.tokens.completion_mean,
            "rejected": float(self.rejected_total),
            "rejected_rate": self.rejected_rate,
            "all.requests": float(everything.requests),
            "all.errors": float(everything.errors),
            "all.error_rate": everything.error_rate,
            "all.client_error_rate": everything.client_error_rate,
            "all.latency_ms.mean": all_lat.mean,
            "all.latency_ms.p50": all_lat.p50,
            "all.latency_ms.p95": all_lat.p95,
            "all.latency_ms.p99": all_lat.p99,
            "all.latency_ms.max": all_lat.max,
        }
        for status in REJECTED_STATUSES:
            values[f"rejected.{status}"] = float(self.rejected.get(status, 0))
        return values

    def bases(self) -> dict[str, str]:
        """How many rows each figure rests on, by metric key (shown next to alerts)."""
        served = f"{self.total.requests} served"
        latency = f"{self.total.latency_ms.n} served"
        everything = f"{self.all.requests} logged"
        out: dict[str, str] = {}
        for key in self.metrics():
            if key.startswith("all."):
                out[key] = f"{self.all.latency_ms.n} logged" if ".latency_ms." in key else everything
            elif key.startswith("rejected"):
                out[key] = everything
            else:
                out[key] = latency if key.startswith("latency_ms.") else served
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "bucket": format_duration(self.bucket_seconds),
            "traffic": "served",  # the figures below; "rejected" and "all" follow
            **self.total.to_dict(),
            "throughput_rps": self.throughput_rps,
            "peak_rps": self.peak_rps,
            "rate_resolution_s": self.rates.resolution,
            "rate_intervals": self.rates.intervals,
            "first": iso(self.first_ts),
            "last": iso(self.last_ts),
            "rejected": {
                "statuses": list(REJECTED_STATUSES),
                "requests": self.rejected_total,
                "rate": self.rejected_rate,
                "by_status": {str(k): v for k, v in sorted(self.rejected.items())},
            },
            "all": self.all.to_dict(),
            "by_endpoint": {name: stats.to_dict() for name, stats in self.by_endpoint.items()},
            "series": [b.to_dict() for b in self.series],
        }


def ops_stats(rows: Sequence[OpsRow], window: TimeWindow, bucket_seconds: float | None = None) -> OpsStats:
    """Served totals, per-endpoint stats and a bucketed time series (empty buckets included, so
    plots show the gaps), rejected counts by status, and every row together, in ``window``."""
    size = bucket_seconds or choose_bucket(window.seconds)
    count = max(1, math.ceil(window.seconds / size))
    per_bucket: list[list[OpsRow]] = [[] for _ in range(count)]
    rejected_per_bucket = [0] * count
    per_endpoint: dict[str, list[OpsRow]] = {}
    served: list[OpsRow] = []
    rejected: dict[int, int] = {}
    for row in rows:
        index = min(count - 1, int((row.ts - window.start) // size))
        if is_rejected(row.status):
            rejected[row.status] = rejected.get(row.status, 0) + 1
            rejected_per_bucket[index] += 1
            continue
        served.append(row)
        per_bucket[index].append(row)
        per_endpoint.setdefault(row.endpoint or "?", []).append(row)
    series = []
    for i, bucket_rows in enumerate(per_bucket):
        start = window.start + i * size
        # The last bucket may be cut short by the window's end; its rate uses the time it covers.
        span = min(size, window.end - start)
        series.append(Bucket(start, span, group_stats(bucket_rows), rejected_per_bucket[i]))
    by_endpoint = {name: group_stats(rs) for name, rs in sorted(per_endpoint.items(), key=lambda kv: -len(kv[1]))}
    return OpsStats(
        window=window,
        bucket_seconds=size,
        total=group_stats(served),
        by_endpoint=by_endpoint,
        series=series,
        first_ts=min((r.ts for r in served), default=None),
        last_ts=max((r.ts for r in served), default=None),
        all=group_stats(rows),
        rejected=rejected,
        rates=RateStats.of((r.ts for r in served), window.start),
    )
