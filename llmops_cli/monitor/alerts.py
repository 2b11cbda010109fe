"""Alert rules (``monitor.alerts`` in llmops.yaml) and the webhook that announces fired alerts.

A rule is ``key: "OP NUMBER"`` in the eval thresholds' syntax, read the other way round: the alert
fires when the value *satisfies* the comparison (``latency_ms.p95: "> 2000"`` fires above 2 s).
Keys name the report's flat values (:func:`llmops_cli.monitor.report.MonitorReport.metrics`):
``requests``, ``throughput_rps``, ``error_rate``, ``latency_ms.p95``, ``tokens.total``,
``feedback.negative_rate``, ``drift.embedding``, ``drift.output.length``, ``eval.<metric>[.<stat>]``...

A value that could not be computed (no traffic in the window, too few samples for drift) never
fires: write ``requests: "< 1"`` to be alerted when traffic stops.

Each drift measure listed under ``monitor.drift`` gets a default rule unless ``alerts`` sets its
key (DEFAULT_DRIFT_ALERTS), so listing a measure is enough to be warned about it. A default drift
limit is calibrated on the reference at hand (:func:`calibrate_rules`): it becomes max(default,
noise floor + margin), so a window drawn from the reference's own distribution does not fire. A
limit written in ``monitor.alerts`` is kept as written; when it sits at or below the noise floor
the rule carries a note saying it may fire on noise.

``latency_ms.*``, ``error_rate``, ``requests``, ``throughput_rps`` and ``tokens.*`` describe served
traffic (rejected 401/413/429 requests left out, see :mod:`llmops_cli.monitor.windows`); prefix a
key with ``all.`` (``all.latency_ms.p95``, ``all.error_rate``) to alert on every logged request,
or name ``rejected``, ``rejected_rate`` or ``rejected.401``/``.413``/``.429`` for refusals.
"""

from __future__ import annotations

import difflib
import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmops_cli.config.monitor import MonitorSpec, parse_monitor
from llmops_cli.errors import UsageError
from llmops_cli.evals.thresholds import parse_threshold
from llmops_cli.text import plural

DEFAULT_DRIFT_ALERTS = {
    "drift.length": "> 0.3",  # KS D: a third of the length distribution has moved
    "drift.oov": "> 0.5",  # half of the production words never occur in the reference
    "drift.embedding": "> 0.55",  # Evidently's default ROC AUC threshold for its domain classifier
}
WEBHOOK_TIMEOUT_S = 10.0
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass(frozen=True)
class AlertRule:
    key: str
    op: str
    limit: float
    source: str = "monitor.alerts"  # or "default" (a drift measure's), or "eval suite NAME" (its gate)
    fire_when: bool = True  # False for an eval suite's pass gate: it alerts when NOT satisfied
    note: str | None = None  # how a default limit was calibrated, or why a written one is doubtful

    def describe(self) -> str:
        cond = f"{self.key} {self.op} {self.limit:g}"
        return cond if self.fire_when else f"not ({cond})"


@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    value: float | None
    fired: bool
    basis: str | None = None  # how many rows the value rests on ("20 served", "50 ref / 200 prod")

    @property
    def status(self) -> str:
        return "FIRING" if self.fired else ("n/a" if self.value is None else "ok")

    def message(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        return f"{self.rule.key} = {value} ({self.rule.describe()})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.rule.key,
            "condition": self.rule.describe(),
            "op": self.rule.op,
            "limit": self.rule.limit,
            "value": self.value,
            "fired": self.fired,
            "status": self.status,
            "source": self.rule.source,
            "note": self.rule.note,
            "basis": self.basis,
        }


def alert_rules(
    monitor: MonitorSpec | Mapping[str, Any], *, drift_measures: list[str] | None = None
) -> list[AlertRule]:
    """``monitor.alerts`` plus the default rule of every listed drift measure it does not set.

    ``monitor`` is the project's section, typed or as written in llmops.yaml.
    """
    spec = monitor if isinstance(monitor, MonitorSpec) else parse_monitor(monitor)
    configured = dict(spec.alerts)
    rules = [_rule(key, text, "monitor.alerts") for key, text in configured.items()]
    measures = drift_measures if drift_measures is not None else list(spec.drift)
    for measure in measures:
        key = f"drift.{measure}"
        if key in DEFAULT_DRIFT_ALERTS and key not in configured:
            rules.append(_rule(key, DEFAULT_DRIFT_ALERTS[key], "default"))
    return rules


