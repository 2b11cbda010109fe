"""Eval results in git: register a run as ``eval/SUITE/vN`` and read one back as a baseline.

A baseline is either an artifact reference (``eval/support-quality@v3``, or the tag form
``eval/support-quality/v3``) or any git revision (``main``, ``HEAD~1``, a sha): the suite's
``results.json`` as committed at that revision, i.e. the last run registered there.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmops_cli.config import ProjectConfig
from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.evals.compare import compare_suites
from llmops_cli.evals.results import SuiteResult, lower_is_better

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"
_TAG_FORM = re.compile(r"^eval/([^/@]+)/v(\d+)$")


def save_result(config: ProjectConfig, results: Sequence[SuiteResult]) -> Any:
    """Register ``results`` (one suite; several with --models) as ``eval/SUITE/vN``; returns the version."""
    from llmops_cli.evals.reports.json_report import write_json
    from llmops_cli.evals.reports.markdown import write_markdown
    from llmops_cli.versioning import ArtifactRegistry, Input

    first = results[0]
    registry = ArtifactRegistry.for_config(config)
    inputs = [Input(f"dataset:{config.datasets[first.dataset_ref].path}", _dataset_hash(config, first.dataset_ref))]
    for result in results:
        inputs += [Input(f"model:{name}", fp) for name, fp in result.versions.get("models", {}).items()]
        inputs += [Input(f"adapter/{name}", h) for name, h in result.versions.get("adapters", {}).items()]
    inputs = list({(i.ref, i.hash): i for i in inputs}.values())
    metrics = {
        key: stats.get("corpus", stats.get("mean"))
        for key, stats in first.aggregates.items()
        if stats.get("corpus", stats.get("mean")) is not None
    }
    metrics["passed"] = all(r.passed for r in results)
    with tempfile.TemporaryDirectory(prefix="llmops-eval-") as tmp:
        folder = Path(tmp)
        write_json(list(results), folder / RESULTS_FILE)
        write_markdown(list(results), folder / SUMMARY_FILE)
        return registry.register(
            "eval",
            first.suite,
            {RESULTS_FILE: folder / RESULTS_FILE, SUMMARY_FILE: folder / SUMMARY_FILE},
            inputs=inputs,
            config_hash=config.section_hash("evals", first.suite),
            metrics=metrics,
            params={"targets": [r.target for r in results], "cases": len(first.cases)},
            summary=f"eval {first.suite}: {'passed' if metrics['passed'] else 'FAILED'}",
        )


def _dataset_hash(config: ProjectConfig, name: str) -> str:
    import hashlib

    path = config.resolve_path(config.datasets[name].path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return "sha256:" + digest.hexdigest()


def load_baseline(config: ProjectConfig, suite: str, ref: str, *, target: dict[str, Any] | None = None) -> SuiteResult:
    """The registered result of ``suite`` that ``ref`` names (see the module docstring)."""
    from llmops_cli.evals.reports.json_report import load_results
    from llmops_cli.versioning import ArtifactRef, ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    results_path = f"{registry.git.relpath(registry.folder('eval', suite))}/{RESULTS_FILE}"
    tag = _TAG_FORM.match(ref.strip())
    if tag or ref.strip().startswith("eval/"):
        art = ArtifactRef("eval", tag[1], int(tag[2])) if tag else ArtifactRef.parse(ref)
        if art.name != suite:
            raise UsageError(f"baseline {ref} belongs to suite '{art.name}', not '{suite}'")
        commit, label = registry.get(art).commit, str(art)
    else:
        from llmops_cli.prompts.revisions import commit_of

        commit, label = commit_of(registry.git, ref), ref
    text = _committed_text(registry, commit, results_path)
    if text is None:
        raise UsageError(
            f"no registered results of eval '{suite}' at {label}",
            hint=f"Run 'llmops eval {suite}' at that revision first, or pick one from 'llmops log eval/{suite}'.",
        )
    with tempfile.TemporaryDirectory(prefix="llmops-baseline-") as tmp:
        path = Path(tmp) / RESULTS_FILE
        path.write_text(text, encoding="utf-8")
        suites = load_results(path)
    chosen = _matching(suites, target)
    chosen.versions.setdefault("baseline_ref", label)
    return chosen


def _committed_text(registry: Any, commit: str, path: str) -> str | None:
    text: str | None = registry.git.show_file(commit, path)
    if text is not None:
        return text
    pointer_text = registry.git.show_file(commit, path + ".ptr")  # results.json above the store threshold
    if pointer_text is None:
        return None
    from llmops_cli.versioning import Pointer

    pointer = Pointer.loads(pointer_text, origin=path)
    if not registry.store.has(pointer.sha256):
        raise UnavailableError(f"{path} at {commit[:10]} is in the content store, not here", hint="Run 'llmops pull'.")
    return registry.store.read_verified(pointer.sha256).decode("utf-8")  # hashed: a damaged object is refused


def _matching(suites: list[SuiteResult], target: dict[str, Any] | None) -> SuiteResult:
    if target is not None:
        for suite in suites:
            if suite.target.get("override") == target.get("override"):
                return suite
    return suites[0]


def attach_baseline(current: SuiteResult, baseline: SuiteResult, label: str, *, n_boot: int = 2000) -> None:
    """Per-metric paired deltas with bootstrap CIs into ``current.baseline`` (what the reports show)."""
    comparison = compare_suites(current, baseline, n_boot=n_boot)
    current.baseline = {
        "ref": label,
        "metrics": {m: {k: v for k, v in c.items() if k != "per_case"} for m, c in comparison.items()},
        "per_case": {m: c["per_case"] for m, c in comparison.items()},
    }


def regressions(current: SuiteResult, limit: float) -> list[str]:
    """Metrics that got worse by more than ``limit`` with the whole confidence interval on the bad side."""
    found = []
    for metric, c in (current.baseline or {}).get("metrics", {}).items():
        delta, low, high = c.get("delta_mean"), c.get("ci_low"), c.get("ci_high")
        if delta is None or low is None or high is None or delta != delta:  # NaN: nothing paired
            continue
        worse = -delta if not lower_is_better(metric) else delta  # positive = got worse
        ci_worse_side = high < 0 if not lower_is_better(metric) else low > 0
        if worse > limit and ci_worse_side:
            found.append(f"{metric}: {delta:+.4g} (95% CI {low:+.4g} .. {high:+.4g})")
    return found


def suite_prompts(config: ProjectConfig, suite: str) -> set[str]:
    """The prompts a suite's target renders (its prompt, or its chain's prompt steps)."""
    target = config.evals[suite].target
    if target.prompt is not None:
        return {target.prompt}
    if target.chain is not None:
        return set(config.chains[target.chain].prompt_names())
    return set()


def eval_prompt_versions(
    config: ProjectConfig, suite: str, report: Any, *, progress: Any = None, **options: Any
) -> tuple[SuiteResult, SuiteResult] | None:
    """Run ``suite`` with the old and the new side of a prompt diff; the new result carries the deltas.

    Only the prompts that changed are swapped in; both runs share the output cache, so cases whose
    rendered prompt did not change are generated once. None when the suite uses no changed prompt.
    """
    from llmops_cli.evals.runner import EvalOptions, run_suite

    changed = {c.name for c in report.changes if c.status != "deleted"} & suite_prompts(config, suite)
    if not changed:
        return None
    old_specs = {n: report.old.prompts[n].spec for n in changed if n in report.old.prompts}
    new_specs = {n: report.new.prompts[n].spec for n in changed if n in report.new.prompts}
    if any(spec is None for spec in [*old_specs.values(), *new_specs.values()]):
        raise UsageError(f"a changed prompt of suite '{suite}' does not load on one side; fix it before --eval")
    old = run_suite(config, suite, EvalOptions(prompt_overrides=old_specs, **options), progress=progress)
    new = run_suite(config, suite, EvalOptions(prompt_overrides=new_specs, **options), progress=progress)
    old.target["prompts"] = {n: report.old.label for n in old_specs}
    new.target["prompts"] = {n: report.new.label for n in new_specs}
    attach_baseline(new, old, report.old.label)
    return old, new
