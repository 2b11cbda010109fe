"""Entry point for the ``llmops`` console script and ``python -m llmops_cli``."""

from __future__ import annotations


def main() -> None:
    import sys

    from llmops_cli.cli.app import for_argv

    for_argv(sys.argv[1:])(prog_name="llmops")


if __name__ == "__main__":
    main()
