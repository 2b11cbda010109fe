"""``llmops quantize NAME`` for ``method: gguf``: a GGUF for llama.cpp, made with llama.cpp's tools.

The same run as the bitsandbytes path (see :mod:`llmops_cli.quantize.pipeline`), with the GGUF steps:

1. the source: the base model's HF folder, or base + adapter merged in full precision;
2. llama.cpp's converter writes it as GGUF (tensors, tokenizer, chat template), and llama.cpp's
   quantizer brings it to the entry's ``type`` (q8_0, q4_k_m, ...): :mod:`llmops_cli.engines.gguf`;
3. the report: file size, load time and greedy generation speed on llama.cpp, against the
   unquantized model on transformers (unless ``baseline=False``);
4. the ``check_with`` quality gate, with the quantized name pointing at the new GGUF;
5. register ``quantized/NAME/vN`` (``model.gguf`` goes to the content store, a pointer in git).
"""

from __future__ import annotations

import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.engines import llama_cpp as engine
from llmops_cli.engines.gguf import GGUF_NAME, check_exportable, export_gguf
from llmops_cli.errors import UsageError
from llmops_cli.models.identity import staged
from llmops_cli.quantize.measure import (
    FIXED_PROMPT,
    Measurement,
    folder_size,
    measure_unquantized,
    reference_footprint,
    weights_size,
)
from llmops_cli.quantize.progress import Progress, silent
from llmops_cli.quantize.quality import run_quality_check
from llmops_cli.quantize.result import QuantizeResult

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec


def quantize_gguf_entry(
    config: ProjectConfig,
    spec: QuantizedSpec,
    *,
    check: bool,
    baseline: bool,
    new_tokens: int,
    repeats: int,
    progress: Progress | None,
) -> QuantizeResult:
    from llmops_cli.quantize import pipeline
    from llmops_cli.versioning import ArtifactRegistry

    say = progress or silent
    engine.require(f"Quantizing '{spec.name}' to GGUF")
    if new_tokens < 1 or repeats < 1:
        raise UsageError("new_tokens and repeats must be at least 1.")
    registry = ArtifactRegistry.for_config(config)
    registry.ensure_state_dir()
    pipeline._sweep_stale_builds(registry.state / "tmp")
    build = registry.state / "tmp" / f"quantize-{spec.name}-{uuid.uuid4().hex[:8]}"
    build.mkdir(parents=True)
    try:
        base, inputs, source, source_label = pipeline._source(config, spec, build, say)
        check_exportable(source, spec.name)
        out = build / "model"
        out.mkdir()
        say(f"converting {source_label} to GGUF {spec.gguf_type} with llama.cpp")
        started = time.perf_counter()
        template = config.models[spec.model].chat_template
        export_gguf(source, out / GGUF_NAME, spec.gguf_type, name=spec.name, chat_template=template, workdir=build)
        quantize_s = time.perf_counter() - started
        say(f"measuring {spec.name} on llama.cpp")
        measured = measure_gguf(config, spec, out / GGUF_NAME, new_tokens=new_tokens, repeats=repeats)
        reference = reference_footprint(source, "bfloat16", trust_remote_code=base.trust_remote_code)
        before = None
        if baseline:
            say(f"measuring the unquantized {source_label} on transformers")
            before = measure_unquantized(config, spec, source, base, "cpu", new_tokens, repeats)
        quality = None
        if check and spec.check_with:
            with staged(config, spec.name, out):
                try:
                    quality = run_quality_check(config, spec, progress=say)
                finally:
                    pipeline._release_providers()
        result = QuantizeResult(
            name=spec.name,
            version="",
            folder=registry.folder("quantized", spec.name),
            params=spec.params("n/a"),
            source=source_label,
            device="cpu",
            quantize_s=quantize_s,
            size_bytes=folder_size(out),
            weights_bytes=(out / GGUF_NAME).stat().st_size,
            source_weights_bytes=weights_size(source),
            reference_footprint_bytes=reference,
            quantized=measured,
            baseline=before,
            quality=quality,
        )
        say(f"registering quantized/{spec.name}")
        pipeline.register_build(config, registry, out, inputs, result)
        return result
    finally:
        shutil.rmtree(build, ignore_errors=True)


def measure_gguf(
    config: ProjectConfig, spec: QuantizedSpec, gguf: Path, *, new_tokens: int, repeats: int
) -> Measurement:
    """Load time, footprint (the mapped file) and greedy generation speed of ``gguf`` on llama.cpp."""
    from llmops_cli.config.project import ModelSpec
    from llmops_cli.engines.cpus import usable_cpus
    from llmops_cli.generation import GenerationParams, GenerationRequest
    from llmops_cli.providers.llama_cpp import LlamaCppProvider

    base = config.models[spec.model]
    measured = ModelSpec(
        name=spec.name, source=str(gguf), chat_template=base.chat_template or None, max_context=base.max_context or None
    )
    provider = LlamaCppProvider(measured, gguf, parallel=1, threads=usable_cpus())
    started = time.perf_counter()
    provider.load()
    load_s = time.perf_counter() - started
    request = GenerationRequest(
        messages=({"role": "user", "content": FIXED_PROMPT},), params=GenerationParams(max_new_tokens=new_tokens)
    )
    provider.generate([request])  # warm-up
    timings, sample, tokens = [], "", new_tokens
    for _ in range(repeats):
        provider.forget_cache()  # time the whole prompt, as a fresh request would see it
        (result,) = provider.generate([request])
        timings.append(result.latency_ms)
        sample, tokens = result.text, max(1, result.completion_tokens)
    return Measurement(
        label="quantized",
        dtype=f"gguf {spec.gguf_type}",
        load_s=load_s,
        footprint_bytes=gguf.stat().st_size,
        latency_ms=statistics.median(timings),
        new_tokens=tokens,
        sample=sample,
    )
