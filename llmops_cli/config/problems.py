"""Problems found in project files, formatted ``file:LINE:COL: key.path: message``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from llmops_cli.config.yamlpos import Located, Path_


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


@dataclass(frozen=True)
class Finding:
    """Something that will fail at run time, found without running anything (see
    :mod:`llmops_cli.chains.analysis`). ``path``: where in llmops.yaml; ``kind`` for callers."""

    path: Path_
    message: str
    kind: str
    variable: str | None = None
    at_key: bool = False  # point at the key (e.g. `vars:`) rather than at its value


class ProblemList:
    """Collects problems against one located document."""

    def __init__(self, located: Located, display_name: str) -> None:
        self.located = located
        self.display_name = display_name
        self.items: list[Problem] = []

    def add(self, path: Path_, message: str, *, at_key: bool = False) -> None:
        line, col = self.located.mark(path, key=at_key)
        problem = Problem(self.display_name, line, col, format_path(path), message)
        if problem not in self.items:
            self.items.append(problem)
