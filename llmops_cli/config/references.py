"""Cross-reference checks: every name an entry mentions must be declared, every file must exist."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.adapters import TRAINABLE_FORMATS
from llmops_cli.config.containment import ALLOW_KEY, is_inside, outside_message
from llmops_cli.config.problems import ProblemList, did_you_mean
from llmops_cli.config.quantized import COMPUTE_DTYPES, QUANT_TYPES
from llmops_cli.config.quantized import METHODS as QUANTIZE_METHODS
from llmops_cli.config.retrievers import COLLECTION_NAME
from llmops_cli.config.yamlpos import Path_
from llmops_cli.errors import ConfigError

if TYPE_CHECKING:
    from llmops_cli.config.adapters import AdapterSpec
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec
    from llmops_cli.config.retrievers import RetrieverSpec

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


# -- use-time checks: what `llmops tune` and `llmops quantize` refuse beyond the checks above ------------


def _declared(config: ProjectConfig, section: str, name: str, where: str, what: str = "") -> None:
    """``name`` must be an entry of ``section`` (the loader's checks above already ensure it for a
    loaded project; a config built with ``ProjectConfig.from_dict`` alone gets this error instead)."""
    if name not in getattr(config, section):
        raise ConfigError(f"{where}: no {what or section.rstrip('s')} named '{name}' under '{section}:'.")


def check_adapter(config: ProjectConfig, spec: AdapterSpec) -> None:
    """The rules an adapter entry must meet to be trained (``llmops tune``), beyond its schema."""
    where = f"adapters.{spec.name}"
    if spec.method == "lora" and "quantization" in spec.declared:
        raise ConfigError(
            f"{where}: 'quantization' is only used with method: qlora, but the method is lora.",
            hint="Set method: qlora to train on a quantized base, or remove the quantization block.",
        )
    _declared(config, "models", spec.base, f"{where}.base")
    model = config.models[spec.base]
    if model.is_remote:
        raise ConfigError(
            f"{where}.base: model '{spec.base}' is a remote API ({model.base_url}); LoRA needs local weights.",
            hint="Point base: at a model with 'source:' (the embedded default, an HF folder, a .gguf or a hub id).",
        )
    _declared(config, "datasets", spec.dataset, f"{where}.dataset")
    dataset = config.datasets[spec.dataset]
    if dataset.format not in TRAINABLE_FORMATS:
        raise ConfigError(
            f"{where}.dataset: dataset '{spec.dataset}' has format '{dataset.format}', "
            "which holds no training records.",
            hint=f"Train on a dataset whose format is one of: {', '.join(TRAINABLE_FORMATS)}.",
        )
    if spec.quantization is not None and spec.quantization.bits == 8 and spec.quantization.quant_type != "nf4":
        raise ConfigError(f"{where}.quantization.quant_type applies to 4-bit only; remove it for bits: 8.")


def check_quantized(config: ProjectConfig, spec: QuantizedSpec) -> None:
    """The rules a ``quantized:`` entry must meet to be built (``llmops quantize``), beyond its schema."""
    where = f"quantized.{spec.name}"
    if spec.method not in QUANTIZE_METHODS:
        raise ConfigError(f"{where}.method: '{spec.method}' is not one of {', '.join(QUANTIZE_METHODS)}")
    if spec.method == "gguf":
        _check_gguf(spec, where)
    elif "type" in spec.declared:
        raise ConfigError(
            f"{where}.type is a GGUF type; this entry uses method: bitsandbytes.",
            hint="Add method: gguf, or use bits/quant_type for bitsandbytes.",
        )
    elif spec.bits not in (4, 8):
        hint = "Use 4 or 8." if spec.bits else "Add bits: 4 or bits: 8 (or method: gguf with a type)."
        raise ConfigError(f"{where}.bits: {spec.bits or 'missing'} is not supported", hint=hint)
    if spec.quant_type not in QUANT_TYPES:
        raise ConfigError(f"{where}.quant_type: '{spec.quant_type}' is not one of {', '.join(QUANT_TYPES)}")
    if spec.compute_dtype is not None and spec.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"{where}.compute_dtype: '{spec.compute_dtype}' is not one of {', '.join(COMPUTE_DTYPES)}")
    _declared(config, "models", spec.model, f"{where}.model")
    model = config.models[spec.model]
    if model.is_remote:
        raise ConfigError(
            f"{where}.model: '{spec.model}' is a remote model ({model.provider}); only local weights can be quantized.",
            hint="Point 'model:' at an entry with a 'source:'.",
        )
    if spec.adapter is not None:
        _declared(config, "adapters", spec.adapter, f"{where}.adapter")
        trained_on = config.adapters[spec.adapter].base
        if trained_on != spec.model:
            raise ConfigError(
                f"{where}.adapter: '{spec.adapter}' was trained on '{trained_on}', not on '{spec.model}'.",
                hint=f"Set model: {trained_on}, or pick an adapter trained on '{spec.model}'.",
            )
    elif spec.merge:
        raise ConfigError(f"{where}.merge: true needs an 'adapter:' to merge.")
    if spec.check_with is not None:
        _declared(config, "evals", spec.check_with, f"{where}.check_with", what="eval suite")
    if spec.max_quality_drop is not None and spec.check_with is None:
        # A gate that silently never runs is worse than no gate: CI would pass without checking.
        raise ConfigError(
            f"{where}.max_quality_drop is set but there is no check_with suite to measure the drop with.",
            hint="Add check_with: <eval suite>, or remove max_quality_drop.",
        )


def _check_gguf(spec: QuantizedSpec, where: str) -> None:
    import difflib

    from llmops_cli.engines.gguf import GGUF_TYPES

    if spec.gguf_type not in GGUF_TYPES:
        close = difflib.get_close_matches(spec.gguf_type, list(GGUF_TYPES), n=1)
        raise ConfigError(
            f"{where}.type: '{spec.gguf_type}' is not a GGUF type llmops makes",
            hint=f"Did you mean '{close[0]}'?" if close else f"Use one of: {', '.join(GGUF_TYPES)}.",
        )
    for key in ("bits", "quant_type", "double_quant", "compute_dtype"):
        if key in spec.declared:
            raise ConfigError(
                f"{where}.{key} applies to method: bitsandbytes; a GGUF's type ({spec.gguf_type}) sets its precision.",
                hint=f"Remove {key}.",
            )
    if spec.adapter is not None and not spec.merge:
        raise ConfigError(
            f"{where}: a GGUF build carries its adapter merged into the weights; set merge: true.",
            hint="llama.cpp can also apply a separate LoRA at run time: use the adapter with the base model instead.",
        )


def check_retriever(config: ProjectConfig, spec: RetrieverSpec) -> None:
    """The rules a retriever entry must meet to be indexed or queried, beyond its schema (chunk
    sizes are checked where chunks are made, :class:`llmops_cli.retrieval.chunking.ChunkSettings`)."""
    where = f"retrievers.{spec.name}"
    dataset = config.datasets.get(spec.dataset)
    if dataset is None:
        raise ConfigError(f"{where}.dataset: no dataset named '{spec.dataset}'.")
    if dataset.format not in ("documents", "text"):
        raise ConfigError(
            f"{where}.dataset: '{dataset.name}' has format '{dataset.format}'; "
            "a retriever needs a 'documents' or 'text' dataset."
        )
    if spec.store.type == "http" and (not spec.store.host or not spec.store.port):
        raise ConfigError(
            f"{where}.store: type http needs 'host' and 'port'.",
            hint="e.g. store: {type: http, host: localhost, port: 8000}",
        )
    collection = spec.collection_name
    if not COLLECTION_NAME.match(collection) or ".." in collection:
        raise ConfigError(
            f"{where}.store.collection: '{collection}' is not a valid Chroma collection name.",
            hint="Use 3-512 letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
        )
