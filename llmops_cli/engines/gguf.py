"""GGUF export and quantization with llama.cpp's own tools.

* :func:`export_gguf`: a Hugging Face folder (base model, or base with an adapter merged in) to a
  GGUF of the requested type. llama.cpp's ``convert_hf_to_gguf.py`` writes the tensors, the
  tokenizer and the chat template into the GGUF (16-bit, or straight to q8_0 / f32), then
  ``llama_model_quantize`` (llama.cpp's quantizer, through llama-cpp-python) makes the k-quants
  and the other block types from it. Nothing here re-implements either.
* :func:`lora_to_gguf`: a PEFT LoRA adapter to a GGUF LoRA (``convert_lora_to_gguf.py``), cached
  by the adapter's content, so llama.cpp can apply an adapter trained by ``llmops tune``.

The converters run in a subprocess of this Python (they import torch and their own ``conversion``
package), with their output captured and shown only when they fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from llmops_cli.engines import llama_cpp as engine
from llmops_cli.errors import LlmopsError, UsageError
from llmops_cli.filenames import ADAPTER_CONFIG, ADAPTER_WEIGHTS_PREFIX, MODEL_CONFIG, TOKENIZER_CONFIG

# type name in llmops.yaml -> llama.cpp's LLAMA_FTYPE_* constant (None: written by the converter directly)
GGUF_TYPES: dict[str, str | None] = {
    "f32": None,
    "f16": None,
    "bf16": None,
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}
# The architectures llmops exports (llama.cpp's converter knows many more; these are the ones tested:
# SmolLM2, TinyLlama and Llama 2/3 are all LlamaForCausalLM).
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
GGUF_NAME = "model.gguf"


class ConversionError(LlmopsError):
    """llama.cpp's converter or quantizer failed on this model."""

    exit_code = 2


def check_exportable(folder: Path, name: str) -> str:
    """The model's architecture, or a clear error when llmops does not export it to GGUF."""
    try:
        config = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"Cannot read {folder / 'config.json'} to export '{name}' to GGUF: {error}") from error
    architectures = config.get("architectures") or [] if isinstance(config, dict) else []
    found = next((a for a in architectures if a in SUPPORTED_ARCHITECTURES), None)
    if found is None:
        shown = ", ".join(map(str, architectures)) or "unknown"
        raise UsageError(
            f"GGUF export of '{name}' supports the Llama family ({', '.join(SUPPORTED_ARCHITECTURES)}); "
            f"this model is {shown}.",
            hint="Use method: bitsandbytes for this model, or a Llama-family model (SmolLM2, TinyLlama, Llama 3).",
        )
    return found


def export_gguf(
    folder: Path, out: Path, gguf_type: str, *, name: str, chat_template: str | None = None, workdir: Path
) -> None:
    """Write ``folder`` (an HF causal-LM folder) as a ``gguf_type`` GGUF at ``out``."""
    if gguf_type not in GGUF_TYPES:
        raise UsageError(f"GGUF type '{gguf_type}' is not one of {', '.join(GGUF_TYPES)}.")
    check_exportable(folder, name)
    engine.require(f"GGUF export of '{name}'")
    script = engine.converter("convert_hf_to_gguf.py")
    workdir.mkdir(parents=True, exist_ok=True)
    source = _with_template(folder, chat_template, workdir / "source") if chat_template else folder
    direct = GGUF_TYPES[gguf_type] is None or gguf_type == "q8_0"
    converted = out if direct else workdir / "converted-f16.gguf"
    outtype = gguf_type if direct else "f16"
    _run_converter(
        [str(script), str(source), "--outfile", str(converted), "--outtype", outtype, "--model-name", name], name
    )
    if not direct:
        quantize_gguf(converted, out, gguf_type)
        converted.unlink(missing_ok=True)


def quantize_gguf(source: Path, out: Path, gguf_type: str, *, threads: int | None = None) -> None:
    """llama.cpp's quantizer (``llama_model_quantize``) from ``source`` to ``gguf_type``."""
    import llama_cpp

    from llmops_cli.engines.cpus import usable_cpus

    ftype = GGUF_TYPES.get(gguf_type)
    if ftype is None:
        raise UsageError(f"'{gguf_type}' is not a quantized GGUF type.")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.nthread = threads or usable_cpus()
    log: list[str] = []
    with engine.native_stderr(log):
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if code != 0 or not out.is_file():
        tail = "\n".join(log[-8:])
        raise ConversionError(f"llama.cpp's quantizer failed ({code}) making {gguf_type} from {source.name}:\n{tail}")


def lora_to_gguf(adapter: Path, base_folder: Path) -> Path:
    """The adapter as a GGUF LoRA (converted once, cached by the adapter's files and the base config)."""
    script = engine.converter("convert_lora_to_gguf.py")
    digest = hashlib.sha256()
    for path in sorted(adapter.iterdir()):
        if path.is_file() and (path.name == ADAPTER_CONFIG or path.name.startswith(ADAPTER_WEIGHTS_PREFIX)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update((base_folder / MODEL_CONFIG).read_bytes())
    from llmops_cli.paths import llmops_home

    cached = llmops_home() / "gguf-lora" / f"{digest.hexdigest()[:24]}.gguf"
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.stem}.{uuid.uuid4().hex[:8]}.partial")
    try:
        _run_converter(
            [str(script), str(adapter), "--base", str(base_folder), "--outfile", str(partial), "--outtype", "f16"],
            adapter.name,
        )
        partial.replace(cached)
    finally:
        partial.unlink(missing_ok=True)
    return cached


def _with_template(folder: Path, template: str, staging: Path) -> Path:
    """A view of ``folder`` (links to its files) whose tokenizer_config.json carries ``template``."""
    staging.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.is_file() and path.name != TOKENIZER_CONFIG:
            with contextlib.suppress(FileExistsError):
                os.symlink(path.resolve(), staging / path.name)
    config_path = folder / TOKENIZER_CONFIG
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    config["chat_template"] = template
    (staging / TOKENIZER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    (staging / "chat_template.jinja").unlink(missing_ok=True)
    return staging


def _run_converter(args: list[str], name: str) -> None:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # the converter reads the local folder; never the hub
    tools = engine.tools_dir()
    # The converters' own gguf-py first: they use features newer than the PyPI gguf release.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tools), str(tools / "gguf-py"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=str(engine.tools_dir()))
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise ConversionError(
            f"llama.cpp's converter failed on '{name}' (exit {proc.returncode}):\n{tail}",
            hint="Is this a Llama-family model with its tokenizer files in the folder?",
        )
