"""Prometheus metrics of the server, kept in memory and written in the text exposition format 0.0.4.

A few counters and one histogram do not need a client library: this module has no dependency and
is thread-safe (request handlers run on the event loop, generations in worker threads).

* ``llmops_requests_total{endpoint,status}``: answered requests (endpoint is the route template);
* ``llmops_request_latency_seconds{endpoint}``: histogram of the time to the last byte;
* ``llmops_tokens_total{kind="prompt"|"completion"}``;
* ``llmops_requests_in_flight``: requests being handled now (streams count until their last chunk);
* ``llmops_model_ready``: 1 once the default model is loaded;
* ``llmops_generation_queue``: generation requests waiting for the model (batcher queues);
* ``llmops_monitor_write_errors_total``: request-log rows lost to a failing disk.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS, value)  # the first bucket whose bound >= value
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.total += value
        self.count += 1


class Metrics:
    """The server's counters. ``gauges`` maps a metric name to (help, callable) read at render time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._tokens = {"prompt": 0, "completion": 0}
        self._in_flight = 0
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._in_flight -= 1
            key = (endpoint, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault(endpoint, _Histogram()).observe(seconds)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def add_tokens(self, prompt: int, completion: int) -> None:
        with self._lock:
            self._tokens["prompt"] += max(0, prompt)
            self._tokens["completion"] += max(0, completion)

    def request_count(self, endpoint: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (e, s), n in self._requests.items()
                if (endpoint is None or e == endpoint) and (status is None or s == status)
            )

    def render(self) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            latency = {k: (list(h.buckets), h.total, h.count) for k, h in sorted(self._latency.items())}
            tokens = dict(self._tokens)
            in_flight = self._in_flight
        lines = _family("llmops_requests_total", "counter", "Requests answered, by endpoint and HTTP status.")
        lines += [f"llmops_requests_total{_labels(endpoint=e, status=str(s))} {n}" for (e, s), n in requests]
        lines += _family(
            "llmops_request_latency_seconds", "histogram", "Time from request to the last byte of the answer."
        )
        for endpoint, (buckets, total, count) in latency.items():
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS, buckets, strict=True):
                cumulative += n
                le = _labels(endpoint=endpoint, le=_number(bound))
                lines.append(f"llmops_request_latency_seconds_bucket{le} {cumulative}")
            lines.append(f"llmops_request_latency_seconds_bucket{_labels(endpoint=endpoint, le='+Inf')} {count}")
            lines.append(f"llmops_request_latency_seconds_sum{_labels(endpoint=endpoint)} {_number(total)}")
            lines.append(f"llmops_request_latency_seconds_count{_labels(endpoint=endpoint)} {count}")
        lines += _family("llmops_tokens_total", "counter", "Tokens processed, by kind (prompt or completion).")
        lines += [f"llmops_tokens_total{_labels(kind=k)} {v}" for k, v in tokens.items()]
        lines += _family("llmops_requests_in_flight", "gauge", "Requests being handled right now.")
        lines.append(f"llmops_requests_in_flight {in_flight}")
        for kind, table in (("gauge", self.gauges), ("counter", self.counters)):
            for name, (help_text, read) in sorted(table.items()):
                lines += _family(name, kind, help_text)
                lines.append(f"{name} {_number(read())}")
        return "\n".join(lines) + "\n"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else str(int(value))
