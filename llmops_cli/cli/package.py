"""``llmops package``: build, verify, inspect, unpack and prepare package archives.

``llmops package NAME`` is short for ``llmops package build NAME`` (the group inserts ``build``
when the first word is not one of its commands; a package named like a command needs the long form).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.base import LlmopsTyper, default_command_group
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.package import PackageResult, VerifyReport

ArchiveArg = Annotated[Path, typer.Argument(help="A package archive (.tar.gz) made by 'llmops package'.")]
MaxBytesOpt = Annotated[
    str | None,
    typer.Option("--max-bytes", help="Refuse archives that unpack to more than SIZE (default 1TiB).",
                 metavar="SIZE"),
]  # fmt: skip
MaxFilesOpt = Annotated[
    int | None, typer.Option("--max-files", min=1, help="Refuse archives with more entries (default 100000).")
]
MaxManifestOpt = Annotated[
    str | None,
    typer.Option("--max-manifest-bytes", help="Refuse a larger manifest.json (default 64 MiB).", metavar="SIZE"),
]


app = LlmopsTyper(
    cls=default_command_group("build"),
    help="Bundle a chain or model into one reproducible .tar.gz (`llmops package NAME` is short for "
    "`llmops package build NAME`), and verify, inspect, unpack or prepare such archives.",
)


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="Package entry (under packages: in llmops.yaml) to build.")],
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the archive here (with --no-register: only here).")
    ] = None,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Do not version it as package/NAME/vN (default output: dist/).")
    ] = False,
    compress_level: Annotated[
        int, typer.Option("--compress-level", min=1, max=9, help="gzip level (1: fast; weights barely compress).")
    ] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Build the package archive (manifest, pruned llmops.yaml, prompts, model, indexes, model card,
    serve.py, Dockerfile, pinned requirements) and register it as package/NAME/vN."""
    from llmops_cli.package import build_package

    cfg = STATE.config()
    with output.progress(f"package {name}", enabled=not (json_out or STATE.quiet), style="bytes") as report:
        result = build_package(
            cfg, name, output=output_file, register=not no_register, compresslevel=compress_level, progress=report
        )
    if json_out:
        output.print_json(result.as_dict())
        return
    _print_result(result)


@app.command("verify")
def verify(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    max_bytes: MaxBytesOpt = None,
    max_files: MaxFilesOpt = None,
    max_manifest_bytes: MaxManifestOpt = None,
) -> None:
    """Recompute every file's sha256 and compare with the manifest; report missing, extra, altered
    and unsafe files (exit code 4 when anything differs or the archive goes past a limit)."""
    from llmops_cli.package import PackageIntegrityError, verify_package

    limits = _limits(max_bytes, max_files, max_manifest_bytes)
    with output.progress(f"verify {archive.name}", enabled=not (json_out or STATE.quiet), style="bytes") as report:
        result = verify_package(archive, progress=lambda done, total: report("verify", done, total), limits=limits)
    if json_out:
        output.print_json(result.as_dict())
    else:
        _print_verify(result)
    if not result.ok:
        raise PackageIntegrityError(f"{archive}: {result.summary()}")


