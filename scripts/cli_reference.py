"""Regenerate (``--write``) or check the README's CLI reference from the commands' ``--help``."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _help(args: list[str]) -> str:
    from typer.testing import CliRunner

    from llmops_cli.cli.app import app

    os.environ["COLUMNS"] = "100"
    os.environ["NO_COLOR"] = "1"
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="llmops", terminal_width=100)
    return result.stdout.rstrip() + "\n"


def _commands(args: list[str]) -> list[list[str]]:
    """Every command path, depth first, from the click command tree."""
    import typer.main

    from llmops_cli.cli.app import app

    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        out.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(root, args)
    return out


def render() -> str:
    parts = []
    for path in _commands([]):
        title = " ".join(["llmops", *path])
        parts.append(f"### `{title}`\n\n```\n{_help(path)}```\n")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: f"{START}\n{render()}{END}", text, flags=re.S)
    if args.write:
        README.write_text(new)
        return 0
    if new != text:
        print("README CLI reference is out of date: run python scripts/cli_reference.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
