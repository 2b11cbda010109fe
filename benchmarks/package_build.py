"""Package build time and size on sample-project, against plain ``tar -czf`` of the same files.

Copies sample-project/ (or, with ``--project DIR``, that project with its history, store and
built artifacts) into a temporary folder, indexes ``kb``, and makes what the ``support-bot``
package ships. A missing ``quantized/base-4bit`` is built by ``llmops quantize`` (without its
quality check) when its merged adapter is trained; otherwise (or with ``--stand-in``) a stand-in is
registered under the same name: the base model quantized to 4-bit NF4 with bitsandbytes *without*
merging the adapter first (same architecture, so the same files and sizes). A second variant
packages the chain as written (base model GGUF + the ``support-lora`` adapter; when that adapter is
not trained, a freshly initialised PEFT LoRA of the configured shape stands in: packaging never
looks at the values).

Measured for each: build (cold: first build in the process), a rebuild (must give identical bytes
and register nothing), verify, unpack; and for the same files: ``tar -czf`` (GNU tar + gzip -6),
the obvious alternative, which is neither reproducible nor verifiable.

    python benchmarks/package_build.py [--project DIR] [--stand-in] [--levels 1,6]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
LORA_VARIANT = "support-bot-lora"


def make_project(tmp: Path, source: Path | None) -> Path:
    """A scratch copy: of sample-project (a new repo), or of ``source`` with its history and store."""
    project = tmp / "project"
    env = {**os.environ, **GIT_ENV}
    if source is None:
        shutil.copytree(ROOT / "sample-project", project, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sample project"]):
            subprocess.run(["git", *args], cwd=project, env=env, check=True)
    else:
        shutil.copytree(source, project, symlinks=True)  # never write into the caller's project
    yaml = project / "llmops.yaml"
    if LORA_VARIANT not in yaml.read_text():
        # The chain as written: base model + its support-lora adapter, no package-level model.
        text = yaml.read_text().replace("packages:\n", f"packages:\n  {LORA_VARIANT}: {{chain: rag-answer}}\n", 1)
        yaml.write_text(text)
        subprocess.run(["git", "commit", "-qm", "benchmark variant", "llmops.yaml"], cwd=project, env=env, check=True)
    return project


def built(config: Any, kind: str, name: str) -> bool:
    from llmops_cli.versioning import ArtifactRegistry

    return (ArtifactRegistry.for_config(config).folder(kind, name) / "artifact.json").is_file()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: steadier than wall time on a busy machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds, result)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, cpu_seconds() - cpu, result


def quantize_real(config: Any) -> str | None:
    """Build base-4bit with `llmops quantize` when that is possible here (it needs the merged adapter)."""
    try:
        from llmops_cli.quantize import quantize  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        result = quantize(config, "base-4bit", check=False, baseline=False)  # only the artifact is needed
    except Exception as error:  # e.g. the adapter it merges has not been trained
        print(f"llmops quantize base-4bit could not run here ({type(error).__name__}: {error}); using a stand-in")
        return None
    return str(getattr(result, "version", "quantized/base-4bit"))


def register_stand_in_quantized(config: Any, tmp: Path) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from llmops_cli.models import fingerprint, materialize, resolve
    from llmops_cli.versioning import ArtifactRegistry, Input

    spec = config.models["base"]
    folder = materialize(spec, config.root)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), quantization_config=quant, dtype=torch.float32, device_map="cpu", local_files_only=True
    )
    out = tmp / "base-4bit"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(folder), local_files_only=True).save_pretrained(out)
    files = {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*")) if p.is_file()}
    inputs = [Input(spec.source or "base", fingerprint(resolve(spec, config.root)))]
    version = ArtifactRegistry.for_config(config).register(
        "quantized", "base-4bit", files, inputs=inputs, summary="benchmark stand-in: base quantized, adapter not merged"
    )
    return version.tag + " (stand-in)"


def register_stand_in_adapter(config: Any, tmp: Path) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from llmops_cli.models import materialize
    from llmops_cli.versioning import ArtifactRegistry, Input

    entry = config.adapters["support-lora"]
    lora = entry.lora
    folder = materialize(config.models[entry.base], config.root)
    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=int(lora.alpha),
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules or ("q_proj", "v_proj")),
        task_type="CAUSAL_LM",
    )
    out = tmp / "support-lora"
    get_peft_model(base, peft_config).save_pretrained(out)
    files = {p.name: p for p in sorted(out.iterdir()) if p.is_file()}
    registry = ArtifactRegistry.for_config(config)
    version = registry.register(
        "adapter",
        "support-lora",
        files,
        inputs=[Input("dataset/support-train@v0", "sha256:-")],
        summary="benchmark stand-in: initialised, not trained",
    )
    return version.tag + " (stand-in, untrained)"


def measure(config: Any, name: str, level: int, tmp: Path) -> dict[str, Any]:
    from llmops_cli.package import build_package, unpack, verify_package

    build_s, build_cpu, first = timed(build_package, config, name, compresslevel=level)
    data = first.archive.read_bytes()
    rebuild_s, _cpu, second = timed(build_package, config, name, compresslevel=level)
    identical = second.archive.read_bytes() == data and second.reused
    if not identical:
        before = {f["path"]: f["sha256"] for f in first.manifest["files"]}
        after = {f["path"]: f["sha256"] for f in second.manifest["files"]}
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        print(f"{name}: the rebuild differs in {changed or 'the manifest only'} (inputs changed between the builds?)")
    verify_s, _cpu, report = timed(verify_package, first.archive)
    assert report.ok, report.as_dict()
    target = tmp / f"unpacked-{name}-{level}"
    unpack_s, _cpu, _ = timed(unpack, first.archive, target)
    payload = sum(f["size"] for f in first.manifest["files"])
    return {
        "name": name,
        "level": level,
        "files": first.files,
        "payload": payload,
        "size": first.size,
        "build": build_s,
        "build_cpu": build_cpu,
        "rebuild": rebuild_s,
        "identical": identical,
        "verify": verify_s,
        "unpack": unpack_s,
        "tree": target,
        "version": second.version,
        "memory": first.manifest["hardware"]["memory_bytes"],
    }


def tar_czf(tree: Path, out: Path) -> tuple[float, float, int, bool]:
    """GNU tar + gzip (default level 6) over the same files, twice: wall, CPU, size, identical bytes?"""
    sizes = []
    digests = []
    elapsed = cpu = 0.0
    for i in range(2):
        target = out.with_name(f"{out.stem}-{i}.tar.gz")
        seconds, used, _ = timed(subprocess.run, ["tar", "-czf", str(target), "-C", str(tree), "."], check=True)
        elapsed, cpu = (elapsed, cpu) if elapsed else (seconds, used)
        sizes.append(target.stat().st_size)
        digests.append(target.read_bytes())
        time.sleep(1.1)  # a second apart, as two real builds would be
        os.utime(tree / "manifest.json")  # a rebuild rewrites files: their mtimes change
    return elapsed, cpu, sizes[0], digests[0] == digests[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="copy this project (what it has built is reused)")
    parser.add_argument("--stand-in", action="store_true", help="do not try 'llmops quantize'; use the stand-in")
    parser.add_argument("--levels", default="1,6", help="gzip levels to measure for support-bot")
    args = parser.parse_args()
    os.environ.update(GIT_ENV)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    levels = [int(x) for x in args.levels.split(",")]
    from llmops_cli.retrieval import build_index
    from llmops_cli.validation import load_config

    with tempfile.TemporaryDirectory(prefix="llmops-bench-package-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_project(tmp, args.project.resolve() if args.project else None)
        config = load_config(project)
        notes = []
        build_index(config, "kb")  # incremental: nothing to do when the copied project has it
        if built(config, "quantized", "base-4bit"):
            notes.append("base-4bit: as built in the project")
        else:
            quantized = None if args.stand_in else quantize_real(config)
            notes.append(f"base-4bit: {quantized or register_stand_in_quantized(config, tmp)}")
        if built(config, "adapter", "support-lora"):
            notes.append("support-lora: as trained in the project")
        else:
            notes.append(f"support-lora: {register_stand_in_adapter(config, tmp)}")
        rows = [measure(config, "support-bot", level, tmp) for level in levels]
        if LORA_VARIANT in config.packages:
            rows.append(measure(config, LORA_VARIANT, levels[0], tmp))
        print_table(rows, tar_czf(rows[0]["tree"], tmp / "plain.tar.gz"), notes)


def print_table(rows: list[dict[str, Any]], tar: tuple[float, float, int, bool], notes: list[str]) -> None:
    mb = 1024 * 1024
    header = (
        f"{'package':<21} {'gzip':>4} {'files':>5} {'payload MB':>10} {'archive MB':>10} {'build s':>7} "
        f"{'cpu s':>6} {'rebuild s':>9} {'identical':>9} {'verify s':>8} {'unpack s':>8} {'memory MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<21} {r['level']:>4} {r['files']:>5} {r['payload'] / mb:>10.1f} {r['size'] / mb:>10.1f} "
            f"{r['build']:>7.2f} {r['build_cpu']:>6.2f} {r['rebuild']:>9.2f} {str(r['identical']):>9} "
            f"{r['verify']:>8.2f} {r['unpack']:>8.2f} {r['memory'] / mb:>9.0f}"
        )
    tar_s, tar_cpu, tar_size, tar_same = tar
    first = rows[0]
    print(
        f"{'tar -czf (same files)':<21} {6:>4} {first['files']:>5} {first['payload'] / mb:>10.1f} "
        f"{tar_size / mb:>10.1f} {tar_s:>7.2f} {tar_cpu:>6.2f} {tar_s:>9.2f} {str(tar_same):>9} "
        f"{'-':>8} {'-':>8} {'-':>9}"
    )
    print()
    for r in [r for r in rows if r["name"] == first["name"]]:
        print(
            f"ours (gzip {r['level']}) / tar -czf: wall x{r['build'] / tar_s:.2f}, "
            f"CPU x{r['build_cpu'] / tar_cpu:.2f}, size x{r['size'] / tar_size:.3f}"
        )
    print("build = plan + hash + write + register (copy into the content store); rebuild = same inputs, reused version")
    for note in notes:
        print(f"note: {note}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
