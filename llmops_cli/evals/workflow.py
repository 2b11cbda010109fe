"""The eval workflow behind ``llmops eval`` and :meth:`llmops_cli.Project.eval`.

For each suite: run it once per model (``--models``), compare with a baseline (``--baseline``,
``--fail-on-regression``), register the results as ``eval/SUITE/vN``, and collect the gates that
failed. :func:`check_outcome` then turns errored cases and failed gates into the documented errors
(exit 8 and 5). Nothing here prints: a caller that wants output passes :class:`EvalHooks` (the CLI
prints tables from them), so the same run gives the same results in a notebook and in CI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.text import plural

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.evals.results import SuiteResult
    from llmops_cli.evals.runner import EvalOptions, ModelOverride


def _no_progress(_label: str) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext(None)


@dataclass
class EvalHooks:
    """What a caller sees while the workflow runs (every hook is optional)."""

    progress: Callable[[str], contextlib.AbstractContextManager[Any]] = _no_progress  # yields fn(done, total)
    on_result: Callable[[SuiteResult], None] | None = None  # a suite (one model) finished
    on_baseline: Callable[[SuiteResult], None] | None = None  # its baseline comparison is attached
    on_saved: Callable[[Any], None] | None = None  # an ArtifactVersion was registered
    on_not_saved: Callable[[str], None] | None = None  # not a git repository: the run still counts
    on_side_by_side: Callable[[list[SuiteResult]], None] | None = None  # several models of one suite


@dataclass
class EvalRun:
    """Everything one workflow run produced."""

    results: list[SuiteResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # failed thresholds and regressions, described
    versions: list[Any] = field(default_factory=list)  # registered eval/SUITE/vN versions

    @property
    def errored(self) -> list[tuple[SuiteResult, int]]:
        return [(r, n) for r in self.results if (n := r.error_count)]

    @property
    def passed(self) -> bool:
        """No gate failed and no case errored."""
        return not self.failures and not self.errored


def label(result: SuiteResult) -> str:
    override = result.target.get("override")
    return f" [{override}]" if override else ""


def parse_models(models: str | Sequence[str] | None) -> list[ModelOverride | None]:
    """``"base,base+lora"`` (or a list) as model overrides; ``[None]`` (the suite's own target) when empty."""
    from llmops_cli.evals.runner import ModelOverride

    if models is None:
        return [None]
    items = models.split(",") if isinstance(models, str) else list(models)
    parsed: list[ModelOverride | None] = [ModelOverride.parse(m) for m in items if m.strip()]
    return parsed or [None]


def run_evals(
    config: ProjectConfig,
    suites: Sequence[str] | None = None,
    options: EvalOptions | None = None,
    *,
    models: str | Sequence[str] | None = None,
    baseline: str | None = None,
    fail_on_regression: float | None = None,
    save: bool = True,
    hooks: EvalHooks | None = None,
) -> EvalRun:
    """Run ``suites`` (default: every suite) and return their results with the gates that failed."""
    from llmops_cli.errors import UsageError
    from llmops_cli.evals.runner import EvalOptions

    hooks = hooks or EvalHooks()
    names = list(suites or config.evals)
    if not names:
        raise UsageError("this project declares no eval suites", hint="Add one under `evals:` in llmops.yaml.")
    if fail_on_regression is not None and baseline is None:
        raise UsageError("--fail-on-regression needs --baseline REF")
    overrides = parse_models(models)
    base = options or EvalOptions()
    run = EvalRun()
    for name in names:
        runs = []
        for override in overrides:
            one = EvalOptions(**{**base.__dict__, "override": override})
            runs.append(_run_one(config, name, one, hooks))
        if baseline is not None:
            run.failures += _compare(config, runs, baseline, fail_on_regression, hooks)
        if save:
            version = _save(config, runs, hooks)
            if version is not None:
                run.versions.append(version)
                if hooks.on_saved:
                    hooks.on_saved(version)
        if len(overrides) > 1 and hooks.on_side_by_side:
            hooks.on_side_by_side(runs)
        run.results += runs
        run.failures += [f"{r.suite}{label(r)}: {t.describe()}" for r in runs for t in r.failed_thresholds()]
    return run


def check_outcome(run: EvalRun, *, allow_errors: bool = False, warn: Callable[[str], None] | None = None) -> None:
    """Raise :class:`EvalErrors` (exit 8) when cases errored (unless ``allow_errors``: then ``warn``
    says so), then :class:`QualityGateFailed` (exit 5) when a gate failed."""
    from llmops_cli.errors import EvalErrors, QualityGateFailed

    errored = run.errored
    if errored:
        counts = "; ".join(f"{r.suite}{label(r)}: {n} of {plural(len(r.cases), 'case')}" for r, n in errored)
        total = sum(n for _, n in errored)
        if not allow_errors:
            first = next(c.error for r, _ in errored for c in r.cases if c.error) or ""
            raise EvalErrors(
                f"{plural(total, 'eval case')} errored ({counts}); an eval with errors does not pass",
                hint=f"First error: {first.rstrip('.')}. Fix the target (or the server behind it), "
                "or pass --allow-errors to accept errored cases (they stay unscored)."
                + (f" Also {len(run.failures)} quality gate(s) failed." if run.failures else ""),
            )
        if warn is not None:
            warn(f"{plural(total, 'case')} errored ({counts}); accepted by --allow-errors")
    if run.failures:
        raise QualityGateFailed(
            f"{len(run.failures)} quality gate(s) failed",
            hint="; ".join(run.failures[:5]) + (" ..." if len(run.failures) > 5 else ""),
        )


def _run_one(config: ProjectConfig, name: str, options: EvalOptions, hooks: EvalHooks) -> SuiteResult:
    from llmops_cli.evals.runner import run_suite

    text = name + (f" [{options.override.label}]" if options.override else "")
    with hooks.progress(text) as report:
        result = run_suite(config, name, options, progress=report)
    if hooks.on_result:
        hooks.on_result(result)
    return result


def _save(config: ProjectConfig, runs: list[SuiteResult], hooks: EvalHooks) -> Any:
    from llmops_cli.errors import VersioningError
    from llmops_cli.evals.history import save_result

    try:
        return save_result(config, runs)
    except VersioningError as error:  # not a git repo: the run still counts, it just is not versioned
        if hooks.on_not_saved:
            hooks.on_not_saved(f"results not registered: {error.message}")
        return None


def _compare(
    config: ProjectConfig, runs: list[SuiteResult], ref: str, limit: float | None, hooks: EvalHooks
) -> list[str]:
    from llmops_cli.evals.history import attach_baseline, load_baseline, regressions

    failures = []
    for result in runs:
        base = load_baseline(config, result.suite, ref, target=result.target)
        attach_baseline(result, base, ref)
        if hooks.on_baseline:
            hooks.on_baseline(result)
        if limit is not None:
            failures += [f"{result.suite}{label(result)} regressed: {r}" for r in regressions(result, limit)]
    return failures


def progress_hook(fn: Callable[[str, int, int], None] | None) -> Callable[[str], Any]:
    """A ``hooks.progress`` from a plain ``fn(suite_label, done, total)`` callback (for the API)."""

    @contextlib.contextmanager
    def factory(text: str) -> Iterator[Callable[[int, int], None] | None]:
        if fn is None:
            yield None
            return

        def report(done: int, total: int) -> None:
            fn(text, done, total)

        yield report

    return factory
