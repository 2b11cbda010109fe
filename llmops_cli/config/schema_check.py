"""JSON Schema validation that reports every error with a position and readable words."""

from __future__ import annotations

import hashlib
from typing import Any

from llmops_cli.config.problems import ProblemList, did_you_mean
from llmops_cli.memo import Memo, canonical

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "empty (null)",
}


def _describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind_choice(error: Any) -> str | None:
    """For ``oneOf`` of bare ``required`` lists (one-kind-of-step), name the alternatives."""
    alternatives = []
    for sub in error.validator_value:
        required = sub.get("required") if isinstance(sub, dict) else None
        if not required or len(required) != 1:
            return None
        alternatives.append(required[0])
    present = [k for k in alternatives if isinstance(error.instance, dict) and k in error.instance]
    if present:
        return f"has {', '.join(repr(k) for k in present)}: use exactly one of {', '.join(alternatives)}"
    return f"needs exactly one of: {', '.join(alternatives)}"


def check(data: Any, schema: dict[str, Any], problems: ProblemList) -> None:
    """Add a problem for every way ``data`` fails ``schema``.

    A document that passed is remembered (:mod:`llmops_cli.memo`, keyed by the document, the
    schema, this code and the installed jsonschema): checking it again needs no jsonschema.
    """
    digest = _schema_digest(schema)
    key = _MEMO.key(digest, data) if digest else None
    if _MEMO.get(key):
        return
    import jsonschema

    failed = False
    for error in jsonschema.Draft202012Validator(schema).iter_errors(data):
        failed = True
        _report(error, problems)
    if not failed:
        _MEMO.put(key, True)


_MEMO = Memo("schema-valid", code=[__file__], libraries=["jsonschema"])
_SCHEMA_DIGESTS: dict[int, tuple[dict[str, Any], str]] = {}


def _schema_digest(schema: dict[str, Any]) -> str | None:
    known = _SCHEMA_DIGESTS.get(id(schema))
    if known is None or known[0] is not schema:  # the schemas are loaded once (resources.load_schema)
        spelled = canonical(schema)
        if spelled is None:
            return None
        known = (schema, hashlib.sha256(spelled.encode()).hexdigest())
        _SCHEMA_DIGESTS[id(schema)] = known
    return known[1]


def _report(error: Any, problems: ProblemList) -> None:
    path = tuple(error.absolute_path)
    kind = error.validator
    inst = error.instance
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(inst, dict):
        known = set((error.schema.get("properties") or {}).keys())
        pattern_props = error.schema.get("patternProperties") or {}
        if kind == "additionalProperties" and error.schema.get("additionalProperties") is False:
            import re

            extras = [k for k in inst if k not in known and not any(re.search(p, k) for p in pattern_props)]
        else:
            extras = [k for k in inst if k not in known]
        for key in extras or list(inst):
            where = "" if not known else f"; allowed: {', '.join(sorted(known))}"
            hint = did_you_mean(key, known)
            problems.add((*path, key), f"unknown key '{key}'{hint}{'' if hint else where}", at_key=True)
        return
    if kind == "required":
        missing = [k for k in error.validator_value if isinstance(inst, dict) and k not in inst]
        for key in missing:
            problems.add(path, f"missing required key '{key}'", at_key=True)
        return
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        problems.add(path, f"expected {expected}, got {_describe(inst)} {_short(inst)}")
        return
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        hint = did_you_mean(str(inst), [str(c) for c in error.validator_value])
        problems.add(path, f"{_short(inst)} is not one of: {choices}{hint}")
        return
    if kind == "const":
        problems.add(path, f"must be {error.validator_value!r}, got {_short(inst)}")
        return
    if kind == "pattern" and "propertyNames" in error.relative_schema_path:
        problems.add(
            (*path, inst), f"invalid name {_short(inst)}: names use letters, digits, '.', '_', '-'", at_key=True
        )
        return
    if kind == "pattern":
        problems.add(path, f"{_short(inst)} does not match the pattern {error.validator_value}")
        return
    if kind == "oneOf":
        choice = _kind_choice(error)
        if choice:
            problems.add(path, choice)
            return
    if kind in ("oneOf", "anyOf") and error.context:
        import jsonschema.exceptions

        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            _report(best, problems)
            return
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    message = error.message if len(error.message) < 160 else f"{kind} check failed"
    if description and kind in ("anyOf", "oneOf", "not"):
        message += f" ({description})"
    problems.add(path, message)
