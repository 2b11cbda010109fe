"""What produced an answer: git commit, package, model, adapter and prompt versions, as logged.

Versions are written ``NAME@VERSION``: ``vN`` for registered artifacts (from their
``artifact.json``), ``sha256:<12 hex>`` for a base model's weights and a prompt file's bytes. All of
it is looked up once and remembered; nothing here loads a model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.serve.options import PACKAGE_MANIFEST

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig


class Provenance:
    """Version lookups for one served project (an llmops project or an unpacked package)."""

    def __init__(self, config: ProjectConfig, *, package: str | None = None) -> None:
        self.config = config
        self.package_name = package
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], str | None] = {}
        self.manifest = _read_json(config.root / PACKAGE_MANIFEST)
        # An unpacked package records the commit it was built from; its folder is not that repository.
        self.git_sha = _first_str(self.manifest, "git_sha", "git_commit", "commit") or _git_head(config.root)

    @property
    def package(self) -> str | None:
        """``NAME@vN`` of the served package (from the unpacked manifest or the registered artifact)."""
        if self.package_name is None:
            return None
        version = _first_str(self.manifest, "version") if self.manifest else None
        if version is None:
            version = self.artifact_version("package", self.package_name)
        elif not version.startswith("v") and version.isdigit():
            version = f"v{version}"
        return _at(self.package_name, version)

    def artifact_version(self, kind: str, name: str) -> str | None:
        """``vN`` from ``artifacts/KIND/NAME/artifact.json``, or None when there is none."""
        return self._remember(("artifact", f"{kind}/{name}"), lambda: self._read_artifact_version(kind, name))

    def adapter(self, name: str | None) -> str | None:
        return None if name is None else _at(name, self.artifact_version("adapter", name))

    def model(self, name: str | None) -> str | None:
        """``NAME@vN`` for quantized models, ``NAME@sha256:...`` for models, as far as known."""
        if name is None:
            return None
        if name in self.config.quantized:
            return _at(name, self.artifact_version("quantized", name))
        return _at(name, self._remember(("model", name), lambda: self._model_fingerprint(name)))

    def prompts(self, names: list[str]) -> str | None:
        """``answer@sha256:...,classify@sha256:...`` for the prompt files a chain uses."""
        parts = [_at(n, self._remember(("prompt", n), functools.partial(self._prompt_hash, n))) for n in names]
        return ",".join(parts) or None

    def _remember(self, key: tuple[str, str], compute: Callable[[], str | None]) -> str | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = compute()  # outside the lock: hashing a model must not block other lookups
        with self._lock:
            self._cache[key] = value
        return value

    def _read_artifact_version(self, kind: str, name: str) -> str | None:
        from llmops_cli.versioning import ArtifactRegistry

        version = ArtifactRegistry.for_config(self.config).checked_out_manifest(kind, name).get("version")
        return f"v{version}" if isinstance(version, int) else None

    def _model_fingerprint(self, name: str) -> str | None:
        if name not in self.config.models:
            return None
        from llmops_cli.errors import LlmopsError
        from llmops_cli.models.identity import identity

        try:
            digest = identity(self.config, name).fingerprint()
        except (LlmopsError, OSError):
            return None
        return digest[: len("sha256:") + 12]

    def _prompt_hash(self, name: str) -> str | None:
        ref = self.config.prompts.get(name)
        if ref is None:
            return None
        try:
            data = self.config.resolve_path(ref.file).read_bytes()
        except OSError:
            return None
        return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def _at(name: str, version: str | None) -> str:
    return f"{name}@{version}" if version else name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first_str(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    return None


def _git_head(root: Path) -> str | None:
    """HEAD of the repository holding ``root`` (git's own CLI: no gitpython import for one value)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and len(sha) >= 40 else None
