"""``trust_remote_code`` runs Python shipped with a model: only with the user's consent.

Like chains' ``call`` steps and custom metrics, it needs ``--allow-code`` (a command that has the
flag calls :func:`allow_project_code`) or, for CI jobs, ``LLMOPS_ALLOW_CODE=1`` in the environment.
A ``trust_remote_code: true`` in a cloned repository's llmops.yaml is not consent by itself.
"""

from __future__ import annotations

import os

from llmops_cli.errors import UsageError

ENV_VAR = "LLMOPS_ALLOW_CODE"
_consent = {"allowed": False}


def allow_project_code(allowed: bool = True) -> None:
    """Record that the user passed ``--allow-code`` for this process."""
    _consent["allowed"] = allowed


def code_allowed() -> bool:
    return _consent["allowed"] or os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def remote_code_allowed(model: str, requested: object) -> bool:
    """The ``trust_remote_code`` value to pass to transformers for ``model``; refuses without consent."""
    if requested is not True:
        return False
    if not code_allowed():
        raise UsageError(
            f"model '{model}' sets trust_remote_code: true, which runs Python code shipped with the model; "
            "llmops runs such code only with --allow-code",
            hint=f"If you trust the model's source, rerun with --allow-code (or set {ENV_VAR}=1 in CI); "
            "otherwise remove trust_remote_code from the model entry.",
        )
    return True
