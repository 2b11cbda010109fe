"""Which package version a deployment serves, where its archive is, and what weights it carries.

A deployment names a package; the version is the latest ``package/NAME/vN`` (or one asked for).
Its archive is found in the work tree (when the checked-out version is that one), in the content
store, or in git itself (small archives are committed directly), and is always checked against the
sha256 the registry recorded, so a deployment serves exactly the bytes that were versioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError, UsageError, VersioningError
from llmops_cli.progress import ProgressFn

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry, ArtifactVersion

# Models the bundle ships as a GGUF, which vLLM cannot take with LoRA adapters: their original weights.
EMBEDDED_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclass(frozen=True)
class PackageRef:
    """One registered package version and its archive on this machine."""

    name: str
    version: int
    sha256: str  # of the archive, as registered
    archive: Path
    manifest: dict[str, Any] = field(compare=False)  # the archive's manifest.json
    commit: str = ""  # the commit that registered it

    @property
    def ref(self) -> str:
        return f"package/{self.name}@v{self.version}"

    @property
    def memory_bytes(self) -> int:
        return int((self.manifest.get("hardware") or {}).get("memory_bytes") or 0)


def package_versions(registry: ArtifactRegistry, name: str) -> list[int]:
    from llmops_cli.versioning import ArtifactRef

    return [v.version for v in registry.versions(ArtifactRef("package", name))]


def resolve_package(
    config: ProjectConfig,
    name: str,
    *,
    version: int | None = None,
    build: bool = False,
    progress: ProgressFn | None = None,
) -> PackageRef:
    """The package version to deploy: ``version``, else the latest (built first with ``build``)."""
    from llmops_cli.versioning import ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    if build and version is not None:
        raise UsageError("--build makes a new package version; it cannot be combined with --package-version.")
    if build:
        from llmops_cli.package import build_package

        result = build_package(config, name, progress=progress)
        if result.version is None:  # pragma: no cover - build_package registers by default
            raise VersioningError(f"package {name} was built but not registered")
        version = int(result.version.rsplit("/v", 1)[1])
    elif version is None:
        versions = package_versions(registry, name)
        if not versions:
            raise UsageError(
                f"Package '{name}' has no registered version yet, so there is nothing to deploy.",
                hint=f"Run 'llmops package {name}' first (or deploy with --build).",
            )
        version = versions[-1]
    return package_at(registry, name, version)


def package_at(registry: ArtifactRegistry, name: str, version: int) -> PackageRef:
    """``package/NAME@vVERSION`` with its archive located and checked."""
    from llmops_cli.package import read_manifest
    from llmops_cli.versioning import ArtifactRef

    registered = registry.get(ArtifactRef("package", name, version))
    files = [f for f in registered.manifest.get("files") or [] if isinstance(f, dict)]
    entry = next((f for f in files if f.get("path") == f"{name}.tar.gz"), None)
    entry = entry or next((f for f in files if str(f.get("path", "")).endswith(".tar.gz")), None)
    if entry is None:
        raise VersioningError(f"{registered.tag} has no .tar.gz archive in its manifest")
    archive = _locate(registry, registered, entry)
    return PackageRef(name, version, str(entry["sha256"]), archive, read_manifest(archive), registered.commit)


def _locate(registry: ArtifactRegistry, registered: ArtifactVersion, entry: dict[str, Any]) -> Path:
    from llmops_cli.models.hashing import file_sha256
    from llmops_cli.package.sources import check_manifest_entry
    from llmops_cli.versioning.artifacts import MANIFEST

    folder = registry.folder("package", registered.name)
    rel, sha = str(entry["path"]), entry.get("sha256")
    # The registered manifest comes from git: a crafted one must not point outside the artifact folder.
    check_manifest_entry(rel, sha, f"{registered.tag}: {MANIFEST}", folder=folder)
    sha = str(sha)
    size = entry.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise VersioningError(f"{registered.tag}: {MANIFEST}: {rel}: size {size!r} is not a byte count")
    work = folder / rel
    if work.is_file() and work.stat().st_size == size and file_sha256(work) == sha:
        return work
    if registry.store.has(sha):
        return registry.store.verified_path(sha)  # re-hashed: a damaged object is moved aside, never served
    if not entry.get("stored"):  # committed directly: take it out of git
        cached = registry.state / "deploy" / "archives" / f"{registered.name}-v{registered.version}.tar.gz"
        if cached.is_file() and file_sha256(cached) == sha:
            return cached
        git_path = f"{registry.git.relpath(registry.folder('package', registered.name))}/{rel}"
        for _mode, blob, path in registry.git.ls_tree(registered.commit, git_path):
            if path == git_path:
                from llmops_cli.paths import atomic_write_bytes

                atomic_write_bytes(cached, registry.git.blob_bytes(blob))
                if file_sha256(cached) == sha:
                    return cached
    raise UnavailableError(
        f"The archive of {registered.tag} ({rel}, sha256 {sha[:12]}) is neither in the work tree nor in the "
        "local content store.",
        hint=f"Run 'llmops pull' (or 'llmops checkout package/{registered.name}@v{registered.version}').",
    )


# -- what an LLM runtime (vLLM, KServe) serves from a package -----------------------------------


@dataclass(frozen=True)
class ServedModel:
    """The base model an LLM runtime loads: a folder inside the package, or a hub id."""

    name: str  # the model id clients send
    path: str | None = None  # folder inside the package (artifacts/quantized/X, model/X)
    hub_id: str | None = None
    bits: int | None = None  # pre-quantized with bitsandbytes
    note: str | None = None
    file: str | None = None  # the weights file inside ``path`` the runtime loads (a GGUF build)


@dataclass(frozen=True)
class ServedAdapter:
    name: str
    path: str  # folder inside the package
    rank: int


def llm_weights(config: ProjectConfig, package: PackageRef) -> tuple[ServedModel, list[ServedAdapter]]:
    """The one base model and the LoRA adapters of ``package`` (vLLM serves one base model per server)."""
    components = [c for c in package.manifest.get("artifacts", []) if isinstance(c, dict)]
    serves = package.manifest.get("serves") or {}
    embeddings = {r.embedding for r in config.retrievers.values() if r.embedding}
    models = [c for c in components if c.get("kind") in ("model", "quantized")]
    if serves.get("model"):
        models = [c for c in models if c.get("name") == serves["model"]]
    else:
        models = [c for c in models if c.get("name") not in embeddings]
    if len(models) != 1:
        names = ", ".join(str(c.get("name")) for c in models) or "none"
        raise UsageError(
            f"package '{package.name}' ships {len(models)} base models ({names}); an LLM runtime serves exactly one.",
            hint="Set 'model:' on the package, or deploy it with runtime: llmops.",
        )
    model = _served_model(models[0])
    adapters = []
    for c in components:
        if c.get("kind") == "adapter" and c.get("path"):
            name = str(c["name"])
            rank = config.adapters[name].lora.r if name in config.adapters else 16
            adapters.append(ServedAdapter(name, str(c["path"]), int(rank or 16)))
    return model, adapters


def _served_model(component: dict[str, Any]) -> ServedModel:
    name = str(component["name"])
    detail = component.get("detail") or {}
    if component.get("kind") == "quantized" and detail.get("format") == "gguf":
        note = (
            f"model '{name}' is a GGUF build ({detail.get('type')}); vLLM loads GGUF files experimentally and "
            "cannot add LoRA adapters to one; runtime: llmops serves it on llama.cpp"
        )
        return ServedModel(name, path=str(component["path"]), note=note, file=str(detail.get("file") or "model.gguf"))
    if component.get("kind") == "quantized":
        bits = detail.get("bits")
        return ServedModel(name, path=str(component["path"]), bits=int(bits) if bits else None)
    if not component.get("path"):
        raise UsageError(
            f"model '{name}' is called over HTTP ({component.get('ref')}); an LLM runtime needs local weights.",
            hint="Package a local model, or deploy with runtime: llmops.",
        )
    if detail.get("format") == "gguf":
        ref = str(component.get("ref"))
        if ref in EMBEDDED_HUB_IDS:
            hub = EMBEDDED_HUB_IDS[ref]
            note = (
                f"model '{name}' ships as the embedded {ref} GGUF, which vLLM does not serve with LoRA adapters; "
                f"the runtime downloads the original weights {hub} from the Hugging Face Hub instead."
            )
            return ServedModel(name, hub_id=hub, note=note)
        raise UsageError(
            f"model '{name}' is a GGUF file ({ref}); vLLM needs a Hugging Face folder to serve it with adapters.",
            hint="Point the model's source at a Hugging Face folder or hub id, or deploy with runtime: llmops.",
        )
    return ServedModel(name, path=str(component["path"]))
