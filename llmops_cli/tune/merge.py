"""``llmops tune merge``: fold a trained LoRA adapter into its base weights (a plain HF folder).

The merged weights are ``W + (alpha / r) * B @ A`` in full precision. An adapter trained with QLoRA
learned its update against the 4-bit (or 8-bit) rounding of the base; merging it into quantized
weights would re-round the sum and lose most of the update, so that is refused. With ``dequantize``
the base is loaded in full precision and merged there (the usual way to ship a QLoRA adapter); the
result then differs slightly from what was trained, by the base's quantization error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError, require
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.paths import STATE_DIR
from llmops_cli.tune.modeling import quiet_libraries
from llmops_cli.tune.spec import parse_tune_config

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig

MARKER = ".llmops-merged.json"  # marks a folder this command wrote (and may overwrite)


@dataclass
class MergeResult:
    adapter: str
    output: Path
    base: str
    method: str
    dequantized: bool
    dtype: str
    version: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output": str(self.output)}


def default_output(config: ProjectConfig, name: str) -> Path:
    return config.root / STATE_DIR / "merged" / name


def _trained_method(adapter_dir: Path, fallback: str) -> str:
    """The method the checked-out version was trained with (its train_config.json), else the yaml's."""
    try:
        return str(json.loads((adapter_dir / "train_config.json").read_text(encoding="utf-8"))["method"])
    except (OSError, ValueError, KeyError):
        return fallback


def merge_adapter(
    config: ProjectConfig, name: str, *, output: Path | None = None, dequantize: bool = False
) -> MergeResult:
    """Write base + adapter ``name`` (its checked-out version) as one safetensors HF folder."""
    for module in ("torch", "transformers", "peft"):
        require(module, extra="tune", purpose="Merging an adapter")
    from llmops_cli.providers.adapters import check_adapter_folder
    from llmops_cli.tune.pipeline import base_model
    from llmops_cli.versioning import ArtifactRegistry

    started = time.perf_counter()
    quiet_libraries()
    tune = parse_tune_config(config, name)
    registry = ArtifactRegistry.for_config(config)
    adapter_dir = registry.folder("adapter", name)
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        raise UsageError(
            f"Adapter '{name}' has no trained version in {adapter_dir}.",
            hint=f"Train it with 'llmops tune {name}', or restore one with 'llmops checkout adapter/{name}@vN'.",
        )
    check_adapter_folder(adapter_dir)
    method = _trained_method(adapter_dir, tune.method)
    if method == "qlora" and not dequantize:
        raise UsageError(
            f"Adapter '{name}' was trained with QLoRA on a quantized base; merging into quantized weights would "
            "round most of the LoRA update away.",
            hint=f"Merge into the full-precision base instead: llmops tune merge {name} --dequantize",
        )
    target = (output or default_output(config, name)).resolve()
    _check_target(target)
    base, _fingerprint = base_model(config, tune)
    dtype = _merge(base, adapter_dir, target)
    version = _current_version(adapter_dir)
    return MergeResult(
        name, target, base.name, method, method == "qlora", dtype, version, time.perf_counter() - started
    )


def _check_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise UsageError(
            f"{target} exists and was not written by 'llmops tune merge'; not overwriting it.",
            hint="Choose an empty or new folder with --output.",
        )


def _current_version(adapter_dir: Path) -> str | None:
    from llmops_cli.versioning.artifacts import MANIFEST

    try:
        manifest = json.loads((adapter_dir / MANIFEST).read_text(encoding="utf-8"))
        return f"{manifest['artifact']}/v{manifest['version']}"
    except (OSError, ValueError, KeyError):
        return None


def _merge(base: Any, adapter_dir: Path, target: Path) -> str:
    """Load in full precision, merge, save to a temp folder beside ``target`` and swap it in."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmops_cli.tune.modeling import load_tokenizer, no_progress_bars, weights_dtype

    dtype = weights_dtype(base, "cpu")
    with no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(
            str(base.folder), dtype=dtype, local_files_only=True, trust_remote_code=base.trust_remote_code
        )
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(base)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        with torch.no_grad():
            merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(json.dumps({"adapter": str(adapter_dir), "base": base.source}, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(dtype).removeprefix("torch.")
