"""Artifact versioning in git: content store, pointer files, registration, lineage, push/pull."""

from llmops_cli.versioning.artifacts import (
    KINDS,
    ArtifactRef,
    ArtifactRegistry,
    ArtifactVersion,
    Input,
    parse_trailers,
)
from llmops_cli.versioning.store import ContentStore, Pointer, sha256_file

__all__ = [
    "KINDS",
    "ArtifactRef",
    "ArtifactRegistry",
    "ArtifactVersion",
    "ContentStore",
    "Input",
    "Pointer",
    "parse_trailers",
    "sha256_file",
]
