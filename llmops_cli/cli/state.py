"""Global options (``--project``, ``-v``, ``-q``) shared by every command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.versioning import ArtifactRegistry


@dataclass
class State:
    project: Path | None = None
    verbose: int = 0
    quiet: bool = False

    @property
    def debug(self) -> bool:
        return self.verbose > 0 or os.environ.get("LLMOPS_DEBUG", "") not in ("", "0")

    def project_root(self) -> Path:
        from llmops_cli.paths import project_root_from_option

        return project_root_from_option(self.project)

    def config(self) -> ProjectConfig:
        from llmops_cli.validation import load_config

        return load_config(self.project_root())

    def registry(self) -> ArtifactRegistry:
        from llmops_cli.versioning import ArtifactRegistry

        return ArtifactRegistry.for_config(self.config())


STATE = State()
