"""Cross-reference checks: every name an entry mentions must be declared, every file must exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops_cli.config.containment import ALLOW_KEY, is_inside, outside_message
from llmops_cli.config.problems import ProblemList, did_you_mean
from llmops_cli.config.yamlpos import Path_

_STEP_REFS: dict[str, tuple[str, ...]] = {"prompt": ("prompts",), "retrieve": ("retrievers",), "adapter": ("adapters",)}


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


class RefChecker:
    def __init__(self, data: dict[str, Any], root: Path, problems: ProblemList) -> None:
        self.data = data
        self.root = root
        self.problems = problems

    def ref(self, path: Path_, value: Any, *sections: str) -> None:
        """``value`` must name an entry of one of ``sections``."""
        if not isinstance(value, str):
            return
        names: list[str] = []
        for section in sections:
            names.extend(_section(self.data, section))
        if value in names:
            return
        what = " or ".join(s.rstrip("s") if s != "quantized" else "quantized model" for s in sections)
        declared = ", ".join(sorted(names)) or "none"
        hint = did_you_mean(value, names)
        self.problems.add(path, f"unknown {what} '{value}'{hint}; declared: {declared}")

    def file(
        self, path: Path_, value: Any, *, what: str, directory_ok: bool = False, allow_outside: Any = False
    ) -> None:
        if not isinstance(value, str) or "${" in value:
            return
        target = Path(value) if Path(value).is_absolute() else self.root / value
        if target.is_file() or (directory_ok and target.is_dir()):
            self.inside(path, value, target, allow_outside=allow_outside)
            return
        kind = "file or directory" if directory_ok else "file"
        self.problems.add(path, f"{what} {kind} '{value}' does not exist (relative to {self.root})")

    def inside(self, path: Path_, value: str, target: Path, *, allow_outside: Any) -> None:
        """``target`` (from ``value`` at ``path``) must resolve inside the project unless allowed."""
        if allow_outside is True or is_inside(target, self.root):
            return
        entry = ".".join(str(p) for p in path[:2])
        self.problems.add(path, outside_message(value, target, self.root, entry=entry))

    def run(self) -> None:
        d = self.data
        models = _section(d, "models")
        for name, spec in _section(d, "prompts").items():
            if isinstance(spec, dict):
                self.file(("prompts", name, "file"), spec.get("file"), what="prompt", allow_outside=spec.get(ALLOW_KEY))
        for name, spec in _section(d, "datasets").items():
            if isinstance(spec, dict):
                self.file(
                    ("datasets", name, "path"), spec.get("path"), what="dataset", directory_ok=True,
                    allow_outside=spec.get(ALLOW_KEY),
                )  # fmt: skip
        for name, spec in _section(d, "retrievers").items():
            if not isinstance(spec, dict):
                continue
            self.ref(("retrievers", name, "dataset"), spec.get("dataset"), "datasets")
            dataset = _section(d, "datasets").get(str(spec.get("dataset")))
            if isinstance(dataset, dict) and dataset.get("format") not in (None, "documents", "text"):
                self.problems.add(
                    ("retrievers", name, "dataset"),
                    f"retriever needs a 'documents' or 'text' dataset; '{spec.get('dataset')}' "
                    f"has format '{dataset.get('format')}'",
                )
        for name, spec in _section(d, "chains").items():
            steps = spec.get("steps") if isinstance(spec, dict) else None
            for i, step in enumerate(steps if isinstance(steps, list) else []):
                if not isinstance(step, dict):
                    continue
                base = ("chains", name, "steps", i)
                for key, sections in _STEP_REFS.items():
                    if key in step:
                        self.ref((*base, key), step[key], *sections)
                if "model" in step:
                    self.ref((*base, "model"), step["model"], "models", "quantized")
        for name, spec in _section(d, "adapters").items():
            if not isinstance(spec, dict):
                continue
            self.ref(("adapters", name, "base"), spec.get("base"), "models")
            base_model = models.get(str(spec.get("base")))
            if isinstance(base_model, dict) and "provider" in base_model:
                self.problems.add(
                    ("adapters", name, "base"),
                    f"model '{spec.get('base')}' is a remote ({base_model.get('provider')}) model; "
                    "adapters train on a local model (one with 'source:')",
                )
            self.ref(("adapters", name, "dataset"), spec.get("dataset"), "datasets")
        for name, spec in _section(d, "evals").items():
            if not isinstance(spec, dict):
                continue
            target = spec.get("target")
            if isinstance(target, dict):
                targets: tuple[tuple[str, tuple[str, ...]], ...] = (
                    ("chain", ("chains",)),
                    ("prompt", ("prompts",)),
                    ("model", ("models", "quantized")),
                    ("quantized", ("quantized",)),
                    ("adapter", ("adapters",)),
                )
                for key, kinds in targets:
                    if key in target:
                        self.ref(("evals", name, "target", key), target[key], *kinds)
            self.ref(("evals", name, "dataset"), spec.get("dataset"), "datasets")
            judge = spec.get("judge")
            if isinstance(judge, dict) and "model" in judge:
                self.ref(("evals", name, "judge", "model"), judge["model"], "models")
        for name, spec in _section(d, "quantized").items():
            if not isinstance(spec, dict):
                continue
            self.ref(("quantized", name, "model"), spec.get("model"), "models")
            if "adapter" in spec:
                self.ref(("quantized", name, "adapter"), spec["adapter"], "adapters")
            if "check_with" in spec:
                self.ref(("quantized", name, "check_with"), spec["check_with"], "evals")
        for name, spec in _section(d, "packages").items():
            if not isinstance(spec, dict):
                continue
            if "chain" in spec:
                self.ref(("packages", name, "chain"), spec["chain"], "chains")
            if "model" in spec:
                self.ref(("packages", name, "model"), spec["model"], "models", "quantized")
            if "adapter" in spec:
                self.ref(("packages", name, "adapter"), spec["adapter"], "adapters")
            for key, section in (("prompts", "prompts"), ("retrievers", "retrievers")):
                for i, item in enumerate(spec.get(key) or []):
                    self.ref(("packages", name, key, i), item, section)
        for name, spec in _section(d, "deployments").items():
            if isinstance(spec, dict):
                self.ref(("deployments", name, "package"), spec.get("package"), "packages")
        monitor = _section(d, "monitor")
        if "reference" in monitor:
            self.ref(("monitor", "reference"), monitor["reference"], "datasets")
        ce = monitor.get("continuous_eval")
        if isinstance(ce, dict) and "suite" in ce:
            self.ref(("monitor", "continuous_eval", "suite"), ce["suite"], "evals")
