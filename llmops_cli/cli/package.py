"""``llmops package``: build, verify, inspect, unpack and prepare package archives.

``llmops package NAME`` is short for ``llmops package build NAME`` (the group inserts ``build``
when the first word is not one of its commands; a package named like a command needs the long form).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli import output, render_package
from llmops_cli.cli.base import LlmopsTyper, default_command_group
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE

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
    render_package.print_result(result)


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
        render_package.print_verify(result)
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
    render_package.print_manifest(manifest, files=files)


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
