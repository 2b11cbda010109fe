"""The typed project configuration every command works from.

``ProjectConfig.from_dict`` is called on a document that already passed JSON Schema validation
(see :mod:`llmops_cli.config.loader`), so it can trust shapes; defaults live here and in the schema.
Every section is parsed once into frozen dataclasses (one module per section beside this one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.config.adapters import AdapterSpec, parse_adapters
from llmops_cli.config.chains import ChainSpec, parse_chains
from llmops_cli.config.deployments import DeploymentSpec, parse_deployments
from llmops_cli.config.evals import EvalSuiteSpec, parse_evals
from llmops_cli.config.monitor import MonitorSpec, parse_monitor
from llmops_cli.config.packages import PackageSpec, parse_packages
from llmops_cli.config.quantized import QuantizedSpec, parse_quantized
from llmops_cli.config.retrievers import RetrieverSpec, parse_retrievers

DEFAULT_STORE_THRESHOLD = 1024 * 1024  # files above 1 MiB go to the content store


def _parse_size(value: int | str | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = value.strip().upper().replace("IB", "B")
    units = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)].strip()) * factor)
    return int(text)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class ModelSpec:
    """A model entry: a local ``source`` (embedded name, HF folder, .gguf, hub id) or a remote ``provider``.

    ``quantized`` and ``gguf_build`` are set only on the specs :mod:`llmops_cli.providers.quantized` makes
    for a built ``quantized:`` entry (its name, and the built .gguf file for ``method: gguf``).
    """

    name: str
    source: str | None = None
    provider: str | None = None
    dtype: str = "auto"
    revision: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    max_context: int | None = None
    runtime: str = "auto"
    parallel: int | None = None
    threads: int | None = None
    timeout_s: float | None = None  # remote only; None: the provider's default
    max_retries: int | None = None  # remote only; None: the provider's default
    headers: Mapping[str, str] | None = field(default=None, compare=False)  # remote only
    quantized: str | None = None
    gguf_build: str | None = None
    description: str | None = None

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> ModelSpec:
        """The spec of ``models.NAME`` (already schema-checked)."""
        return cls(
            name=name,
            source=spec.get("source"),
            provider=spec.get("provider"),
            dtype=spec.get("dtype", "auto"),
            revision=spec.get("revision"),
            base_url=spec.get("base_url"),
            model=spec.get("model"),
            api_key_env=spec.get("api_key_env"),
            trust_remote_code=bool(spec.get("trust_remote_code", False)),
            chat_template=spec.get("chat_template"),
            max_context=_optional_int(spec.get("max_context")),
            runtime=str(spec.get("runtime") or "auto"),
            parallel=_optional_int(spec.get("parallel")),
            threads=_optional_int(spec.get("threads")),
            timeout_s=None if spec.get("timeout_s") is None else float(spec["timeout_s"]),
            max_retries=_optional_int(spec.get("max_retries")),
            headers=dict(spec["headers"]) if spec.get("headers") is not None else None,
            quantized=spec.get("quantized"),
            gguf_build=None if spec.get("gguf_build") is None else str(spec["gguf_build"]),
            description=spec.get("description"),
        )

    @property
    def is_remote(self) -> bool:
        return self.provider is not None


@dataclass(frozen=True)
class PromptRef:
    name: str
    file: str
    allow_outside: bool = False
    description: str | None = None

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> PromptRef:
        return cls(
            name,
            spec["file"],
            allow_outside=spec.get("allow_outside") is True,
            description=spec.get("description"),
        )


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: str
    format: str
    file_format: str = "auto"
    fields: Mapping[str, str] = field(default_factory=dict, compare=False)  # column renames
    allow_outside: bool = False
    description: str | None = None

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> DatasetSpec:
        return cls(
            name,
            spec["path"],
            spec["format"],
            file_format=str(spec.get("file_format", "auto")),
            fields=dict(spec.get("fields") or {}),
            allow_outside=spec.get("allow_outside") is True,
            description=spec.get("description"),
        )


@dataclass(frozen=True)
class StorageSpec:
    remote: str | None = None
    threshold: int = DEFAULT_STORE_THRESHOLD
    artifacts_dir: str = "artifacts"


@dataclass(frozen=True)
class ProjectConfig:
    """``llmops.yaml`` loaded, validated and typed. ``root`` is the project directory."""

    root: Path
    path: Path
    name: str
    version: int
    storage: StorageSpec
    models: dict[str, ModelSpec]
    prompts: dict[str, PromptRef]
    datasets: dict[str, DatasetSpec]
    retrievers: dict[str, RetrieverSpec]
    chains: dict[str, ChainSpec]
    adapters: dict[str, AdapterSpec]
    evals: dict[str, EvalSuiteSpec]
    quantized: dict[str, QuantizedSpec]
    packages: dict[str, PackageSpec]
    deployments: dict[str, DeploymentSpec]
    monitor: MonitorSpec
    data: dict[str, Any] = field(repr=False, compare=False)
    # The document as written (``${VAR}`` not expanded), when the loader has it: read-only.
    written: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, root: Path, path: Path, written: dict[str, Any] | None = None
    ) -> ProjectConfig:
        storage = data.get("storage") or {}
        return cls(
            root=root,
            path=path,
            name=data["name"],
            version=int(data["version"]),
            storage=StorageSpec(
                remote=storage.get("remote"),
                threshold=_parse_size(storage.get("threshold"), DEFAULT_STORE_THRESHOLD),
                artifacts_dir=storage.get("artifacts_dir", "artifacts"),
            ),
            models={k: ModelSpec.from_dict(k, v) for k, v in (data.get("models") or {}).items()},
            prompts={k: PromptRef.from_dict(k, v) for k, v in (data.get("prompts") or {}).items()},
            datasets={k: DatasetSpec.from_dict(k, v) for k, v in (data.get("datasets") or {}).items()},
            retrievers=parse_retrievers(data.get("retrievers")),
            chains=parse_chains(data.get("chains")),
            adapters=parse_adapters(data.get("adapters")),
            evals=parse_evals(data.get("evals")),
            quantized=parse_quantized(data.get("quantized")),
            packages=parse_packages(data.get("packages")),
            deployments=parse_deployments(data.get("deployments")),
            monitor=parse_monitor(data.get("monitor")),
            data=data,
            written=written,
        )

    def section_hash(self, section: str, name: str | None = None) -> str:
        """sha256 of one section (or one entry of it), canonical JSON: the config hash in lineage."""
        value = self.data.get(section) or {}
        if name is not None:
            value = value.get(name)
        blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    def resolve_path(self, relative: str) -> Path:
        """A path from the config, relative to the project root."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path
