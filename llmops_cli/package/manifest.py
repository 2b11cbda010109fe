"""``manifest.json``: what a package holds and needs, and the git facts that date it.

Nothing in the manifest depends on when or where the build ran: the git commit is the latest one
that touched any of the package's sources (so registering the package itself, or an unrelated
artifact, does not change it), and the archive's file times are that commit's time.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.package.archive import MANIFEST_NAME

if TYPE_CHECKING:
    from llmops_cli.package.plan import PackagePlan
    from llmops_cli.versioning.gitrepo import GitRepo

FORMAT = "llmops-package/1"
SERVE_COMMAND = "llmops -C /app serve --host 0.0.0.0 --port 8000"
RUNTIME_OVERHEAD = 512 * 1024 * 1024  # Python, torch and the server before any weights are loaded
ACTIVATION_FACTOR = 1.2  # activations, KV cache and allocator slack on top of the weights


@dataclass(frozen=True)
class SourceCommit:
    commit: str | None
    timestamp: int  # committer time, the archive's mtime (0 outside git)
    dirty: bool

    def as_dict(self) -> dict[str, Any]:
        # Flat keys: the server's request log reads ``git_sha`` from an unpacked package.
        return {"git_sha": self.commit, "git_dirty": self.dirty, "source_time": self.timestamp}


def source_commit(root: Path, paths: list[Path], repo: GitRepo | None = None) -> SourceCommit:
    """The latest commit touching ``paths`` (inside the repository) and whether any of them is
    modified; ``repo`` is the repository of ``root`` when the caller has it already."""
    from llmops_cli.errors import VersioningError
    from llmops_cli.versioning import ArtifactRegistry

    if repo is None:
        try:
            repo = ArtifactRegistry(root).git
        except VersioningError:
            return SourceCommit(None, 0, False)
    inside = sorted({repo.relpath(p) for p in paths if p.resolve().is_relative_to(repo.root)})
    if not inside:
        return SourceCommit(None, 0, False)
    try:
        line = repo.git("log", "-1", "--format=%H %ct", "--", *inside).strip()
    except VersioningError:
        if repo.head() is None:  # no commit yet (asked only then: one git process less)
            return SourceCommit(None, 0, False)
        raise
    status = repo.git("status", "--porcelain", "--", *inside).strip()
    if not line:
        return SourceCommit(None, 0, bool(status))
    commit, timestamp = line.split()
    return SourceCommit(commit, int(timestamp), bool(status))


def hardware(plan: PackagePlan) -> dict[str, Any]:
    """Memory estimate (weights at their load dtype, scaled, plus the runtime) and GPU needs."""
    parts: list[dict[str, Any]] = []
    for name, model in plan.models.items():
        if model.kind != "remote":
            bits = f", {model.bits}-bit" if model.bits else ""
            what = f"{name} ({model.kind}{bits})"
            parts.append({"what": f"model {what}", "bytes": model.runtime_bytes})
    for name, art in plan.adapters.items():
        size = sum(p.stat().st_size for rel, p in art.files.items() if rel.endswith((".safetensors", ".bin")))
        parts.append({"what": f"adapter {name}", "bytes": size})
    for name, size in plan.embeddings.items():
        parts.append({"what": f"embedding {name}", "bytes": size})
    weights = sum(p["bytes"] for p in parts)
    estimate = int(weights * ACTIVATION_FACTOR) + RUNTIME_OVERHEAD
    notes = [m.note for m in plan.models.values() if m.note]
    return {
        "memory_bytes": estimate,
        "weights_bytes": weights,
        "components": parts,
        "basis": f"weights x {ACTIVATION_FACTOR} (activations, KV cache) + {RUNTIME_OVERHEAD // 2**20} MiB runtime",
        "gpu": {
            "required": False,
            "used_when_available": any(m.kind != "remote" for m in plan.models.values()),
            "notes": notes or ["Runs on CPU; a CUDA GPU is used when torch sees one."],
        },
    }


def build_manifest(
    plan: PackagePlan, files: dict[str, tuple[str, int]], commit: SourceCommit, hardware_needs: dict[str, Any]
) -> dict[str, Any]:
    """The manifest dict without its ``version``; ``files`` maps every other archive path to (sha256, size)."""
    from llmops_cli.versioning.artifacts import library_versions

    libraries = library_versions((*_LIBRARIES, *plan.needs.no_deps))
    return {
        "format": FORMAT,
        "package": plan.name,
        "description": plan.description,
        "project": plan.config.name,
        **commit.as_dict(),
        "serves": {
            "chain": plan.chain,
            "inputs": plan.chain_inputs,
            "model": plan.model,
            "adapter": plan.adapter,
            "retrievers": [r.name for r in plan.retrievers],
        },
        "python": ".".join(platform.python_version_tuple()[:2]),
        "libraries": libraries,
        "artifacts": [c.as_dict() for c in plan.components],
        "hardware": hardware_needs,
        "entrypoint": {"command": SERVE_COMMAND, "script": "serve.py", "docker": "Dockerfile", "port": 8000},
        "files": [
            {"path": path, "sha256": sha, "size": size}
            for path, (sha, size) in sorted(files.items(), key=lambda kv: kv[0].encode("utf-8"))
            if path != MANIFEST_NAME
        ],
    }


_LIBRARIES = (
    "llmops", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "chromadb", "safetensors",
    "tokenizers", "gguf", "fastapi", "uvicorn",
)  # fmt: skip


def content_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without its version: equal digests mean equal packages."""
    import hashlib
    import json

    body = {k: v for k, v in manifest.items() if k != "version"}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
