"""Time windows of the monitor: durations, times, a window ``[start, end)`` and bucket sizes.

Times are Unix seconds, shown as UTC. A window is half-open, ``[start, end)``, like
:meth:`MonitorStore.requests_between`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from llmops_cli.errors import UsageError

DEFAULT_WINDOW = "24h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
# Bucket sizes a time series may use; the smallest one that gives at most MAX_BUCKETS is picked.
_NICE_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_BUCKETS = 40


def parse_duration(text: str, *, what: str = "duration") -> float:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"2w"`` -> seconds."""
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise UsageError(
            f"{what}: cannot read {text!r}", hint="Write a positive number and a unit: 30s, 15m, 24h, 7d, 2w."
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling (``86400`` -> ``"1d"``, ``5400`` -> ``"90m"``)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_time(text: str, *, now: float, what: str = "time") -> float:
    """A point in time: ``now``, a duration ago (``2h``), ``@UNIX_SECONDS``, or ISO 8601.

    An ISO time without an offset is read as UTC (everything llmops monitor shows is UTC).
    """
    value = str(text).strip()
    if value == "now":
        return now
    if _DURATION.match(value):
        return now - parse_duration(value, what=what)
    if value.startswith("@"):
        try:
            return float(value[1:])
        except ValueError:
            pass
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.timestamp()
    raise UsageError(
        f"{what}: cannot read {text!r}",
        hint="Use 'now', a duration ago (2h, 7d), @UNIX_SECONDS or an ISO time (2025-01-31T12:00, UTC).",
    )


def iso(ts: float | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TimeWindow:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "start_ts": self.start,
            "end_ts": self.end,
            "duration": format_duration(round(self.seconds)) if self.seconds >= 1 else f"{self.seconds:g}s",
        }


def resolve_window(
    window: str | None = None, since: str | None = None, until: str | None = None, *, now: float | None = None
) -> TimeWindow:
    """``[since, until)``; a missing end defaults to now, a missing start to ``until - window``."""
    now = time.time() if now is None else now
    end = parse_time(until, now=now, what="--until") if until else now
    if since:
        start = parse_time(since, now=now, what="--since")
    else:
        start = end - parse_duration(window or DEFAULT_WINDOW, what="window")
    if start >= end:
        raise UsageError(f"empty time window: {iso(start)} is not before {iso(end)}", hint="Check --since / --until.")
    return TimeWindow(start, end)


def choose_bucket(seconds: float) -> float:
    """The smallest nice bucket size that splits ``seconds`` into at most MAX_BUCKETS buckets."""
    for size in _NICE_BUCKETS:
        if seconds / size <= MAX_BUCKETS:
            return float(size)
    return float(math.ceil(seconds / MAX_BUCKETS))