@app.command("inspect")
def inspect(
    archive: ArchiveArg,
    files: Annotated[bool, typer.Option("--files", help="Also list every file with its size and sha256.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Print a package's manifest: what it serves, its artifacts and versions, hardware needs, files."""
    from llmops_cli.package import read_manifest

    manifest = read_manifest(archive)
    if json_out:
        output.print_json(manifest)
        return
    _print_manifest(manifest, files=files)


@app.command("unpack")
def unpack(
    archive: ArchiveArg,
    dest: Annotated[Path | None, typer.Argument(help="New folder to unpack into (default: ./PACKAGE).")] = None,
    prepare: Annotated[bool, typer.Option("--prepare", help="Also load indexes and prepare weights.")] = False,
    max_bytes: MaxBytesOpt = None,
    max_files: MaxFilesOpt = None,
    max_manifest_bytes: MaxManifestOpt = None,
) -> None:
    """Verify and safely unpack a package in one pass: every file is checked against the manifest as
    it is written, and nothing lands in DEST unless all of it matched (refuses absolute paths, '..',
    links, devices, and archives past the size and file-count limits)."""
    from llmops_cli.package import prepare_bundle, read_manifest
    from llmops_cli.package import unpack as unpack_archive

    limits = _limits(max_bytes, max_files, max_manifest_bytes)
    name = read_manifest(archive, limits=limits).get("package")
    target = dest or Path(str(name if isinstance(name, str) and name.strip() else archive.name.split(".")[0]))
    root = unpack_archive(archive, target, limits=limits)
    if prepare:
        prepare_bundle(root, verify=False)  # just verified while unpacking
    files = len(read_manifest(archive, limits=limits).get("files", [])) + 1
    output.success(f"unpacked and verified {files} files into {root}")
    steps = "serve" if prepare else f"package prepare && llmops -C {root} serve"
    output.info(f"serve it with: llmops -C {root} {steps}")


@app.command("prepare")
def prepare(
    no_models: Annotated[
        bool, typer.Option("--no-models", help="Only load indexes; leave model weights as they are.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip checking the folder against its manifest.json first.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make an unpacked package ready to serve (run in its folder or with -C DIR): check every file
    against manifest.json (exit code 4 if any differs), then load the exported vector indexes into its
    local store and prepare model weights. Already-done steps are skipped."""
    from llmops_cli.package import prepare_bundle

    with output.progress("prepare", enabled=not (json_out or STATE.quiet), style="bytes") as report:
        result = prepare_bundle(STATE.project_root(), models=not no_models, progress=report, verify=not no_verify)
    if json_out:
        output.print_json(result.as_dict())
        return
    for name in result.restored:
        output.success(f"index {name}: loaded into the local store")
    for name in result.present:
        output.info(f"index {name}: already loaded")
    for name in result.models:
        output.info(f"model {name}: ready")


def _limits(max_bytes: str | None, max_files: int | None, max_manifest_bytes: str | None) -> Any:
    from dataclasses import replace

    from llmops_cli.package import DEFAULT_LIMITS

    limits = DEFAULT_LIMITS
    if max_bytes is not None:
        limits = replace(limits, max_total_bytes=_parse_size(max_bytes, "--max-bytes"))
    if max_files is not None:
        limits = replace(limits, max_files=max_files)
    if max_manifest_bytes is not None:
        limits = replace(limits, max_manifest_bytes=_parse_size(max_manifest_bytes, "--max-manifest-bytes"))
    return limits


def _parse_size(text: str, flag: str) -> int:
    """``'500MiB'``, ``'2 GB'``, ``'1024'`` -> bytes (K/M/G/T: powers of 1024)."""
    import re

    from llmops_cli.errors import UsageError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise UsageError(f"{flag} {text!r} is not a size", hint="Write a number of bytes or e.g. 500MiB, 2GiB, 1TiB.")
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


# -- rendering ------------------------------------------------------------------------------------------


def _print_result(result: PackageResult) -> None:
    from llmops_cli.cli.output import human_size

    m = result.manifest
    hw = m.get("hardware", {})
    rows = [
        ["archive", str(result.archive)],
        ["size", f"{human_size(result.size)} ({result.files} files)"],
        ["sha256", result.sha256],
        ["serves", _serves(m)],
        ["memory (estimate)", human_size(hw.get("memory_bytes", 0))],
        ["git", f"{m.get('git_sha') or '-'}{' (uncommitted changes)' if m.get('git_dirty') else ''}"],
        ["time", f"{result.seconds:.1f} s"],
    ]
    if result.output and result.output != result.archive:
        rows.insert(1, ["copy", str(result.output)])
    output.table(None, ["", result.name], rows)
    if result.version is None:
        output.success(f"wrote {result.archive} (not registered)")
    elif result.reused:
        output.success(f"{result.version} already has exactly this content; nothing new registered")
    else:
        output.success(f"registered {result.version}")


_SHOWN = 20  # rows per kind of problem; --json lists them all


def _print_verify(report: VerifyReport) -> None:
    groups: list[list[list[Any]]] = [
        [[p, "missing", ""] for p in report.missing],
        [[p, "extra", "not in the manifest"] for p in report.extra],
        [[a["path"], "altered", f"sha256 {a['actual_sha256'][:12]} (manifest: {a['expected_sha256'][:12]}), "
          f"{a['actual_size']} bytes (manifest: {a['expected_size']})"] for a in report.altered],
        [[u["path"], "unsafe", u["problem"]] for u in report.unsafe],
    ]  # fmt: skip
    rows: list[list[Any]] = []
    for group in groups:
        rows += group[:_SHOWN]
        if len(group) > _SHOWN:
            rows.append([f"… and {len(group) - _SHOWN:,} more", group[0][1], "(--json lists every one)"])
    if rows:
        output.table(f"{report.archive.name}: problems", ["path", "problem", "detail"], rows)
    # report.error is part of the error raised after this, so it is not printed twice
    if report.ok:
        name = (report.manifest or {}).get("package")
        version = (report.manifest or {}).get("version")
        which = f"{name} v{version}" if version else str(name)
        output.success(f"{which}: {report.summary()} (archive sha256 {report.sha256})")


def _print_manifest(m: dict[str, Any], *, files: bool) -> None:
    from llmops_cli.cli.output import human_size

    hw = m.get("hardware", {})
    gpu = hw.get("gpu", {})
    version = m.get("version")
    rows = [
        ["package", f"{m.get('package')}{f' v{version}' if version else ''} ({m.get('format')})"],
        ["project", str(m.get("project"))],
        ["serves", _serves(m)],
        ["git", f"{m.get('git_sha') or '-'}{' (uncommitted changes)' if m.get('git_dirty') else ''}"],
        ["python / llmops", f"{m.get('python')} / {m.get('libraries', {}).get('llmops', '?')}"],
        ["memory (estimate)", f"{human_size(hw.get('memory_bytes', 0))} ({hw.get('basis', '')})"],
        ["gpu", ("required" if gpu.get("required") else "not required") + "; " + " ".join(gpu.get("notes", []))],
        ["files", f"{len(m.get('files', [])) + 1} ({human_size(sum(f['size'] for f in m.get('files', [])))})"],
        ["entrypoint", str((m.get("entrypoint") or {}).get("command", ""))],
    ]
    output.table(None, ["", str(m.get("package"))], rows)
    artifacts = [
        [a["kind"], a["name"], f"v{a['version']}" if a.get("version") is not None else "-", a.get("ref"),
         (a.get("hash") or "-")[:19], a.get("path") or "-"]
        for a in m.get("artifacts", [])
    ]  # fmt: skip
    output.table("artifacts", ["kind", "name", "version", "from", "hash", "in package"], artifacts)
    libraries = [[k, v] for k, v in sorted((m.get("libraries") or {}).items())]
    output.table("libraries", ["library", "version"], libraries)
    if files:
        rows = [[f["path"], human_size(f["size"]), f["sha256"][:16]] for f in m.get("files", [])]
        output.table("files", ["path", "size", "sha256"], rows)


def _serves(manifest: dict[str, Any]) -> str:
    parts = []
    for key, value in (manifest.get("serves") or {}).items():
        if value:
            parts.append(f"{key} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "; ".join(parts) or "-"
