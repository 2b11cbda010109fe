"""What a quantized model costs and how fast it answers: size, memory, load time, generation latency.

Every variant is measured the same way: load it from its folder (timed), read
``model.get_memory_footprint()``, then generate exactly ``new_tokens`` tokens greedily from one fixed
prompt after a short warm-up (the first call also builds caches and, for 4-bit on some CPUs, repacks
the weights) and keep the median of ``repeats`` timed calls.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_cli.config.project import ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec
    from llmops_cli.tune.modeling import BaseModel

FIXED_PROMPT = "What is the capital of France?"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class Measurement:
    """One loaded variant: its memory, load time and the latency of one fixed greedy generation."""

    label: str
    dtype: str
    load_s: float
    footprint_bytes: int
    latency_ms: float
    new_tokens: int
    sample: str  # what it answered to FIXED_PROMPT (a quick sanity check for humans)

    @property
    def ms_per_token(self) -> float:
        return self.latency_ms / self.new_tokens if self.new_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ms_per_token": self.ms_per_token}


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (the artifact as it sits on disk)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def weights_size(folder: Path) -> int:
    """Bytes of the checkpoint files directly in ``folder`` (not tokenizer or config)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def reference_footprint(folder: Path, dtype: str = "bfloat16", *, trust_remote_code: bool = False) -> int:
    """``get_memory_footprint()`` of the model in ``folder`` in ``dtype``, computed without loading weights."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(
            config, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        )
    model.tie_weights()  # tied embeddings count once, as they do in a loaded model
    return int(model.get_memory_footprint())


def prompt_inputs(tokenizer: Any, device: Any) -> Any:
    """The fixed prompt, through the chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": FIXED_PROMPT}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
    return tokenizer(FIXED_PROMPT, return_tensors="pt").to(device)


def time_generation(model: Any, tokenizer: Any, *, new_tokens: int, repeats: int) -> tuple[float, str]:
    """(median milliseconds to generate exactly ``new_tokens`` tokens, the text of the last run)."""
    import torch
    from transformers import GenerationConfig

    inputs = prompt_inputs(tokenizer, model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id

    def config(tokens: int) -> Any:
        # min_new_tokens == max_new_tokens: every variant does the same work, even one that stops early.
        return GenerationConfig(
            max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad, eos_token_id=eos
        )

    timings, output = [], None
    with torch.inference_mode():
        model.generate(**inputs, generation_config=config(min(2, new_tokens)))
        for _ in range(max(1, repeats)):
            _sync(model)
            started = time.perf_counter()
            output = model.generate(**inputs, generation_config=config(new_tokens))
            _sync(model)
            timings.append((time.perf_counter() - started) * 1000)
    assert output is not None
    width = inputs["input_ids"].shape[1]
    text = tokenizer.decode(output[0, width:].tolist(), skip_special_tokens=True)
    return statistics.median(timings), text.strip()


def measure(
    label: str,
    load: Callable[[], Any],
    tokenizer: Any,
    *,
    new_tokens: int,
    repeats: int,
    attach: Callable[[Any], Any] | None = None,
) -> Measurement:
    """Load with ``load()`` (timed) and measure it; ``attach`` adds an adapter after the footprint is read.

    The footprint is the model's own, so a shipped LoRA adapter (a few MB) does not blur the ratio;
    the latency is what a caller sees, adapter included.
    """
    started = time.perf_counter()
    model = load()
    load_s = time.perf_counter() - started
    footprint = int(model.get_memory_footprint())
    dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
    if attach is not None:
        model = attach(model)
    latency_ms, text = time_generation(model, tokenizer, new_tokens=new_tokens, repeats=repeats)
    del model
    free_memory()
    return Measurement(label, dtype, load_s, footprint, latency_ms, new_tokens, text)


def free_memory() -> None:
    """Give back what dropped models held (call after ``del model``), so the next one starts clean."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(model: Any) -> None:
    import torch

    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def measure_quantized(out: Path, base: BaseModel, device: str, new_tokens: int, repeats: int) -> Measurement:
    """The saved build as providers load it (a shipped adapter applied on top)."""
    from transformers import AutoTokenizer

    from llmops_cli.providers.adapters import with_adapter
    from llmops_cli.providers.quantized import load_quantized_folder, shipped_adapter
    from llmops_cli.tune.modeling import no_progress_bars

    tokenizer = AutoTokenizer.from_pretrained(str(out), local_files_only=True, trust_remote_code=base.trust_remote_code)
    adapter = shipped_adapter(out)
    with no_progress_bars():
        return measure(
            "quantized",
            lambda: load_quantized_folder(out, device=device, trust_remote_code=base.trust_remote_code),
            tokenizer,
            new_tokens=new_tokens,
            repeats=repeats,
            attach=None if adapter is None else (lambda model: with_adapter(model, adapter)),
        )


def measure_unquantized(
    config: ProjectConfig,
    spec: QuantizedSpec,
    source: Path,
    base: BaseModel,
    device: str,
    new_tokens: int,
    repeats: int,
) -> Measurement:
    """The model as the project runs it unquantized: the entry's dtype, its adapter unmerged on top."""
    from transformers import AutoModelForCausalLM

    from llmops_cli.providers.adapters import with_adapter
    from llmops_cli.tune.modeling import load_tokenizer, no_progress_bars, weights_dtype
    from llmops_cli.versioning import ArtifactRegistry

    dtype = weights_dtype(base, "cuda" if device.startswith("cuda") else "cpu")

    def load() -> Any:
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=dtype, local_files_only=True, trust_remote_code=base.trust_remote_code
        )
        return model.to(device).eval()

    adapter = None
    if spec.ships_adapter and spec.adapter is not None:
        adapter = ArtifactRegistry.for_config(config).folder("adapter", spec.adapter)
    with no_progress_bars():
        return measure(
            "unquantized",
            load,
            load_tokenizer(base),
            new_tokens=new_tokens,
            repeats=repeats,
            attach=None if adapter is None else (lambda model: with_adapter(model, adapter)),
        )
