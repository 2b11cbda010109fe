"""Whether the llama.cpp engine can run on this machine, without importing it.

The engine is ``llama-cpp-python`` (the Python bindings with llama.cpp compiled in). PyPI only has
its source, so ``make setup`` builds it once through :mod:`llmops_cli.engines.install` with flags
that run on any x86-64 CPU from 2013 on (AVX2, FMA, F16C; no AVX-512, no AMX, no ``-march=native``).
A CPU without those instructions would crash with SIGILL inside the library, so it is checked here
first and such a machine keeps the transformers engine, with a message saying why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.errors import MissingDependencyError, UnavailableError

ENGINE = "llama-cpp"
PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"  # the llama-cpp-python release make setup builds (its vendored llama.cpp converts too)
INSTALL_COMMAND = "python -m llmops_cli.engines.install"  # or `make setup` in a clone of llmops
X86_FEATURES = ("avx2", "fma", "f16c")  # what the portable build was compiled for


@dataclass(frozen=True)
class EngineStatus:
    available: bool
    reason: str  # why not, in words ("" when available)
    hint: str  # what to do about it


def status() -> EngineStatus:
    """Can llama.cpp run here? Checks the package (by file, not by import) and the CPU's instructions."""
    if importlib.util.find_spec("llama_cpp") is None:
        return EngineStatus(
            False,
            f"the llama.cpp engine ('{PACKAGE}') is not installed",
            f"Install it with: {INSTALL_COMMAND} (builds it once, about 10 minutes on 2 cores; "
            "`make setup` does it in a clone of llmops).",
        )
    missing = missing_cpu_features()
    if missing:
        return EngineStatus(
            False,
            f"this CPU lacks {', '.join(missing)}, which the portable llama.cpp build needs",
            "Use runtime: transformers for this model on this machine.",
        )
    return EngineStatus(True, "", "")


def available() -> bool:
    return status().available


def require(purpose: str) -> None:
    """Raise a clear error (exit 3 or 7) unless llama.cpp can run here."""
    state = status()
    if state.available:
        return
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependencyError(PACKAGE, extra="llama-cpp", purpose=purpose, install=INSTALL_COMMAND)
    raise UnavailableError(f"{purpose}: {state.reason}.", hint=state.hint)


def missing_cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """x86-64 instructions the build needs that this CPU lacks ([] elsewhere or when unknown)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return [f for f in X86_FEATURES if f not in flags]
    return []


def tools_dir() -> Path:
    """Where llama.cpp's converter scripts were put by the installer (``LLMOPS_LLAMA_CPP_TOOLS`` overrides)."""
    import os
    import sys

    env = os.environ.get("LLMOPS_LLAMA_CPP_TOOLS")
    return Path(env) if env else Path(sys.prefix) / "share" / "llmops" / "llama.cpp"


def converter(script: str = "convert_hf_to_gguf.py") -> Path:
    """The path of one of llama.cpp's converter scripts; says how to install them when missing."""
    path = tools_dir() / script
    if not path.is_file():
        raise MissingDependencyError(
            f"{PACKAGE} converter tools",
            extra="llama-cpp",
            purpose=f"GGUF export (llama.cpp's {script})",
            install=INSTALL_COMMAND,
        )
    return path


@contextlib.contextmanager
def native_stderr(log: list[str] | None = None) -> Iterator[None]:
    """Hide what llama.cpp's C code prints on file descriptor 2 (load logs, quantizer tables).

    The text is kept in ``log`` (its last lines are worth showing when the call fails). Shown as
    it comes with ``LLMOPS_DEBUG=1``.
    """
    if os.environ.get("LLMOPS_DEBUG"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if log is not None:
                sink.seek(0)
                log.extend(sink.read().decode("utf-8", errors="replace").splitlines())
