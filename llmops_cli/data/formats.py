"""Record formats: what a valid row of each dataset format holds, and its training example.

``normalize_record`` checks one raw record (a JSON object or CSV row, fields already renamed) and
returns the normalized data (strings stripped, canonical keys first, extra keys kept) plus every
problem found in it. Structure problems (a missing field, a wrong type, an unknown role) make a
row invalid; *empty* required values do not: they are counted by ``stats`` and dropped by
``snapshot``, because an empty answer is a data-quality issue, not a broken file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FORMATS = ("chat", "instruction", "qa", "text", "documents")
RECORD_FORMATS = ("chat", "instruction", "qa", "text")  # one record per row (documents: files)
ROLES = ("system", "user", "assistant")

# Required and optional string fields of each format (chat's `messages` is checked on its own).
REQUIRED: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "instruction": ("instruction", "output"),
    "qa": ("question", "answer"),
    "text": ("text",),
    "documents": ("text",),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"instruction": ("input",), "qa": ("context",)}

MISSING = "missing"  # FieldProblem.code of a required field that is absent


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a record: ``field`` is a path such as ``messages[2].role``."""

    field: str
    message: str
    code: str = "invalid"


def normalize_record(fmt: str, record: Any, *, training: bool = False) -> tuple[dict[str, Any], list[FieldProblem]]:
    """``(data, problems)`` for one record of format ``fmt``; ``data`` is usable only without problems.

    ``training``: chat rows must end with an assistant turn (the turn the model learns to write).
    """
    if not isinstance(record, dict):
        return {}, [FieldProblem("(row)", f"expected a JSON object, got {_type_name(record)}")]
    problems: list[FieldProblem] = []
    data: dict[str, Any] = {}
    if fmt == "chat":
        data["messages"] = _messages(record.get("messages"), "messages" in record, problems, training=training)
    else:
        for key in REQUIRED[fmt]:
            data[key] = _string(record, key, problems, required=True)
        for key in OPTIONAL.get(fmt, ()):
            value = _string(record, key, problems, required=False)
            if value or fmt == "instruction":  # instruction keeps input="" so every row has the same keys
                data[key] = value or ""
    known = set(REQUIRED[fmt]) | set(OPTIONAL.get(fmt, ()))
    for key, value in record.items():
        if key not in known:
            data[key] = value  # id, source, metadata...: kept as written
    return data, problems


def empty_fields(fmt: str, data: dict[str, Any]) -> list[str]:
    """The required fields of a normalized row that are empty (whitespace only counts as empty)."""
    if fmt == "chat":
        return [f"messages[{i}].content" for i, m in enumerate(data.get("messages") or []) if not m["content"]]
    return [key for key in REQUIRED[fmt] if not data.get(key)]


def to_example(row: Any, fmt: str) -> dict[str, Any]:
    """The training example of a row: ``{"messages": [...]}`` (chat, instruction, qa) or ``{"text": ...}``.

    ``row`` is a :class:`~llmops_cli.data.loading.Row` or its ``data`` mapping.
    """
    data: dict[str, Any] = row.data if hasattr(row, "data") else row
    if fmt == "chat":
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in data["messages"]]}
    if fmt == "instruction":
        user = data["instruction"] + (f"\n\n{data['input']}" if data.get("input") else "")
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": data["output"]}]}
    if fmt == "qa":
        user = data["question"] + (f"\n\nContext:\n{data['context']}" if data.get("context") else "")
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": data["answer"]}]}
    if fmt in ("text", "documents"):
        return {"text": data["text"]}
    raise ValueError(f"unknown dataset format {fmt!r}")


def prompt_of(fmt: str, data: dict[str, Any]) -> str:
    """What a user asks in a row (its user turns, question or instruction): the key for leakage checks."""
    if fmt == "chat":
        return "\n".join(m["content"] for m in data["messages"] if m["role"] == "user")
    if fmt == "instruction":
        return data["instruction"] + (f"\n{data['input']}" if data.get("input") else "")
    if fmt == "qa":
        return str(data["question"])
    return str(data.get("text", ""))


def text_of(example: dict[str, Any]) -> str:
    """All the text of a training example, one part per line (for near-duplicate keys and lengths)."""
    if "messages" in example:
        return "\n".join(f"{m['role']}: {m['content']}" for m in example["messages"])
    return str(example.get("text", ""))


# --- field checks -------------------------------------------------------------------------------


def _string(record: dict[str, Any], key: str, problems: list[FieldProblem], *, required: bool) -> str:
    if key not in record or (record[key] is None and not required):
        if required:
            problems.append(FieldProblem(key, "missing", MISSING))
        return ""
    value = record[key]
    if value is None:
        return ""  # null counts as empty, like an empty CSV cell
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `"answer": 4` means the text "4"
    if not isinstance(value, str):
        problems.append(FieldProblem(key, f"expected a string, got {_type_name(value)}"))
        return ""
    return value.strip()


def _messages(value: Any, present: bool, problems: list[FieldProblem], *, training: bool) -> list[dict[str, str]]:
    if not present:
        problems.append(FieldProblem("messages", "missing", MISSING))
        return []
    if isinstance(value, str):  # a CSV cell (or a JSONL field) holding the list as JSON text
        try:
            value = json.loads(value)
        except ValueError as exc:
            problems.append(FieldProblem("messages", f"not valid JSON: {exc}"))
            return []
    if not isinstance(value, list):
        problems.append(FieldProblem("messages", f"expected a list of messages, got {_type_name(value)}"))
        return []
    messages: list[dict[str, str]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(FieldProblem(where, f"expected an object with role and content, got {_type_name(message)}"))
            continue
        role = message.get("role")
        if "role" not in message:
            problems.append(FieldProblem(f"{where}.role", "missing", MISSING))
        elif role not in ROLES:
            problems.append(FieldProblem(f"{where}.role", f"{role!r} is not one of {', '.join(ROLES)}"))
        nested: list[FieldProblem] = []
        content = _string(message, "content", nested, required=True)
        problems.extend(FieldProblem(f"{where}.{p.field}", p.message, p.code) for p in nested)
        messages.append({"role": str(role), "content": content})
    broken = any(p.field.startswith("messages") and p.field.endswith((".role", "]")) for p in problems)
    if not broken:  # turn order only means something once every role is known
        _check_turns(messages, problems, training=training)
    return messages


def _check_turns(messages: list[dict[str, str]], problems: list[FieldProblem], *, training: bool) -> None:
    roles = [m["role"] for m in messages]
    if not messages:
        problems.append(FieldProblem("messages", "is empty (a conversation needs a user and an assistant turn)"))
        return
    missing = [r for r in ("user", "assistant") if r not in roles]
    if missing:
        problems.append(FieldProblem("messages", f"has no {' and no '.join(missing)} turn"))
    elif training and roles[-1] != "assistant":
        problems.append(
            FieldProblem(
                f"messages[{len(roles) - 1}].role",
                f"the last turn is '{roles[-1]}'; training conversations end with an assistant turn",
            )
        )


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)
