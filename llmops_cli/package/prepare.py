"""``llmops package prepare``: make an unpacked package ready to serve, once.

Loads each retriever's exported index into the bundle's own Chroma store and prepares local model
weights (a GGUF is dequantized into the model cache, as on first use anywhere). Both steps skip
what is already done, so running it again (every ``serve.py`` start does) costs little.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.package.archive import MANIFEST_NAME
from llmops_cli.package.indexes import VECTORS_DIR
from llmops_cli.progress import ProgressFn

# progress phases: verify, index NAME, model NAME


@dataclass
class PrepareResult:
    root: Path
    restored: list[str] = field(default_factory=list)  # retrievers loaded into the store now
    present: list[str] = field(default_factory=list)  # retrievers whose index was already there
    models: list[str] = field(default_factory=list)  # local models made ready to load

    def as_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "restored": self.restored, "present": self.present, "models": self.models}


def prepare_bundle(
    root: Path, *, models: bool = True, progress: ProgressFn | None = None, verify: bool = True
) -> PrepareResult:
    """Prepare the unpacked package (or any project with exported indexes) at ``root``.

    With ``verify`` (the default), an unpacked package (a folder with ``manifest.json``) is first
    checked against its manifest, so nothing altered since it was unpacked is loaded or served.
    """
    from llmops_cli.package.indexes import restore_index
    from llmops_cli.package.verify import verify_tree
    from llmops_cli.validation import load_config
    from llmops_cli.versioning import ArtifactRegistry

    if verify and (Path(root) / MANIFEST_NAME).exists():
        if progress:
            progress("verify", 0, 1)
        verify_tree(Path(root))
    config = load_config(Path(root).resolve())
    result = PrepareResult(config.root)
    registry = ArtifactRegistry.for_config(config)
    for name in config.retrievers:
        folder = registry.folder("index", name) / VECTORS_DIR
        if not (folder / "collection.json").is_file():
            continue

        def report(done: int, total: int, name: str = name) -> None:
            if progress:
                progress(f"index {name}", done, total)

        (result.restored if restore_index(config, name, folder, report) else result.present).append(name)
    if models:
        from llmops_cli.models import materialize

        for spec in config.models.values():
            if spec.is_remote:
                continue
            if progress:
                progress(f"model {spec.name}", 0, 1)
            materialize(spec, config.root)
            result.models.append(spec.name)
    return result
