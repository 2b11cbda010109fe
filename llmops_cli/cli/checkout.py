"""``llmops checkout``: restore an artifact's files to a version."""

from __future__ import annotations

from llmops_cli.cli import output
from llmops_cli.cli.options import RefArg
from llmops_cli.cli.state import STATE


def checkout(ref: RefArg) -> None:
    """Restore an artifact's files in the work tree to a version (large files from the store)."""
    from llmops_cli.versioning import ArtifactRef

    registry = STATE.registry()
    version = registry.checkout(ArtifactRef.parse(ref))
    folder = registry.folder(version.kind, version.name).relative_to(registry.project_root)
    output.success(f"{folder} is now {version.key} v{version.version} ({version.commit[:10]})")
