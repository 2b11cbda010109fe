"""``llmops quantize NAME``: bitsandbytes 4/8-bit of a model (or of a model with its adapter merged).

The run, in order, all inside a private build folder under ``.llmops/tmp`` that is removed at the end:

1. the source: the base model's HF folder, or base + adapter merged in full precision (``merge:
   true``; a QLoRA adapter is merged into the dequantized base, the usual way to ship one);
2. load it through transformers with a ``BitsAndBytesConfig`` (quantization happens while loading)
   and save it straight away with its tokenizer: a plain HF folder whose config.json carries the
   quantization_config, so ``AutoModelForCausalLM.from_pretrained(folder)`` loads it back.
   Saving before any forward pass matters: on CPUs with AVX512-BF16 bitsandbytes repacks 4-bit
   weights on their first inference call and saves the repacked scales rounded to bfloat16;
3. ``merge: false`` with an adapter: the adapter is copied into ``adapter/`` beside the quantized
   base (QLoRA-style serving); providers apply it on load, plain transformers loads the base alone;
4. the report: sizes, memory footprint against the same model in bfloat16, load time and greedy
   generation latency of the saved build, and of the unquantized model unless ``baseline=False``;
5. the quality check (``check_with``), run while the model's name points at the build;
6. register ``quantized/NAME/vN`` with lineage, params and the report as metrics.

A failed quality gate still registers the version (its report is the evidence, and a later run or a
looser limit can use it) and :meth:`QuantizeResult.raise_for_gate` then raises
:class:`~llmops_cli.errors.QualityGateFailed` (exit code 5) so CI stops there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.quantized import QuantizedSpec
from llmops_cli.errors import UsageError, require
from llmops_cli.filenames import ADAPTER_CONFIG
from llmops_cli.models.identity import staged
from llmops_cli.providers.quantized import (
    ADAPTER_DIR,
    device_map,
    quiet_bitsandbytes,
    require_quantization_stack,
)
from llmops_cli.quantize.measure import (
    folder_size,
    measure_quantized,
    measure_unquantized,
    reference_footprint,
    weights_size,
)
from llmops_cli.quantize.progress import Progress, silent
from llmops_cli.quantize.quality import run_quality_check
from llmops_cli.quantize.result import QuantizeResult, summary
from llmops_cli.quantize.spec import parse_quantize_spec

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.tune.modeling import BaseModel
    from llmops_cli.versioning import Input

NEW_TOKENS = 32  # per timed generation: long enough that per-token cost dominates the prompt's
REPEATS = 3
STALE_BUILD_S = 24 * 3600


def quantize(
    config: ProjectConfig,
    name: str,
    *,
    check: bool = True,
    baseline: bool = True,
    device: str = "auto",
    new_tokens: int = NEW_TOKENS,
    repeats: int = REPEATS,
    progress: Progress | None = None,
) -> QuantizeResult:
    """Build, measure, check and register the ``quantized:`` entry ``name``.

    ``check=False`` skips the ``check_with`` eval; ``baseline=False`` skips loading and timing the
    unquantized model (its bfloat16 footprint is still computed, without loading weights).
    Returns the result even when the quality gate failed: call :meth:`QuantizeResult.raise_for_gate`.
    """
    from llmops_cli.versioning import ArtifactRegistry

    spec = parse_quantize_spec(config, name)
    if spec.method == "gguf":
        from llmops_cli.quantize.gguf_build import quantize_gguf_entry

        return quantize_gguf_entry(
            config, spec, check=check, baseline=baseline, new_tokens=new_tokens, repeats=repeats, progress=progress
        )
    require_quantization_stack(f"Quantizing '{name}'")
    if spec.adapter is not None:
        require("peft", extra="tune", purpose=f"Quantizing '{name}' with adapter '{spec.adapter}'")
    if new_tokens < 1 or repeats < 1:
        raise UsageError("new_tokens and repeats must be at least 1.")
    say = progress or silent
    quiet_bitsandbytes()
    device = resolve_device(device)
    compute_dtype = resolve_compute_dtype(spec, device)
    registry = ArtifactRegistry.for_config(config)
    registry.ensure_state_dir()
    _sweep_stale_builds(registry.state / "tmp")
    build = registry.state / "tmp" / f"quantize-{name}-{uuid.uuid4().hex[:8]}"
    build.mkdir(parents=True)
    try:
        base, inputs, source, source_label = _source(config, spec, build, say)
        out = build / "model"
        say(f"quantizing {source_label} to {_describe(spec)} on {device}")
        started = time.perf_counter()
        _quantize_to(source, out, spec, compute_dtype, device, base)
        quantize_s = time.perf_counter() - started
        if spec.ships_adapter:
            _copy_adapter(config, spec, out / ADAPTER_DIR)
        say(f"measuring {name}")
        measured = measure_quantized(out, base, device, new_tokens, repeats)
        reference = reference_footprint(source, "bfloat16", trust_remote_code=base.trust_remote_code)
        before = None
        if baseline:
            say(f"measuring the unquantized {source_label}")
            before = measure_unquantized(config, spec, source, base, device, new_tokens, repeats)
        quality = None
        if check and spec.check_with:
            with staged(config, name, out):
                try:
                    quality = run_quality_check(config, spec, progress=say)
                finally:
                    _release_providers()
        result = QuantizeResult(
            name=name,
            version="",
            folder=registry.folder("quantized", name),
            params=spec.params(compute_dtype),
            source=source_label,
            device=device,
            quantize_s=quantize_s,
            size_bytes=folder_size(out),
            weights_bytes=weights_size(out),
            source_weights_bytes=weights_size(source),
            reference_footprint_bytes=reference,
            quantized=measured,
            baseline=before,
            quality=quality,
        )
        say(f"registering quantized/{name}")
        register_build(config, registry, out, inputs, result)
        return result
    finally:
        shutil.rmtree(build, ignore_errors=True)


def register_build(
    config: ProjectConfig, registry: Any, out: Path, inputs: list[Input], result: QuantizeResult
) -> None:
    """Register the build folder ``out`` as ``quantized/NAME/vN`` with the report; sets ``result.version``."""
    version = registry.register(
        "quantized",
        result.name,
        {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*")) if p.is_file()},
        inputs=inputs,
        config_hash=config.section_hash("quantized", result.name),
        metrics=result.metrics(),
        params=result.params,
        summary=summary(result),
    )
    result.version = version.tag


def resolve_device(device: str) -> str:
    """``auto``: the first CUDA GPU when torch sees one (bitsandbytes' CUDA kernels), else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    device_map(device)  # validates it
    return device


def resolve_compute_dtype(spec: QuantizedSpec, device: str) -> str:
    """The entry's compute_dtype, else bfloat16 (float16 on a GPU without bfloat16).

    The non-quantized tensors (embeddings, norms, an untied head) are stored in this dtype too: in
    float32 they would take more memory than the quantized layers. bitsandbytes' fused CPU 4-bit
    kernel computes in bfloat16.
    """
    if spec.compute_dtype:
        return spec.compute_dtype
    import torch

    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return "float16"
    return "bfloat16"


# -- steps ----------------------------------------------------------------------------------------------


def _source(
    config: ProjectConfig, spec: QuantizedSpec, build: Path, say: Progress
) -> tuple[BaseModel, list[Input], Path, str]:
    """(base model options, lineage inputs, the folder to quantize, its description)."""
    from llmops_cli.models import materialize_resolved
    from llmops_cli.models.identity import identity
    from llmops_cli.tune.modeling import BaseModel
    from llmops_cli.versioning import Input

    weights = identity(config, spec.model)
    resolved = weights.resolved
    say(f"preparing {spec.model}")
    folder = materialize_resolved(resolved)
    base = BaseModel.from_spec(weights.spec, folder)
    inputs = [Input(base.source, weights.fingerprint())]
    if spec.adapter is None:
        return base, inputs, folder, spec.model
    adapter_ref, adapter_hash = _adapter_lineage(config, spec.adapter)
    inputs.append(Input(adapter_ref, adapter_hash))
    if not spec.merge:
        return base, inputs, folder, spec.model
    from llmops_cli.tune import merge_adapter
    from llmops_cli.tune.modeling import no_progress_bars

    say(f"merging {adapter_ref} into {spec.model}")
    with no_progress_bars():  # the caller draws the progress; transformers' bars would cut through it
        merged = merge_adapter(config, spec.adapter, output=build / "merged", dequantize=True)
    return base, inputs, merged.output, f"{spec.model} + {spec.adapter} (merged)"


def _adapter_lineage(config: ProjectConfig, adapter: str) -> tuple[str, str]:
    """(``adapter/NAME@vN``, content hash) of the checked-out adapter version."""
    from llmops_cli.models.hashing import file_sha256, text_sha256
    from llmops_cli.versioning import ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    folder = registry.folder("adapter", adapter)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise UsageError(
            f"Adapter '{adapter}' has no trained version in {folder}.",
            hint=f"Train it with 'llmops tune {adapter}', or restore one with 'llmops checkout adapter/{adapter}@vN'.",
        )
    try:
        manifest = registry.checked_out_manifest("adapter", adapter)
        entries = sorted(f"{f['path']}\t{f['sha256']}" for f in manifest["files"])
        return f"adapter/{adapter}@v{manifest['version']}", text_sha256("adapter", *entries)
    except (OSError, ValueError, KeyError, TypeError):
        files = sorted(p for p in folder.glob("adapter_*") if p.is_file() and p.suffix != ".ptr")
        return f"adapter/{adapter}", text_sha256("adapter", *(f"{p.name}\t{file_sha256(p)}" for p in files))


def _quantize_to(
    source: Path, out: Path, spec: QuantizedSpec, compute_dtype: str, device: str, base: BaseModel
) -> None:
    """Quantize while loading, then save model and tokenizer before anything runs a forward pass."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmops_cli.models.bnb import bnb_config
    from llmops_cli.tune.modeling import load_tokenizer, no_progress_bars

    with no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(
            str(source),
            dtype=getattr(torch, compute_dtype),
            quantization_config=bnb_config(spec.quant, compute_dtype),  # bfloat16 by default, see above
            device_map=device_map(device),
            local_files_only=True,
            trust_remote_code=base.trust_remote_code,
        )
        model.save_pretrained(str(out))
    # The tokenizer as the project uses it (chat_template / max_context overrides baked in), so the
    # folder works on its own, in a package or with plain transformers.
    load_tokenizer(dataclasses.replace(base, folder=source)).save_pretrained(str(out))
    del model
    _free()


def _copy_adapter(config: ProjectConfig, spec: QuantizedSpec, dest: Path) -> None:
    from llmops_cli.providers.adapters import check_adapter_folder
    from llmops_cli.versioning import ArtifactRegistry

    assert spec.adapter is not None
    folder = ArtifactRegistry.for_config(config).folder("adapter", spec.adapter)
    check_adapter_folder(folder)
    dest.mkdir(parents=True)
    for path in folder.iterdir():
        if path.is_file() and path.name.startswith("adapter_") and path.suffix != ".ptr":
            shutil.copyfile(path, dest / path.name)


def _sweep_stale_builds(tmp: Path) -> None:
    """Remove build folders a killed run left behind (they hold a model or two); a day old is not running."""
    if not tmp.is_dir():
        return
    cutoff = time.time() - STALE_BUILD_S
    for folder in tmp.glob("quantize-*"):
        with contextlib.suppress(OSError):
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def _release_providers() -> None:
    """The check's providers hold both models (one over the build folder, about to be moved): drop them."""
    from llmops_cli.providers.factory import clear_provider_cache

    clear_provider_cache()
    _free()


def _free() -> None:
    from llmops_cli.quantize.measure import free_memory

    free_memory()


def _describe(spec: QuantizedSpec) -> str:
    if spec.bits == 8:
        return "8-bit (LLM.int8)"
    return f"4-bit {spec.quant_type}{' + double quant' if spec.double_quant else ''}"
