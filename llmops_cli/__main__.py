"""Entry point for the ``llmops`` console script and ``python -m llmops_cli``."""

from __future__ import annotations


def main() -> None:
    from llmops_cli.cli.app import app

    app(prog_name="llmops")


if __name__ == "__main__":
    main()
