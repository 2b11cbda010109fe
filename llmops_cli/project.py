"""The Python API: one object per project, for notebooks and other tools (like DVC's ``Repo``).

    from llmops_cli import Project

    p = Project(".")                        # the nearest llmops.yaml upwards
    p.validate().ok                         # llmops validate
    p.prompt_diff(from_rev="main")          # llmops prompt diff --from main
    result = p.eval("quality")              # llmops eval quality -> a SuiteResult
    p.chain("rag-answer").run(question="How do I reset it?")   # llmops chain run
    p.log()                                 # llmops log

The ``llmops`` commands call the same functions (the eval workflow is
:mod:`llmops_cli.evals.workflow`). Nothing here raises on a failed gate unless asked
(``check=True``): a notebook wants the result object, CI wants the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.chains import ChainRun
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.loader import ValidationResult
    from llmops_cli.evals.results import SuiteResult
    from llmops_cli.evals.workflow import EvalRun
    from llmops_cli.progress import ProgressFn
    from llmops_cli.prompts.diff import DiffReport
    from llmops_cli.versioning import ArtifactRegistry, ArtifactVersion
    from llmops_cli.versioning.add import AddResult


class Project:
    """An llmops project: its ``llmops.yaml``, artifacts, evals and chains."""

    def __init__(self, path: str | Path = ".", *, allow_code: bool = False) -> None:
        from llmops_cli.paths import find_project_root

        self.root = find_project_root(Path(path))
        self.allow_code = allow_code
        self._config: ProjectConfig | None = None
        if allow_code:
            from llmops_cli.models.trust import allow_project_code

            allow_project_code()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    @property
    def config(self) -> ProjectConfig:
        """The loaded ``llmops.yaml`` (a ConfigError when it does not validate); see :meth:`reload`."""
        if self._config is None:
            from llmops_cli.validation import load_config

            self._config = load_config(self.root)
        return self._config

    def reload(self) -> ProjectConfig:
        """Read ``llmops.yaml`` again (after editing it)."""
        self._config = None
        return self.config

    @property
    def registry(self) -> ArtifactRegistry:
        from llmops_cli.versioning import ArtifactRegistry

        return ArtifactRegistry.for_config(self.config)

    # -- llmops validate ------------------------------------------------------------------------------
    def validate(self) -> ValidationResult:
        """Every problem of ``llmops.yaml`` and the files it names (``.ok``, ``.problems``); never raises."""
        from llmops_cli.validation import validate_project

        return validate_project(self.root)

    # -- llmops prompt diff ---------------------------------------------------------------------------
    def prompt_diff(
        self, names: Sequence[str] | None = None, *, from_rev: str | None = None, to_rev: str | None = None
    ) -> DiffReport:
        """What changed in prompts between ``from_rev`` (default: merge-base with main) and ``to_rev``
        (default: the work tree), with the chains, evals and packages each change breaks."""
        from llmops_cli.prompts import prompt_diff

        return prompt_diff(self.root, list(names) if names else None, from_rev=from_rev, to_rev=to_rev)

    # -- llmops eval ----------------------------------------------------------------------------------
    def eval(
        self,
        suite: str,
        *,
        models: str | Sequence[str] | None = None,
        baseline: str | None = None,
        fail_on_regression: float | None = None,
        limit: int | None = None,
        repeat: int | None = None,
        seed: int | None = None,
        batch_size: int = 8,
        use_cache: bool = True,
        use_adapters: bool = True,
        adversarial: bool = True,
        save: bool = True,
        check: bool = False,
        allow_errors: bool = False,
        progress: ProgressFn | None = None,
    ) -> SuiteResult | list[SuiteResult]:
        """Run one eval suite as ``llmops eval SUITE`` does (same cache, same registered ``eval/SUITE/vN``).

        Returns the :class:`~llmops_cli.evals.results.SuiteResult` (``.aggregates``, ``.cases``,
        ``.passed``, ``.failed_thresholds()``), or one per model with ``models``. With ``check=True``
        it raises what the command exits with: EvalErrors (8) on errored cases, QualityGateFailed (5)
        on a failed gate or regression.
        """
        run = self.eval_run(
            [suite],
            models=models,
            baseline=baseline,
            fail_on_regression=fail_on_regression,
            save=save,
            progress=progress,
            limit=limit,
            repeat=repeat,
            seed=seed,
            batch_size=batch_size,
            use_cache=use_cache,
            use_adapters=use_adapters,
            adversarial=adversarial,
        )
        if check:
            from llmops_cli.evals.workflow import check_outcome

            check_outcome(run, allow_errors=allow_errors)
        return run.results if models else run.results[0]

    def eval_run(
        self,
        suites: Sequence[str] | None = None,
        *,
        models: str | Sequence[str] | None = None,
        baseline: str | None = None,
        fail_on_regression: float | None = None,
        save: bool = True,
        progress: ProgressFn | None = None,
        **options: Any,
    ) -> EvalRun:
        """Several suites at once (default: all): the whole :class:`EvalRun` (results, failures, versions).
        ``options`` are :class:`~llmops_cli.evals.runner.EvalOptions` fields (limit, repeat, use_cache...)."""
        from llmops_cli.evals.runner import EvalOptions
        from llmops_cli.evals.workflow import EvalHooks, progress_hook, run_evals

        eval_options = EvalOptions(allow_code=self.allow_code, **options)
        hooks = EvalHooks(progress=progress_hook(progress))
        return run_evals(self.config, suites, eval_options, models=models, baseline=baseline,
                         fail_on_regression=fail_on_regression, save=save, hooks=hooks)  # fmt: skip

    # -- llmops chain run -----------------------------------------------------------------------------
    def chain(self, name: str, *, use_adapters: bool = True, save_traces: bool = True) -> Chain:
        """A chain to run: ``p.chain("rag-answer").run(question="...")``."""
        if name not in self.config.chains:
            from llmops_cli.errors import UsageError

            declared = ", ".join(self.config.chains) or "none"
            raise UsageError(f"unknown chain '{name}'; declared: {declared}")
        return Chain(self, name, use_adapters, save_traces)

    # -- llmops log / show / add ----------------------------------------------------------------------
    def log(self, artifact: str | None = None) -> list[ArtifactVersion]:
        """Registered artifact versions (of ``KIND/NAME``, or all), newest first, with their manifests."""
        from llmops_cli.versioning import ArtifactRef

        registry = self.registry
        versions = registry.history(ArtifactRef.parse(artifact) if artifact else None)
        for version in versions:
            version.manifest = registry.read_manifest(version)
        return versions

    def show(self, ref: str) -> ArtifactVersion:
        """One artifact version (``KIND/NAME[@vN]``) with its manifest."""
        from llmops_cli.versioning import ArtifactRef

        return self.registry.get(ArtifactRef.parse(ref))

    def add(self, path: str | Path, *, kind: str = "file", name: str | None = None,
            inputs: Sequence[str] | None = None) -> AddResult:  # fmt: skip
        """``llmops add``: version a file or folder as ``KIND/NAME/vN`` (reused when unchanged)."""
        from llmops_cli.versioning.add import add_path

        source = Path(path) if Path(path).is_absolute() else self.root / path
        default = source.resolve().stem if source.is_file() else source.resolve().name
        return add_path(self.registry, source, kind, name or default, inputs=list(inputs or []))


@dataclass
class Chain:
    """A chain of a :class:`Project`; :meth:`run` runs it as ``llmops chain run`` does."""

    project: Project
    name: str
    use_adapters: bool = True
    save_traces: bool = True

    def run(self, inputs: dict[str, Any] | None = None, /, **variables: Any) -> ChainRun:
        """Run on ``inputs`` and/or keyword variables; ``.result`` is the answer, ``.steps`` the trace."""
        from llmops_cli.chains import ChainRunner
        from llmops_cli.chains.runtime import ProjectRuntime

        config = self.project.config
        runner = ChainRunner(config, runtime=ProjectRuntime(config, use_adapters=self.use_adapters),
                             allow_code=self.project.allow_code, save_traces=self.save_traces)  # fmt: skip
        return runner.run(self.name, {**(inputs or {}), **variables})
