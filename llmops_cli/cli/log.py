"""``llmops log``: registered artifact versions, newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE


def log(
    artifact: Annotated[str | None, typer.Argument(help="KIND/NAME to list (default: every artifact).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered artifact versions, newest first, with their commit, inputs and metrics."""
    from llmops_cli.versioning import ArtifactRef

    registry = STATE.registry()
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


def _metrics_summary(metrics: dict[str, Any], limit: int = 3) -> str:
    items = list(metrics.items())[:limit]
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
    return text + (" …" if len(metrics) > limit else "")
