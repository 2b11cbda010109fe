"""Keys that say when two rows are the same: exact, near (normalized text) and same prompt.

Near-duplicates are rows whose text is equal after lower-casing, removing punctuation and
collapsing whitespace ("How do I reset it?" and "how do i reset it"). The same normalization
decides the train/eval split, so every variant of a row lands on the same side.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from typing import Any

from llmops_cli.data.formats import prompt_of, text_of, to_example

_ASCII_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SPACE = re.compile(r"\s+")


def canonical_json(value: Any) -> str:
    """One line of JSON with sorted keys: equal values give equal text (hashes, exact duplicates)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_text(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed: the text near-duplicates share."""
    text = text.casefold().translate(_ASCII_PUNCTUATION)
    if not text.isascii():  # the per-character category check is slow: only for non-ASCII text
        text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return _SPACE.sub(" ", text).strip()


def exact_key(fmt: str, data: dict[str, Any]) -> str:
    """Equal for rows that teach exactly the same example (ids and other extra fields ignored)."""
    return canonical_json(to_example(data, fmt))


def near_key(fmt: str, data: dict[str, Any]) -> str:
    return normalize_text(text_of(to_example(data, fmt)))


def prompt_key(fmt: str, data: dict[str, Any]) -> str:
    """The normalized question / instruction / user turns: equal prompts in train and eval leak."""
    return normalize_text(prompt_of(fmt, data))


def split_bucket(seed: int, key: str) -> int:
    """A row's bucket in 0..9999 from the seed and its own normalized content only.

    Independent of every other row, so adding rows never moves an existing row between train and eval.
    """
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000
