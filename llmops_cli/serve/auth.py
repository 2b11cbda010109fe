"""API-key checks: ``Authorization: Bearer KEY`` against the configured keys, in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


class ApiKeys:
    """The accepted keys. Empty means authentication is off (every request is let in)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [k.encode("utf-8") for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check_header(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries an accepted key."""
        if not self._keys:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return self.check(token.strip())

    def check(self, key: str) -> bool:
        """Compare ``key`` with every accepted key (no early exit), each with ``hmac.compare_digest``.

        Timing then depends neither on which key matched nor on how much of a key was right.
        """
        candidate = key.encode("utf-8")
        matched = False
        for accepted in self._keys:
            matched |= hmac.compare_digest(candidate, accepted)
        return matched
