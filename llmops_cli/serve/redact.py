"""Masking of personal data and secrets before requests reach the monitor store (``--redact``).

What is masked: e-mail addresses, ``Bearer`` tokens, well-known API key formats (OpenAI ``sk-``,
Hugging Face ``hf_``, GitHub ``ghp_``/``github_pat_``, Slack ``xox?-``, AWS ``AKIA``, Google
``AIza``, Stripe ``sk_live_``), JSON Web Tokens, ``key=value`` assignments whose key says it is a
secret (password, api_key, token, secret...), and the server's own API keys wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

EMAIL = "[EMAIL]"
SECRET = "[SECRET]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_KEY_FORMATS = re.compile(
    r"\b(?:"
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r")"
)
_ASSIGNMENT = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|token|password|passwd|pwd|client[_-]?secret)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})"
)


class Redactor:
    """Masks secrets and e-mails in text; ``extra_secrets`` (the server's API keys) are masked verbatim."""

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        secrets = sorted({s for s in extra_secrets if len(s) >= 4}, key=len, reverse=True)
        self._extra = re.compile("|".join(re.escape(s) for s in secrets)) if secrets else None

    def text(self, value: str | None) -> str | None:
        if not value:
            return value
        if self._extra is not None:
            value = self._extra.sub(SECRET, value)
        value = _BEARER.sub(lambda m: m.group(1) + SECRET, value)
        value = _KEY_FORMATS.sub(SECRET, value)
        value = _ASSIGNMENT.sub(lambda m: m.group(1) + SECRET, value)
        return _EMAIL.sub(EMAIL, value)

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it (dict values, list items) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
