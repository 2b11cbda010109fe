"""Where a model's weights come from, decided cheaply: no torch, no network, only filesystem checks.

A ``source`` in llmops.yaml is one of: an embedded default name, a local Hugging Face folder (a
directory with ``config.json``; relative to the project root), a ``.gguf`` file, or a Hugging Face
hub id. Remote models (``provider:``) have no source. :func:`resolve` says which, where and whether
it can be used here; :mod:`llmops_cli.models.materialize` turns it into a loadable folder.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llmops_cli.errors import ConfigError
from llmops_cli.filenames import MODEL_CONFIG
from llmops_cli.models.embedded import EMBEDDED_MODELS, EmbeddedModel, embedded_path, missing_message
from llmops_cli.models.hashing import cached_file_sha256
from llmops_cli.paths import llmops_home

if TYPE_CHECKING:  # config.project is light, but the config package's __init__ pulls the loader in
    from llmops_cli.config.project import ModelSpec, ProjectConfig

ModelKind = Literal["embedded", "hf_folder", "gguf", "hub", "remote"]

# "org/name" or a legacy bare "name" (gpt2); the same characters the hub accepts.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSET_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
MARKER_NAME = ".llmops-materialized.json"  # written last: a folder without it is not a valid cache


@dataclass
class ResolvedModel:
    """A model entry located on this machine (or not), for loading, listing and lineage."""

    name: str
    kind: ModelKind
    source: str | None  # as written in llmops.yaml (None for remote models)
    path: Path | None  # HF folder to load from, the .gguf file, or None (not materialized / not here)
    available: bool
    detail: str  # where it is, or why it is not usable and what to do
    gguf_file: Path | None = None  # the GGUF behind a gguf / embedded-gguf model
    commit: str | None = None  # hub snapshot commit
    base_url: str | None = None  # remote only
    model: str | None = None  # remote only
    embedded: EmbeddedModel | None = None


def resolve(spec: ModelSpec, project_root: Path) -> ResolvedModel:
    """Locate ``spec`` without loading anything; relative paths resolve against ``project_root``."""
    if spec.is_remote:
        return _resolve_remote(spec)
    if not spec.source:
        raise ConfigError(
            f"Model '{spec.name}' has neither 'source' nor 'provider'.",
            hint="Give it source: smollm2-135m-instruct (or a folder, .gguf or hub id), or a provider.",
        )
    source = spec.source
    if source in EMBEDDED_MODELS:
        return _resolve_embedded(spec.name, EMBEDDED_MODELS[source])
    path = local_path(source, project_root)
    if source.lower().endswith(".gguf"):
        return _resolve_gguf(spec.name, source, path)
    if path.exists() or not _HUB_ID.match(source):
        return _resolve_folder(spec.name, source, path)
    return _resolve_hub(spec, project_root)


def list_models(config: ProjectConfig, *, include_embedded: bool = False) -> list[ResolvedModel]:
    """Every model declared in llmops.yaml (plus, if asked, the embedded defaults no entry uses)."""
    resolved = [resolve(spec, config.root) for spec in config.models.values()]
    if include_embedded:
        used = {spec.source for spec in config.models.values()}
        resolved += [_resolve_embedded(name, m) for name, m in EMBEDDED_MODELS.items() if name not in used]
    return resolved


def local_path(source: str, project_root: Path) -> Path:
    path = Path(os.path.expanduser(source))
    return path if path.is_absolute() else project_root / path


def materialized_dir(safe_name: str, sha256_hex: str) -> Path:
    """The dequantized cache folder of a GGUF: keyed by content, so a changed file gets a new folder."""
    return llmops_home() / "models" / f"{safe_name}-{sha256_hex[:16]}"


def safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def is_materialized(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def hf_hub_cache_dir() -> Path:
    """huggingface_hub's cache directory, read from the environment now (its constants freeze at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.path.expanduser(os.environ[var])))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.path.expanduser(os.environ["HF_HOME"]))) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def find_hub_snapshot(repo_id: str, revision: str | None = None) -> tuple[Path, str] | None:
    """(snapshot folder, commit) of a hub model already in the local cache with its config.json.

    Follows the cache layout huggingface_hub documents (models--org--name/refs/<rev> holds the
    commit, snapshots/<commit>/ the files), the same walk as ``try_to_load_from_cache``.
    """
    repo_dir = hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    rev = revision or "main"
    ref = repo_dir / "refs" / rev
    commit = ref.read_text().strip() if ref.is_file() else rev
    snapshot = repo_dir / "snapshots" / commit
    if (snapshot / MODEL_CONFIG).is_file():
        return snapshot, commit
    return None


