"""Which engine runs a local model: transformers, or llama.cpp from a GGUF.

A ``models:`` entry says ``runtime: auto | transformers | llama-cpp`` (default ``auto``); a
``quantized:`` entry built with ``method: gguf`` always runs on llama.cpp.

``auto`` picks llama.cpp when all of these hold, else transformers:

* the model is on the CPU (llama.cpp is built for CPUs here; GPUs keep transformers);
* its weights are a GGUF already (the embedded SmolLM2, a ``.gguf`` source): ``auto`` never
  converts a model behind your back; a ``quantized:`` entry with ``method: gguf`` does that;
* the engine is installed and this CPU has the instructions it was built for;
* a LoRA adapter, if any, can be converted to GGUF (llama.cpp's converter is installed).

When ``auto`` falls back because the engine is missing, it says so once per process on the
``llmops`` logger, with the command that installs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmops_cli.engines import llama_cpp as engine
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec

RUNTIMES = ("auto", "transformers", "llama-cpp")
TRANSFORMERS = "transformers"
LLAMA_CPP = engine.ENGINE

log = logging.getLogger("llmops")
_told: set[str] = set()


@dataclass(frozen=True)
class RuntimeChoice:
    engine: str  # "transformers" | "llama-cpp"
    gguf: Path | None  # the weights llama.cpp loads
    reason: str  # why this engine, in words (models list, logs)


def choose_runtime(
    spec: ModelSpec, project_root: Path, *, adapter: Path | None = None, device: str = "cpu"
) -> RuntimeChoice:
    """The engine for ``spec`` (with ``adapter``) on ``device``; raises when an explicit choice cannot run."""
    asked = spec.runtime or "auto"
    if asked not in RUNTIMES:
        raise UsageError(f"Model '{spec.name}': runtime '{asked}' is not one of {', '.join(RUNTIMES)}.")
    gguf = gguf_file(spec, project_root)
    if spec.gguf_build:  # a quantized: entry built with method: gguf
        asked = LLAMA_CPP
    if asked == TRANSFORMERS:
        return RuntimeChoice(TRANSFORMERS, None, "runtime: transformers")
    on_cpu = device in ("cpu", "auto")
    if asked == LLAMA_CPP:
        if not on_cpu:
            raise UsageError(
                f"Model '{spec.name}' runs on llama.cpp, which llmops builds for CPUs; device '{device}' was asked.",
                hint="Use runtime: transformers for GPU serving (or vLLM in a deployment).",
            )
        engine.require(f"Model '{spec.name}' (runtime: llama-cpp)")
        if gguf is None:
            raise UsageError(
                f"Model '{spec.name}' has runtime: llama-cpp but its weights are not a GGUF file.",
                hint="Use a .gguf source, or declare a quantized: entry with method: gguf for it and use that name.",
            )
        if adapter is not None:
            engine.converter("convert_lora_to_gguf.py")  # raises with the install command
        return RuntimeChoice(LLAMA_CPP, gguf, "runtime: llama-cpp")
    # auto
    if not on_cpu:
        return RuntimeChoice(TRANSFORMERS, None, f"auto: device {device}")
    if gguf is None:
        return RuntimeChoice(TRANSFORMERS, None, "auto: weights are not a GGUF")
    state = engine.status()
    if not state.available:
        _tell_once(
            "engine",
            f"Model '{spec.name}' runs on transformers because {state.reason}; llama.cpp generates several "
            f"times faster on CPU. {state.hint}",
        )
        return RuntimeChoice(TRANSFORMERS, None, f"auto: {state.reason}")
    if adapter is not None and not (engine.tools_dir() / "convert_lora_to_gguf.py").is_file():
        return RuntimeChoice(TRANSFORMERS, None, "auto: llama.cpp's LoRA converter is not installed")
    return RuntimeChoice(LLAMA_CPP, gguf, "auto: GGUF weights and the llama.cpp engine")


def gguf_file(spec: ModelSpec, project_root: Path) -> Path | None:
    """The GGUF behind ``spec`` when there is one on disk (embedded model, .gguf source, GGUF build)."""
    built = spec.gguf_build
    if built:
        path = Path(str(built))
        return path if path.is_file() else None
    if spec.is_remote or not spec.source:
        return None
    from llmops_cli.models.resolver import resolve

    try:
        resolved = resolve(spec, project_root)
    except Exception:  # an unresolvable source: the transformers path reports it properly
        return None
    if resolved.gguf_file is not None and resolved.gguf_file.is_file():
        return resolved.gguf_file
    return None


def _tell_once(key: str, message: str) -> None:
    if key not in _told:
        _told.add(key)
        log.warning(message)
