"""Run a chain declared in llmops.yaml, step by step, recording a trace.

Each step writes one named value (``output``, else its ``id``, else its kind) into the run's
context; later steps read earlier values and the chain's inputs through Jinja. A step with
``when:`` runs only when its condition is true. Every run is appended to
``.llmops/traces/<chain>.jsonl`` (eval and monitor read these), the partial run too when a step fails.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.chains import templating
from llmops_cli.chains.errors import ChainStepError
from llmops_cli.chains.runtime import ProjectRuntime, Runtime
from llmops_cli.chains.steps import run_step
from llmops_cli.config import ProjectConfig
from llmops_cli.config.chains import ChainStep
from llmops_cli.errors import UsageError
from llmops_cli.paths import STATE_DIR


@dataclass
class StepRecord:
    index: int  # 0-based position in the chain's steps (shown 1-based: "step 2 (generate)")
    id: str  # the step's id, else KIND-N with N 1-based
    kind: str
    target: str  # the prompt / retriever / transform / function the step uses
    output: str
    skipped: bool = False
    inputs: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    latency_ms: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. retrieved chunks, model, adapter
    error: str | None = None


@dataclass
class ChainRun:
    chain: str
    run_id: str
    started: str
    inputs: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    result: Any = None
    output: str | None = None
    latency_ms: float = 0.0
    status: str = "ok"
    trace_file: Path | None = None

    @property
    def tokens(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for step in self.steps:
            for key, value in step.tokens.items():
                total[key] = total.get(key, 0) + value
        return total

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trace_file"] = str(self.trace_file) if self.trace_file else None
        data["tokens"] = self.tokens
        return data


class ChainRunner:
    """Runs chains of one project; keeps models and indexes loaded between runs."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        runtime: Runtime | None = None,
        allow_code: bool = False,
        save_traces: bool = True,
    ) -> None:
        self.config = config
        self.runtime = runtime or ProjectRuntime(config)
        self.allow_code = allow_code
        self.save_traces = save_traces

    def run(self, name: str, inputs: dict[str, Any]) -> ChainRun:
        if name not in self.config.chains:
            declared = ", ".join(self.config.chains) or "none"
            raise UsageError(f"unknown chain '{name}'; declared: {declared}")
        spec = self.config.chains[name]
        missing = [i for i in spec.inputs if i not in inputs]
        if missing:
            flags = " ".join(f"--var {m}=..." for m in missing)
            raise UsageError(f"chain '{name}' needs input(s): {', '.join(missing)}", hint=f"Pass {flags}")
        run = ChainRun(
            chain=name,
            run_id=uuid.uuid4().hex[:12],
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
            inputs=dict(inputs),
        )
        context: dict[str, Any] = dict(inputs)
        started = time.perf_counter()
        try:
            for index, step in enumerate(spec.steps):
                record = self._run_one(run, index, step, context)
                run.steps.append(record)
                if not record.skipped:
                    context[record.output] = record.value
            run.output = spec.output or (run.steps[-1].output if run.steps else None)
            run.result = context.get(run.output) if run.output else None
        except ChainStepError:
            run.status = "error"
            raise
        finally:
            run.latency_ms = (time.perf_counter() - started) * 1000
            if self.save_traces:
                self._save(run)
        return run

    def _run_one(self, run: ChainRun, index: int, step: ChainStep, context: dict[str, Any]) -> StepRecord:
        kind = step.kind
        sid = step.step_id(index)
        record = StepRecord(index, sid, kind, step.target, step.output_name)
        label = f"{index + 1} ({sid}: {kind} {step.target})"  # 1-based, as validate and prompt diff show it
        try:
            if step.when is not None:
                condition = templating.evaluate(step.when, context, where=f"step {label} when")
                record.inputs["when"] = bool(condition)
                if not condition:
                    record.skipped = True
                    return record
            started = time.perf_counter()
            run_step(step, context, record, runtime=self.runtime, allow_code=self.allow_code, where=label)
            record.latency_ms = (time.perf_counter() - started) * 1000
        except Exception as exc:
            record.error = str(exc)
            run.steps.append(record)
            run.status = "error"
            raise ChainStepError(run, label, exc) from exc
        return record

    def _save(self, run: ChainRun) -> None:
        folder = self.config.root / STATE_DIR / "traces"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run.chain}.jsonl"
        run.trace_file = path
        line = json.dumps(run.as_dict(), default=str, ensure_ascii=False)
        with open(path, "a", encoding="utf-8") as fh:  # one line per run: append is atomic enough
            fh.write(line + "\n")


def run_chain(config: ProjectConfig, name: str, inputs: dict[str, Any], **options: Any) -> ChainRun:
    return ChainRunner(config, **options).run(name, inputs)
