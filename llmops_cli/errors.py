"""One root exception and the documented exit codes.

Every error a user can act on is a subclass of :class:`LlmopsError`; the CLI entry point prints
its message (and ``hint``) on one line each and exits with its ``exit_code``. Anything else is a
bug and exits with :data:`EXIT_INTERNAL` (traceback only with ``--verbose`` / ``LLMOPS_DEBUG=1``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1  # an unexpected error (a bug): please report it
EXIT_USAGE = 2  # bad command-line usage or an invalid llmops.yaml / project file
EXIT_DEPENDENCY = 3  # an optional dependency is missing; the message gives the pip command
EXIT_VERSIONING = 4  # git or artifact-store problem (not a repo, dirty path, missing object, ...)
EXIT_GATE = 5  # a quality gate failed (eval thresholds, monitor alerts, quantization drop)
EXIT_BREAKING = 6  # `prompt diff --fail-on-breaking` found a breaking change
EXIT_UNAVAILABLE = 7  # a model, artifact or remote is not available here (offline, not downloaded)
EXIT_EVAL_ERRORS = 8  # eval cases errored (the target failed them); `llmops eval --allow-errors` accepts them
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "unexpected internal error (a bug; rerun with --verbose and report it)",
    EXIT_USAGE: "usage error or invalid project configuration",
    EXIT_DEPENDENCY: "an optional dependency is missing (the message names the pip install)",
    EXIT_VERSIONING: "git / versioning / artifact store error",
    EXIT_GATE: "a quality gate failed (eval thresholds, monitor alerts, quantization quality drop)",
    EXIT_BREAKING: "prompt diff found a breaking change (--fail-on-breaking)",
    EXIT_UNAVAILABLE: "a model, artifact or remote is not available locally",
    EXIT_EVAL_ERRORS: "eval cases errored (the target failed; --allow-errors accepts them)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class LlmopsError(Exception):
    """Root of every error llmops reports to a user.

    ``hint`` says what to do next ("Run 'llmops pull'"); the CLI prints it after the message.
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(LlmopsError):
    """The command was called wrongly (bad argument, missing project, conflicting options)."""

    exit_code = EXIT_USAGE


class ConfigError(LlmopsError):
    """llmops.yaml (or a file it references) is invalid.

    ``problems`` holds every problem found, each already formatted as
    ``file:LINE:COL: key.path: message``.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class MissingDependencyError(LlmopsError):
    """An optional package is needed for this command."""

    exit_code = EXIT_DEPENDENCY

    def __init__(self, package: str, *, extra: str, purpose: str, install: str | None = None) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed.",
            hint=f"Install it with: {install or 'pip install ' + repr(f'llmops-cli[{extra}]')}",
        )
        self.package = package
        self.extra = extra


class VersioningError(LlmopsError):
    """A git or artifact-store operation failed."""

    exit_code = EXIT_VERSIONING


class QualityGateFailed(LlmopsError):
    """A declared threshold was not met."""

    exit_code = EXIT_GATE


class EvalErrors(LlmopsError):
    """An eval run in which cases errored: its scores say nothing about those cases."""

    exit_code = EXIT_EVAL_ERRORS


class BreakingChange(LlmopsError):
    """A reviewed change breaks a dependent chain, eval or package."""

    exit_code = EXIT_BREAKING


class UnavailableError(LlmopsError):
    """Something exists by name but is not available here (offline hub model, missing object)."""

    exit_code = EXIT_UNAVAILABLE


def require(module: str, *, extra: str, purpose: str, package: str | None = None) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` is importable (without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(package or module, extra=extra, purpose=purpose)
