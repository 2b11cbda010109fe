"""The package layering holds: no import cycles between packages, no private names across them.

Reads the source (AST) of every module under ``llmops_cli/``, imports inside functions included: a
lazy import still ties two packages together. A *package* is a subpackage of ``llmops_cli`` (``cli``,
``config``, ``providers``...) or one of its top-level modules (``paths``, ``validation``...).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "llmops_cli"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. llmops_cli.serve.streaming
    target: str  # the module it imports from, e.g. llmops_cli.providers.local
    names: tuple[str, ...]  # the names taken from it (empty for `import x`)
    line: int

    def __str__(self) -> str:
        names = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.module}:{self.line} imports {self.target}{names}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """``llmops_cli.providers.local`` -> ``llmops_cli.providers``; the root package stays itself."""
    return ".".join(module.split(".")[:2])


@functools.cache
def is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache
def imports() -> tuple[Import, ...]:
    return tuple(_walk())


def _walk() -> Iterator[Import]:
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if not target.startswith("llmops_cli"):
                    continue
                names = tuple(a.name for a in node.names)
                for name in names:  # `from llmops_cli import paths` depends on llmops_cli.paths
                    submodule = f"{target}.{name}"
                    if is_module(submodule):
                        yield Import(module, submodule, (), node.lineno)
                    else:
                        yield Import(module, target, (name,), node.lineno)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("llmops_cli"):
                        yield Import(module, alias.name, (), node.lineno)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def cross_package(found: Import) -> bool:
    return package_of(found.module) != package_of(found.target)


def test_no_private_names_imported_across_packages() -> None:
    offending = [
        str(found)
        for found in imports()
        if cross_package(found)
        and (any(is_private(n) for n in found.names) or any(is_private(p) for p in found.target.split(".")))
    ]
    assert not offending, "private names imported across packages:\n" + "\n".join(offending)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], list[str]] = {}
    for found in imports():
        if cross_package(found):
            a, b = package_of(found.module), package_of(found.target)
            edges.setdefault(a, set()).add(b)
            where.setdefault((a, b), []).append(str(found))
    report = []
    for component in cycles(edges):
        members = set(component)
        report.append("cycle between " + ", ".join(component) + ":")
        for (a, b), lines in sorted(where.items()):
            if a in members and b in members:
                report += [f"  {line}" for line in lines]
    assert not report, "import cycles between packages:\n" + "\n".join(report)


def test_the_check_sees_a_cycle_and_a_private_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert is_private("_with_adapter") and not is_private("__version__")
    assert package_of("llmops_cli.providers.local") == "llmops_cli.providers"
    assert package_of("llmops_cli") == "llmops_cli"


def _where_things_live() -> list[tuple[set[str], list[str], list[str]]]:
    """README's "Where things live" rows: (top-level commands, CLI module files, core paths)."""
    import re

    text = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("### Where things live", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`llmops "):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        commands = {names[0].split()[1]} | {n.split()[0] for n in names[1:]}
        rows.append((commands, re.findall(r"`([^`]+)`", cells[1]), re.findall(r"`([^`]+)`", cells[2])))
    return rows


def test_readme_maps_every_command_to_its_cli_module_and_core() -> None:
    import typer.main

    from llmops_cli.cli.app import app

    rows = _where_things_live()
    assert rows, "README.md has no 'Where things live' table"
    for _commands, cli_files, core in rows:
        for name in cli_files:
            assert (ROOT / "cli" / name).is_file(), f"README names llmops_cli/cli/{name}, which does not exist"
        for path in core:
            assert (ROOT / path.rstrip("/")).exists(), f"README names llmops_cli/{path}, which does not exist"

    def modules(command: object) -> set[str]:
        found = {command.callback.__module__} if getattr(command, "callback", None) else set()  # type: ignore[attr-defined]
        for sub in getattr(command, "commands", {}).values():
            found |= modules(sub)
        return found

    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        listed = {f"llmops_cli.cli.{f.removesuffix('.py')}" for cmds, files, _ in rows if name in cmds for f in files}
        assert listed, f"README's 'Where things live' has no row for 'llmops {name}'"
        assert modules(command) <= listed, (
            f"'llmops {name}' lives in {sorted(modules(command))}, README says {sorted(listed)}"
        )
