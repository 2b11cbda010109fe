"""``packages:`` entries, typed: what a deployable package serves and what else it ships."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PackageSpec:
    """One ``packages.NAME`` entry: a chain and/or a model (with an adapter), plus extras to ship."""

    name: str
    chain: str | None = None
    model: str | None = None  # a model or quantized model; on a chain package it replaces the steps' models
    adapter: str | None = None
    prompts: tuple[str, ...] = ()  # extra prompts (those the chain uses are shipped anyway)
    retrievers: tuple[str, ...] = ()  # extra retrievers
    include: tuple[str, ...] = ()  # glob patterns of extra files, relative to the project root
    description: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the entry as written


def parse_package(name: str, entry: Mapping[str, Any]) -> PackageSpec:
    return PackageSpec(
        name=name,
        chain=entry.get("chain"),
        model=entry.get("model"),
        adapter=entry.get("adapter"),
        prompts=tuple(entry.get("prompts") or ()),
        retrievers=tuple(entry.get("retrievers") or ()),
        include=tuple(entry.get("include") or ()),
        description=entry.get("description"),
        raw=dict(entry),
    )


def parse_packages(section: Mapping[str, Any] | None) -> dict[str, PackageSpec]:
    """The ``packages:`` section: package name -> spec."""
    return {name: parse_package(name, entry) for name, entry in (section or {}).items()}
