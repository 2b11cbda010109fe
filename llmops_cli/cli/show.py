"""``llmops show``: one artifact version, its files, lineage and metrics."""

from __future__ import annotations

from llmops_cli.cli import output
from llmops_cli.cli.options import JsonOpt, RefArg
from llmops_cli.cli.state import STATE


def show(ref: RefArg, json_out: JsonOpt = False) -> None:
    """Show one artifact version: files, inputs (lineage), config hash, metrics, libraries, commit."""
    from llmops_cli.versioning import ArtifactRef

    registry = STATE.registry()
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
