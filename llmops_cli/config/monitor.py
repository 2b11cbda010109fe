"""The ``monitor:`` section, typed: the request store, drift, sampled evaluation and alert rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContinuousEvalSpec:
    """``monitor.continuous_eval``: which suite scores how many sampled requests, how often."""

    suite: str | None = None
    sample: int | None = None  # None: the monitor's default sample size
    every: str | None = None  # a duration ("1h"); None: the whole report window


@dataclass(frozen=True)
class MonitorSpec:
    """``monitor:``; every field unset (None, empty) when the project has no such section."""

    reference: str | None = None  # dataset drift is measured against
    store: str | None = None  # SQLite file or postgresql:// URL; None: the default store
    window: str | None = None
    drift: tuple[str, ...] = ()  # listed drift measures; empty: not listed
    sample_rate: float = 1.0
    continuous_eval: ContinuousEvalSpec | None = None
    alerts: Mapping[str, str] = field(default_factory=dict)  # metric key -> threshold text, in file order
    webhook: str | None = None
    description: str | None = None

    @property
    def eval_suite(self) -> str | None:
        """The suite of continuous evaluation, None when it is not configured."""
        return self.continuous_eval.suite if self.continuous_eval is not None else None


def parse_monitor(section: Mapping[str, Any] | None) -> MonitorSpec:
    """The ``monitor:`` section (absent or empty gives the all-unset spec)."""
    data = section or {}
    evals = data.get("continuous_eval")
    return MonitorSpec(
        reference=data.get("reference"),
        store=data.get("store"),
        window=data.get("window"),
        drift=tuple(data.get("drift") or ()),
        sample_rate=float(data.get("sample_rate", 1.0)),
        continuous_eval=(
            ContinuousEvalSpec(evals.get("suite"), evals.get("sample"), evals.get("every"))
            if isinstance(evals, Mapping)
            else None
        ),
        alerts=dict(data.get("alerts") or {}),
        webhook=data.get("webhook"),
        description=data.get("description"),
    )
