"""The typer subclass every command group uses: one place that turns errors into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from llmops_cli.cli.state import STATE
from llmops_cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, ConfigError, LlmopsError


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print an :class:`LlmopsError` as one clear message and exit with its documented code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmops_cli.cli.output import error

        try:
            return fn(*args, **kwargs)
        except LlmopsError as exc:
            _maybe_traceback()
            details = exc.problems if isinstance(exc, ConfigError) else None
            error(exc.message, exc.hint, details)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so plainly, traceback only on request
            _maybe_traceback()
            error(
                f"internal error: {type(exc).__name__}: {exc}",
                "This is a bug in llmops. Rerun with --verbose (or LLMOPS_DEBUG=1) and report the traceback.",
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def _maybe_traceback() -> None:
    if STATE.debug:
        import traceback

        traceback.print_exc()


class LlmopsTyper(typer.Typer):
    """``typer.Typer`` whose commands report llmops errors with their exit codes."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register(report_errors(fn))
            return fn

        return decorator


def default_command_group(default: str, *, default_takes_options: bool = True) -> type[TyperGroup]:
    """A group class whose unknown first word is the argument of its ``default`` command.

    ``llmops tune ADAPTER`` is ``llmops tune run ADAPTER``; an argument named like one of the group's
    commands needs the long form. With ``default_takes_options=False`` a first word starting with ``-``
    is left to the group itself instead of going to ``default``.
    """

    class DefaultCommandGroup(TyperGroup):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            first = args[0] if args else None
            if (
                first is not None
                and first not in self.commands
                and first not in ctx.help_option_names
                and (default_takes_options or not first.startswith("-"))
            ):
                args = [default, *args]
            return super().parse_args(ctx, args)

    DefaultCommandGroup.default_command = default  # type: ignore[attr-defined]  # read by app.for_argv
    DefaultCommandGroup.__name__ = f"Default{default.title()}Group"
    return DefaultCommandGroup
