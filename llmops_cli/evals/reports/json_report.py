"""results.json: everything the run produced, the input of baselines and every other report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmops_cli.evals.reports.common import as_list
from llmops_cli.evals.results import SCHEMA_VERSION, SuiteResult
from llmops_cli.paths import atomic_write_text


def results_document(results: SuiteResult | Sequence[SuiteResult]) -> dict[str, Any]:
    suites = as_list(results)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "passed": all(s.passed for s in suites),
        "suites": [_strict(s.to_dict()) for s in suites],
    }


def _strict(value: Any) -> Any:
    """NaN/inf (anywhere, e.g. a baseline CI with no paired cases) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(results: SuiteResult | Sequence[SuiteResult], path: Path) -> Path:
    # allow_nan=False: results.json must be strict JSON for other tools (NaN is stored as null).
    text = json.dumps(results_document(results), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return path


def load_results(path: Path) -> list[SuiteResult]:
    """The suites in a results.json (also accepts a single suite's dict)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "suites" in data:
        return [SuiteResult.from_dict(s) for s in data["suites"]]
    return [SuiteResult.from_dict(data)]