def _resolve_embedded(name: str, model: EmbeddedModel) -> ResolvedModel:
    path = embedded_path(model)
    base = ResolvedModel(name, "embedded", model.name, None, False, "", embedded=model)
    if path is None:
        message, hint = missing_message(model)
        base.detail = f"{message} {hint}"
        return base
    base.available = True
    if model.format == "hf_folder":
        base.path = path
        base.detail = f"embedded {model.purpose}, in package {model.pip_name}: {path}"
        return base
    base.gguf_file = path
    base.path, base.detail = _gguf_cache_state(model.name, path, f"embedded {model.purpose}")
    if base.path is None and model.first_use_s:
        base.detail += f" (~{model.first_use_s} s)"
    return base


def _resolve_gguf(name: str, source: str, path: Path) -> ResolvedModel:
    if not path.is_file():
        return ResolvedModel(
            name,
            "gguf",
            source,
            path,
            False,
            f"No GGUF file at {path}. Fix 'source:' (relative paths start at the project root).",
        )
    _, state = _gguf_cache_state(safe_name(path.stem), path, f"GGUF file {path}")
    return ResolvedModel(name, "gguf", source, path, True, state, gguf_file=path)


def _gguf_cache_state(key: str, gguf: Path, what: str) -> tuple[Path | None, str]:
    """(cache folder or None, detail); only reuses a hash computed before, so this stays cheap."""
    digest = cached_file_sha256(gguf)
    if digest is not None:
        folder = materialized_dir(key, digest)
        if is_materialized(folder):
            return folder, f"{what}; dequantized cache at {folder}"
    return None, f"{what}; will be dequantized on first use"


def _resolve_folder(name: str, source: str, path: Path) -> ResolvedModel:
    if (path / MODEL_CONFIG).is_file():
        return ResolvedModel(name, "hf_folder", source, path, True, f"Hugging Face folder {path}")
    if path.is_dir():
        why = f"{path} has no config.json, so it is not a Hugging Face model folder."
    elif path.exists():
        why = f"{path} is a file, not a Hugging Face folder or a .gguf."
    else:
        why = f"No folder {path}."
    close = difflib.get_close_matches(source, list(EMBEDDED_MODELS), n=1)
    fix = f" Did you mean the embedded '{close[0]}'?" if close else " Fix 'source:' in llmops.yaml."
    return ResolvedModel(name, "hf_folder", source, path, False, why + fix)


def _resolve_hub(spec: ModelSpec, project_root: Path) -> ResolvedModel:
    source = spec.source or ""
    found = find_hub_snapshot(source, spec.revision)
    if found is not None:
        snapshot, commit = found
        return ResolvedModel(
            spec.name,
            "hub",
            source,
            snapshot,
            True,
            f"hub model {source} in the local cache: {snapshot}",
            commit=commit,
        )
    at = f"@{spec.revision}" if spec.revision else ""
    detail = (
        f"Hub model '{source}{at}' is not in the local Hugging Face cache ({hf_hub_cache_dir()}) and llmops "
        f"never downloads (works offline). On a connected machine run 'hf download {source}' "
        f"(or 'hf download {source} --local-dir models/{source.split('/')[-1]}'), copy the folder here "
        "and point 'source:' at it."
    )
    # "models/my-model" or "my-model" could equally be a local folder the user forgot to copy.
    detail += f" (There is no local folder {local_path(source, project_root)} either.)"
    close = difflib.get_close_matches(source, list(EMBEDDED_MODELS), n=1)
    if close:
        detail += f" Did you mean the embedded '{close[0]}'?"
    return ResolvedModel(spec.name, "hub", source, None, False, detail)


def _resolve_remote(spec: ModelSpec) -> ResolvedModel:
    base_url, model = spec.base_url or "", spec.model or ""
    detail = f"{spec.provider} API at {base_url}, model {model} (not contacted)"
    resolved = ResolvedModel(spec.name, "remote", None, None, True, detail, base_url=base_url, model=model)
    unset = _UNSET_VAR.search(base_url)
    if unset:  # the loader leaves ${VAR} as written when the variable is missing
        resolved.available = False
        resolved.detail = f"base_url needs the environment variable {unset.group(1)}, which is not set."
    elif spec.api_key_env and not os.environ.get(spec.api_key_env):
        resolved.available = False
        resolved.detail = f"API key variable {spec.api_key_env} is not set; export it to use '{spec.name}'."
    return resolved