def _rule(key: str, text: str, source: str) -> AlertRule:
    threshold = parse_threshold(f"monitor.alerts.{key}", str(text))
    return AlertRule(key, threshold.op, threshold.limit, source)


def check_alert_keys(rules: list[AlertRule], known: Mapping[str, Any]) -> None:
    """Unknown keys are typos: say so (with the closest known key) instead of never firing."""
    for rule in rules:
        if rule.key in known or rule.key.startswith("eval."):
            continue
        close = difflib.get_close_matches(rule.key, list(known), n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        raise UsageError(
            f"monitor.alerts: unknown key '{rule.key}'",
            hint=f"{hint}Known keys: {', '.join(sorted(known))}, and eval.<metric>[.<stat>] with continuous_eval.",
        )


def calibrate_rules(rules: list[AlertRule], floors: Mapping[str, Any]) -> list[AlertRule]:
    """Raise each default ``>`` / ``>=`` drift limit to at least its noise floor plus margin.

    ``floors`` maps a metric key to a :class:`~llmops_cli.monitor.drift.NoiseFloor` (or None when
    the reference was too small to measure one). Rules written in ``monitor.alerts`` keep their
    limit; one at or below the floor gets a note.
    """
    out = []
    for rule in rules:
        floor = floors.get(rule.key)
        if floor is None or rule.op not in (">", ">=") or not rule.fire_when:
            out.append(rule)
            continue
        measured = f"noise floor {floor.value:.3g} (p{floor.quantile:g} of {floor.repeats} splits)"
        if rule.source == "default":
            limit = max(rule.limit, floor.limit)
            if limit > rule.limit:
                note = f"default {rule.limit:g} raised to {measured} + {floor.margin:g}"
            else:
                note = f"default {rule.limit:g} is above the {measured}"
            out.append(replace(rule, limit=math.ceil(limit * 1e4 - 1e-6) / 1e4, note=note))  # 4 decimals, rounded up
        elif rule.limit <= floor.value:
            out.append(replace(rule, note=f"limit at or below the {measured}: may fire on noise"))
        else:
            out.append(replace(rule, note=f"above the {measured}"))
    return out


def evaluate_alerts(
    rules: list[AlertRule], metrics: Mapping[str, float | None], bases: Mapping[str, str] | None = None
) -> list[Alert]:
    out = []
    bases = bases or {}
    for rule in rules:
        value = metrics.get(rule.key)
        basis = bases.get(rule.key)
        if value is None or not math.isfinite(value):
            out.append(Alert(rule, None, False, basis))
            continue
        satisfied = _OPS[rule.op](float(value), rule.limit)
        out.append(Alert(rule, float(value), satisfied == rule.fire_when, basis))
    return out


@dataclass(frozen=True)
class WebhookResult:
    url: str
    delivered: bool
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "delivered": self.delivered, "status": self.status, "error": self.error}


def webhook_payload(project: str, window: Mapping[str, Any], alerts: list[Alert]) -> dict[str, Any]:
    """The JSON body: the fired alerts, plus a ``text`` line so Slack/Teams-style hooks show something."""
    fired = [a for a in alerts if a.fired]
    lines = "; ".join(a.message() for a in fired)
    return {
        "source": "llmops monitor",
        "project": project,
        "window": {k: window.get(k) for k in ("start", "end", "duration")},
        "alerts": [a.to_dict() for a in fired],
        "text": f"llmops monitor [{project}]: {plural(len(fired), 'alert')} firing: {lines}",
    }


def post_webhook(url: str, payload: Mapping[str, Any], *, timeout: float = WEBHOOK_TIMEOUT_S) -> WebhookResult:
    """POST ``payload`` as JSON. Never raises: a dead hook must not hide the report or its exit code."""
    if not url.lower().startswith(("http://", "https://")):
        return WebhookResult(url, False, error="only http:// and https:// webhooks are supported")
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "llmops-monitor"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return WebhookResult(url, False, exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return WebhookResult(url, False, error=f"{type(exc).__name__}: {reason}")
    return WebhookResult(url, 200 <= status < 300, status, None if 200 <= status < 300 else f"HTTP {status}")
