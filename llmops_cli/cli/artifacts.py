"""``llmops add``, ``log``, ``show``, ``checkout``, ``push``, ``pull``: artifact versions and their lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import AllVersionsOpt, JsonOpt, RemoteOpt
from llmops_cli.cli.state import STATE

RefArg = Annotated[str, typer.Argument(help="KIND/NAME[@vN], e.g. adapter/faq-lora@v2 (default: latest).")]


def _registry() -> Any:
    from llmops_cli.versioning import ArtifactRegistry

    return ArtifactRegistry.for_config(STATE.config())


def _metrics_summary(metrics: dict[str, Any], limit: int = 3) -> str:
    items = list(metrics.items())[:limit]
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
    return text + (" …" if len(metrics) > limit else "")


def add(
    path: Annotated[Path, typer.Argument(help="The file or folder to version (copied into artifacts/KIND/NAME/).")],
    kind: Annotated[
        str, typer.Option("--kind", "-k", help="Artifact kind, e.g. model, report, file, dataset.", metavar="KIND")
    ] = "file",
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Artifact name (default: the file or folder name).")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="Lineage: what it was made from, KIND/NAME[@vN] or a path (repeatable)."),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message summary.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Version any file or folder as KIND/NAME/vN (store, pointers, tag, lineage), like dvc add.

    An unchanged re-run registers nothing: it reuses the latest version, decided before any copy
    (files already hashed and untouched since are not read again).
    """
    from llmops_cli.versioning.add import add_path

    artifact_name = name or (path.resolve().stem if path.is_file() else path.resolve().name)
    result = add_path(_registry(), path, kind, artifact_name, inputs=inputs, message=message)
    if json_out:
        output.print_json(result.as_dict())
        return
    size = output.human_size(result.bytes)
    if result.reused:
        output.success(f"unchanged: {result.version.key} v{result.version.version} already has these {result.files} "
                       f"file(s) ({size}); nothing registered")  # fmt: skip
    else:
        output.success(f"registered {result.version.tag}: {result.files} file(s), {size}, "
                       f"{result.stored} in the content store ({result.version.commit[:10]})")  # fmt: skip


def log(
    artifact: Annotated[str | None, typer.Argument(help="KIND/NAME to list (default: every artifact).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered artifact versions, newest first, with their commit, inputs and metrics."""
    from llmops_cli.versioning import ArtifactRef

    registry = _registry()
    ref = ArtifactRef.parse(artifact) if artifact else None
    versions = registry.history(ref)  # newest first, by time
    for version in versions:
        version.manifest = registry.read_manifest(version)
    if json_out:
        output.print_json(
            [
                {
                    "artifact": v.key,
                    "version": v.version,
                    "tag": v.tag,
                    "commit": v.commit,
                    "date": v.date,
                    "inputs": v.manifest.get("inputs", []),
                    "metrics": v.manifest.get("metrics", {}),
                }
                for v in versions
            ]  # fmt: skip
        )
        return
    if not versions:
        output.info("no artifact versions registered yet")
        return
    rows = [
        [v.key, f"v{v.version}", v.date[:19].replace("T", " "), v.commit[:10],
         ", ".join(i["ref"] for i in v.manifest.get("inputs", [])), _metrics_summary(v.manifest.get("metrics", {}))]
        for v in versions
    ]  # fmt: skip
    output.table(None, ["artifact", "version", "date", "commit", "inputs", "metrics"], rows)


def show(ref: RefArg, json_out: JsonOpt = False) -> None:
    """Show one artifact version: files, inputs (lineage), config hash, metrics, libraries, commit."""
    from llmops_cli.versioning import ArtifactRef

    registry = _registry()
    version = registry.get(ArtifactRef.parse(ref))
    manifest = version.manifest
    if json_out:
        output.print_json({"tag": version.tag, "commit": version.commit, **manifest})
        return
    con = output.console()
    con.print(f"[bold]{version.key}[/bold] v{version.version}  tag {version.tag}  commit {version.commit[:10]}")
    con.print(f"created {manifest.get('created')}  from commit {str(manifest.get('git_parent'))[:10]}")
    if manifest.get("config_hash"):
        con.print(f"config {manifest['config_hash']}")
    files = [
        [f["path"], output.human_size(f["size"]), f["sha256"][:12],
         ("store" + ("" if registry.store.has(f["sha256"]) else " (missing: llmops pull)")) if f["stored"] else "git"]
        for f in manifest.get("files", [])
    ]  # fmt: skip
    output.table("files", ["path", "size", "sha256", "kept in"], files)
    if manifest.get("inputs"):
        output.table("inputs", ["input", "hash"], [[i["ref"], i["hash"]] for i in manifest["inputs"]])
    if manifest.get("metrics"):
        output.table("metrics", ["metric", "value"], [[k, v] for k, v in manifest["metrics"].items()])
    if manifest.get("params"):
        output.table("params", ["param", "value"], [[k, v] for k, v in manifest["params"].items()])
    libs = ", ".join(f"{k} {v}" for k, v in sorted(manifest.get("libraries", {}).items()))
    con.print(f"[dim]libraries: {libs}[/dim]")


def checkout(ref: RefArg) -> None:
    """Restore an artifact's files in the work tree to a version (large files from the store)."""
    from llmops_cli.versioning import ArtifactRef

    registry = _registry()
    version = registry.checkout(ArtifactRef.parse(ref))
    folder = registry.folder(version.kind, version.name).relative_to(registry.project_root)
    output.success(f"{folder} is now {version.key} v{version.version} ({version.commit[:10]})")


def _transfer(direction: str, remote: str | None, all_versions: bool) -> None:
    from llmops_cli.versioning import remote as remote_mod

    registry = _registry()
    url = remote or STATE.config().storage.remote
    objects = registry.referenced_objects(all_versions=all_versions)
    if direction == "push":  # everything the local store holds, plus what versions reference
        local = registry.store
        objects |= {sha: local.object_path(sha).stat().st_size for sha in local.iter_objects()}
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    total = sum(objects.values())
    with Progress(TextColumn(direction), BarColumn(), DownloadColumn(), disable=STATE.quiet,
                  console=output.err_console(), transient=True) as bar:  # fmt: skip
        task = bar.add_task(direction, total=total)
        fn = remote_mod.push if direction == "push" else remote_mod.pull
        result = fn(registry.store, url, objects, lambda _sha, size: bar.advance(task, size))
    output.success(
        f"{direction}: {len(result.copied)} object(s), {output.human_size(result.bytes)} copied; "
        f"{len(result.skipped)} already there"
    )
    if result.missing:
        shown = ", ".join(sha[:12] for sha in result.missing)
        output.warn(f"{len(result.missing)} object(s) referenced but missing locally: {shown}")


def push(remote: RemoteOpt = None) -> None:
    """Upload content-store objects to the remote (a directory or fsspec URL)."""
    _transfer("push", remote, True)


def pull(remote: RemoteOpt = None, all_versions: AllVersionsOpt = False) -> None:
    """Download the store objects the checked-out artifacts (or, with --all, every version) need."""
    _transfer("pull", remote, all_versions)
