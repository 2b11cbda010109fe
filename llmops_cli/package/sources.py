"""Where each piece of a package comes from: registered artifacts and model weights.

A registered artifact (adapter, quantized model, index, eval result) is read through its
``artifact.json``: each file from the work tree when it is there at the registered size, else from
the content store, and its registered sha256 is kept so the build can refuse a work-tree file that
was edited after registration. Models are shipped as their weights: a GGUF as is (the embedded
SmolLM2 is its 98 MB Q4_1 GGUF, about a fifth of the dequantized float32 folder; the bundle
dequantizes it once on first use, as any project does), an HF folder or hub snapshot file by file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UnavailableError, UsageError, VersioningError
from llmops_cli.filenames import MODEL_CONFIG
from llmops_cli.package.archive import Entry
from llmops_cli.versioning.artifacts import MANIFEST

if TYPE_CHECKING:
    from llmops_cli.config.project import ModelSpec, ProjectConfig
    from llmops_cli.config.quantized import QuantizedSpec
    from llmops_cli.versioning import ArtifactRegistry

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


@dataclass(frozen=True)
class Component:
    """One thing the package contains, for the manifest, the model card and the lineage inputs."""

    kind: str  # quantized, adapter, index, eval, model, prompt, chain, dataset, embedding
    name: str
    ref: str  # quantized/base-4bit@v2, a source path, pip:...
    hash: str  # sha256:... of what identifies it
    version: int | None = None
    path: str | None = None  # where it sits in the bundle
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "version": self.version, "ref": self.ref}
        out.update({"hash": self.hash, "path": self.path})
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class Registered:
    """A registered artifact as checked out in the work tree."""

    kind: str
    name: str
    version: int
    manifest: dict[str, Any]
    files: dict[str, Path]  # relative path -> readable file (work tree or content store)
    shas: dict[str, str]  # relative path -> registered sha256
    folder: Path
    hash: str  # sha256 of artifact.json: it lists every file's hash, so it names the content

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}@v{self.version}"

    def entries(self, prefix: str) -> tuple[list[Entry], dict[str, str]]:
        """Bundle entries under ``prefix`` (artifact.json included) and their expected hashes."""
        entries = [Entry(f"{prefix}/{MANIFEST}", source=self.folder / MANIFEST)]
        expected = {}
        for rel, source in sorted(self.files.items()):
            entries.append(Entry(f"{prefix}/{rel}", source=source))
            expected[f"{prefix}/{rel}"] = self.shas[rel]
        return entries, expected

    def component(self, path: str | None, **detail: Any) -> Component:
        return Component(self.kind, self.name, self.ref, self.hash, self.version, path, dict(detail))


def registered(registry: ArtifactRegistry, kind: str, name: str, *, hint: str) -> Registered:
    """The checked-out version of ``kind/name``; ``hint`` says how to build it when it is missing."""
    folder = registry.folder(kind, name)
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        where = folder.relative_to(registry.project_root) if folder.is_relative_to(registry.project_root) else folder
        raise UsageError(f"{kind} '{name}' has not been built yet ({where}/ has no {MANIFEST}).", hint=hint)
    raw = manifest_file.read_bytes()
    origin = f"{folder.relative_to(registry.project_root) if folder.is_relative_to(registry.project_root) else folder}"
    try:
        manifest = json.loads(raw)
        version = int(manifest.get("version", 0))
        items = [(str(i["path"]), i["sha256"], int(i["size"])) for i in manifest.get("files", [])]
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise VersioningError(f"{origin}/{MANIFEST} is not a valid artifact manifest ({error})") from None
    files, shas = {}, {}
    for rel, sha, size in items:
        check_manifest_entry(rel, sha, f"{origin}/{MANIFEST}")
        local = folder / rel
        if local.is_file() and local.stat().st_size == size:
            files[rel] = local
        elif registry.store.has(sha):
            files[rel] = registry.store.object_path(sha)
        else:
            raise UnavailableError(
                f"{kind}/{name}@v{version}: {rel} is neither in the work tree nor in the local content store.",
                hint=f"Run 'llmops pull' (or 'llmops checkout {kind}/{name}@v{version}').",
            )
        shas[rel] = sha
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Registered(kind, name, version, manifest, files, shas, folder, digest)


def check_manifest_entry(rel: str, sha: Any, origin: str, *, folder: Path | None = None) -> None:
    """A manifest entry names a file inside its artifact folder, by a real sha256 digest.

    The path must be relative without ``..``; with ``folder``, a file there must also resolve inside
    it (a symlink out of the folder is refused).
    """
    from llmops_cli.versioning.store import check_digest

    parts = rel.replace("\\", "/").split("/")
    if not rel or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":") or ".." in parts or "\x00" in rel:
        raise VersioningError(
            f"{origin}: file path {rel!r} leaves the artifact folder",
            hint="The manifest was edited by hand or crafted; restore it with 'llmops checkout'.",
        )
    check_digest(sha, origin=f"{origin}: {rel}")
    if folder is None:
        return
    local = folder / rel
    if local.exists() and not local.resolve().is_relative_to(folder.resolve()):
        raise VersioningError(
            f"{origin}: {rel} is a link that resolves outside the artifact folder ({local.resolve()})",
            hint="Replace it with the file itself (e.g. 'llmops checkout' restores the folder).",
        )


# -- models ------------------------------------------------------------------------------------------


@dataclass
class ShippedModel:
    """A model as the bundle carries it: its llmops.yaml entry there, its files, its memory need."""

    name: str
    kind: str  # quantized, gguf, hf_folder, hub, remote
    entry: dict[str, Any]
    files: list[Entry] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)
    runtime_bytes: int = 0  # weights in memory once loaded (estimate)
    component: Component | None = None
    bits: int | None = None  # bitsandbytes 4 / 8
    note: str = ""
    llama_cpp: bool = False  # needs the llama.cpp engine to run (a GGUF build)


def ship_quantized(
    config: ProjectConfig, registry: ArtifactRegistry, name: str, raw_doc: dict[str, Any]
) -> ShippedModel:
    """A ``quantized:`` entry: its built HF folder, served in the bundle as a plain local model."""
    entry = config.quantized[name]
    art = registered(registry, "quantized", name, hint=f"Run 'llmops quantize {name}'.")
    if entry.method == "gguf":
        return _ship_gguf_build(config, art, name, entry, raw_doc)
    if MODEL_CONFIG not in art.files:
        raise UsageError(f"quantized/{name}@v{art.version} has no config.json; it is not a model folder.",
                         hint=f"Run 'llmops quantize {name}' again.")  # fmt: skip
    prefix = f"artifacts/quantized/{name}"
    files, expected = art.entries(prefix)
    base_raw = (raw_doc.get("models") or {}).get(entry.model) or {}
    # No dtype: bitsandbytes weights load as saved. The base's loading options still apply.
    bundle_entry: dict[str, Any] = {"source": prefix}
    for key in ("trust_remote_code", "chat_template", "max_context"):
        if base_raw.get(key) is not None:
            bundle_entry[key] = base_raw[key]
    bits = entry.bits or None
    what = f"{bits}-bit" + (f" {entry.quant_type}" if bits == 4 else "")
    merged = f" with adapter {entry.adapter} merged" if entry.adapter and entry.merge else ""
    bundle_entry["description"] = str(entry.description or f"{what} quantization of {entry.model}{merged}")
    weights = sum(p.stat().st_size for rel, p in art.files.items() if _is_weight(rel))
    quant_type = entry.quant_type if "quant_type" in entry.declared else None  # as written: none when defaulted
    component = art.component(prefix, bits=bits, quant_type=quant_type, base=entry.model)
    note = f"{name} is bitsandbytes {what}: bitsandbytes >= 0.49 runs it on CPU; on a CUDA GPU its kernels are used."
    return ShippedModel(name, "quantized", bundle_entry, files, expected, weights, component, bits, note)


def _ship_gguf_build(
    config: ProjectConfig, art: Any, name: str, entry: QuantizedSpec, raw_doc: dict[str, Any]
) -> ShippedModel:
    """A ``method: gguf`` build: its GGUF, served in the bundle on llama.cpp."""
    from llmops_cli.engines.gguf import GGUF_NAME

    if GGUF_NAME not in art.files:
        raise UsageError(
            f"quantized/{name}@v{art.version} has no {GGUF_NAME}.", hint=f"Run 'llmops quantize {name}' again."
        )
    prefix = f"artifacts/quantized/{name}"
    files, expected = art.entries(prefix)
    base_raw = (raw_doc.get("models") or {}).get(entry.model) or {}
    bundle_entry: dict[str, Any] = {"source": f"{prefix}/{GGUF_NAME}", "runtime": "llama-cpp"}
    for key in ("chat_template", "max_context", "parallel", "threads"):
        if base_raw.get(key) is not None:
            bundle_entry[key] = base_raw[key]
    merged = f" with adapter {entry.adapter} merged" if entry.adapter and entry.merge else ""
    what = f"GGUF {entry.gguf_type}"
    bundle_entry["description"] = str(entry.description or f"{what} of {entry.model}{merged}")
    weights = sum(p.stat().st_size for rel, p in art.files.items() if _is_weight(rel))
    component = art.component(prefix, base=entry.model, format="gguf", file=GGUF_NAME, type=entry.gguf_type)
    note = (
        f"{name} is {what}: it runs on llama.cpp (llama-cpp-python; `python -m llmops_cli.engines.install` builds it)."
    )
    return ShippedModel(
        name, "quantized", bundle_entry, files, expected, weights, component, None, note, llama_cpp=True
    )


def ship_model(config: ProjectConfig, spec: ModelSpec, raw_entry: dict[str, Any]) -> ShippedModel:
    """A ``models:`` entry with its weights (none for a remote model)."""
    from llmops_cli.models import fingerprint, resolve

    if spec.is_remote:
        note = f"{spec.name} is called over HTTP ({raw_entry.get('base_url')}); it has no weights in the package."
        component = Component("model", spec.name, f"{spec.provider}:{raw_entry.get('model')}", "", path=None)
        return ShippedModel(spec.name, "remote", dict(raw_entry), component=component, note=note)
    resolved = resolve(spec, config.root)
    if not resolved.available:
        fingerprint(resolved)  # raises the resolver's error, with the exact fix
    entry = {k: v for k, v in raw_entry.items() if k != "revision"}
    prefix = f"model/{spec.name}"
    dtype = _load_dtype(spec.dtype)
    if resolved.gguf_file is not None:
        gguf = resolved.gguf_file
        entry["source"] = f"{prefix}/{gguf.name}"
        files = [Entry(entry["source"], source=gguf)]
        runtime = _gguf_runtime_bytes(gguf, dtype)
        kind = "gguf"
    else:
        assert resolved.path is not None
        folder = resolved.path
        files = [Entry(f"{prefix}/{rel}", source=path) for rel, path in folder_files(folder)]
        entry["source"] = prefix
        runtime = _folder_runtime_bytes(folder, dtype)
        kind = resolved.kind
    ref = resolved.source or spec.name
    component = Component("model", spec.name, ref, fingerprint(resolved), path=prefix, detail={"format": kind})
    return ShippedModel(spec.name, kind, entry, files, {}, runtime, component)


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file of a model folder (through symlinks, as hub snapshots are), hidden ones left out."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    return found


def _is_weight(rel: str) -> bool:
    return rel.endswith((".safetensors", ".bin", ".gguf")) and not rel.startswith(("training_args", "optimizer"))


def _load_dtype(name: str) -> str:
    return "float32" if name == "auto" else name  # auto means float32 on CPU (see models.torch_dtype)


def _folder_runtime_bytes(folder: Path, load_dtype: str) -> int:
    """Weight bytes once loaded in ``load_dtype``: on-disk size scaled by the dtype ratio."""
    on_disk = sum(p.stat().st_size for rel, p in folder_files(folder) if _is_weight(rel))
    try:
        config = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if isinstance(config.get("quantization_config"), dict):
        return on_disk  # pre-quantized weights load as stored
    saved = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    ratio = _DTYPE_BYTES.get(load_dtype, 4) / _DTYPE_BYTES.get(saved, 4)
    return int(on_disk * ratio)


def _gguf_runtime_bytes(gguf: Path, load_dtype: str) -> int:
    """Parameters counted from the GGUF's tensor table times the load dtype's width."""
    try:
        from gguf import GGUFReader

        params = sum(int(t.n_elements) for t in GGUFReader(str(gguf)).tensors)
    except Exception:  # no gguf package or an unreadable header: a Q4 file holds ~0.56 bytes/param
        params = int(gguf.stat().st_size / 0.5625)
    return params * _DTYPE_BYTES.get(load_dtype, 4)


def adapter_runtime_bytes(art: Registered) -> int:
    return sum(p.stat().st_size for rel, p in art.files.items() if _is_weight(rel))
