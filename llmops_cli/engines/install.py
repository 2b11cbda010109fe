"""Build and install the llama.cpp engine: ``python -m llmops_cli.engines.install [--force]``.

PyPI has only the source of ``llama-cpp-python``, and compiling it takes minutes, so this builds a
wheel once with portable flags and keeps it in ``$LLMOPS_HOME/engines/`` (default
``~/.cache/llmops/engines``): later setups, CI runs on the same machine and new virtualenvs
install the cached wheel in seconds. The same source release carries llama.cpp's converters
(``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``, their ``conversion`` package and the
``gguf-py`` they were written against), which
``llmops quantize`` (``method: gguf``) runs; they are copied to ``<venv>/share/llmops/llama.cpp``.

Build flags (x86-64): ``GGML_NATIVE=OFF`` with AVX, AVX2, FMA and F16C on, AVX-512 and AMX off.
``-march=native`` would tie the wheel to the build machine (and crashed with a general-protection
fault on an AMX instruction inside a VM here); these instructions exist on every x86-64 CPU since
2013, and :func:`llmops_cli.engines.llama_cpp.missing_cpu_features` checks them before loading.
The multimodal (llava/mtmd) library is not built: llmops does not use it, and it is a third of the
compile time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from llmops_cli.engines.llama_cpp import PACKAGE, VERSION, tools_dir
from llmops_cli.paths import llmops_home

# gguf-py: the converters need the gguf package of their own commit (newer than the PyPI release).
_TOOLS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py")


def cmake_args() -> str:
    args = ["-DLLAVA_BUILD=OFF"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        args += [
            "-DGGML_NATIVE=OFF",
            "-DGGML_AVX=ON",
            "-DGGML_AVX2=ON",
            "-DGGML_FMA=ON",
            "-DGGML_F16C=ON",
            "-DGGML_AVX512=OFF",
            "-DGGML_AMX_TILE=OFF",
            "-DGGML_AMX_INT8=OFF",
            "-DGGML_AMX_BF16=OFF",
        ]
    else:
        args += ["-DGGML_NATIVE=OFF"]
    return " ".join(args)


def cache_dir() -> Path:
    """One folder per (version, flags, Python ABI, machine): a wheel never lands where it cannot run."""
    flags = hashlib.sha256(cmake_args().encode()).hexdigest()[:10]
    abi = f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine().lower()}"
    return llmops_home() / "engines" / f"{PACKAGE}-{VERSION}-{abi}-{flags}"


def install(*, force: bool = False, jobs: int | None = None) -> Path:
    """Build (unless cached) and install the wheel, and put the converters in place; returns the wheel."""
    cache = cache_dir()
    wheels = sorted(cache.glob("llama_cpp_python-*.whl"))
    tools_cached = all((cache / "tools" / name).exists() for name in _TOOLS)
    if force or not wheels or not tools_cached:
        with tempfile.TemporaryDirectory(prefix="llmops-llama-cpp-") as tmp:
            sdist = _download_sdist(Path(tmp))
            _extract_tools(sdist, cache / "tools")
            if force or not wheels:
                wheels = [_build_wheel(sdist, Path(tmp), cache, jobs)]
    wheel = wheels[-1]
    _say(f"installing {wheel.name}")
    # sentencepiece: llama.cpp's converter reads Llama 2 / TinyLlama tokenizers with it.
    _pip("install", "--no-warn-script-location", str(wheel), "sentencepiece>=0.2")
    dest = tools_dir()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(cache / "tools", dest)
    _say(f"llama.cpp engine ready; converters in {dest}")
    return wheel


def _download_sdist(folder: Path) -> Path:
    _say(f"downloading {PACKAGE}=={VERSION} (source)")
    _pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(folder), f"{PACKAGE}=={VERSION}")
    found = sorted(folder.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise SystemExit(f"pip download gave no source archive of {PACKAGE} in {folder}")
    return found[0]


def _extract_tools(sdist: Path, dest: Path) -> None:
    """llama.cpp's converter scripts from the source release, into ``dest`` (replaced atomically)."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        prefix = f"{root}/vendor/llama.cpp/"
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith(prefix) and m.name[len(prefix) :].split("/")[0] in _TOOLS and (m.isfile() or m.isdir())
        ]
        for member in members:
            target = staging / member.name[len(prefix) :]
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    missing = [name for name in _TOOLS if not (staging / name).exists()]
    if missing:
        raise SystemExit(f"{sdist.name} has no {', '.join(missing)} under vendor/llama.cpp")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _build_wheel(sdist: Path, tmp: Path, cache: Path, jobs: int | None) -> Path:
    env = dict(os.environ)
    env["CMAKE_ARGS"] = cmake_args()
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs or os.cpu_count() or 2)
    _say(f"building {PACKAGE} {VERSION} (about 10 minutes on 2 cores; once per machine) with {env['CMAKE_ARGS']}")
    started = time.monotonic()
    out = tmp / "wheel"
    _pip("wheel", "--no-deps", "-w", str(out), str(sdist), env=env)
    built = sorted(out.glob("llama_cpp_python-*.whl"))
    if not built:
        raise SystemExit(f"pip wheel built no {PACKAGE} wheel")
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / (built[0].name + ".partial")
    shutil.copyfile(built[0], partial)
    final = cache / built[0].name
    partial.rename(final)
    _say(f"built {final.name} in {time.monotonic() - started:.0f} s, cached in {cache}")
    return final


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, env=env)


def _say(message: str) -> None:
    print(f"[llama.cpp engine] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_cli.engines.install", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when a cached wheel exists")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: CPU count)")
    parser.add_argument("--print-cache", action="store_true", help="print the wheel cache folder and exit")
    args = parser.parse_args(argv)
    if args.print_cache:
        print(cache_dir())
        return 0
    try:
        install(force=args.force, jobs=args.jobs)
    except subprocess.CalledProcessError as error:
        print(
            f"[llama.cpp engine] failed: {' '.join(map(str, error.cmd[:6]))} ... exited {error.returncode}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
