"""``prompt diff`` output that is plain data or plain text: JSON and a Markdown PR comment.

JSON (``report_dict``), ``"version": 1``; keys are stable (new keys may be added, none renamed)::

    {
      "version": 1,
      "from": {"rev": "<sha>", "label": "main (merge-base 1a2b3c4d5e)"},
      "to":   {"rev": "<sha>" | null (work tree), "label": "working tree"},
      "breaking": true,
      "summary": {"changed": 1, "added": 0, "deleted": 0, "renamed": 0, "unchanged": 2, "breaking": 2},
      "unchanged": ["classify"],
      "prompts": [{
        "name": "answer",
        "status": "added" | "deleted" | "modified" | "renamed",
        "file": {"from": "prompts/answer.yaml", "to": "prompts/answer.yaml"},
        "diff": {"system" | "template" | "messages": "<unified diff>"},
        "fields": {"description" | "model": {"from": ..., "to": ...}},
        "variables": {
          "added":   [{"name", "type", "required", "default"?, "description"?}],
          "removed": [{"name", ...}],
          "changed": [{"name", "changes": {"type" | "required" | "default" | "description": {"from", "to"}}}],
          "renamed": {"old": "new"}
        },
        "params": [{"name": "temperature", "from": 0.0, "to": 0.7}],   # null = unset
        "examples": null | {"file": {"from", "to"}, "added": [row], "removed": [row],
                            "modified": [{"from": row, "to": row}], "unchanged": 3, "error": null},
        "dependents": {"chains", "evals", "adapters", "packages", "steps": [{"chain", "step", "id", "vars", ...}]},
        "breaking": [{"kind": "variable_removed", "reason": "..."}],
        "notes": ["..."]
      }]
    }
"""

from __future__ import annotations

import json
from typing import Any

from llmops_cli.prompts.diff import DiffReport, PromptChange

REPORT_VERSION = 1


def _from_to(pair: tuple[Any, Any]) -> dict[str, Any]:
    return {"from": pair[0], "to": pair[1]}


def change_dict(change: PromptChange) -> dict[str, Any]:
    ex = change.examples
    return {
        "name": change.name,
        "status": change.status,
        "file": {"from": change.file_from, "to": change.file_to},
        "diff": dict(change.text),
        "fields": {k: _from_to(v) for k, v in change.fields.items()},
        "variables": {
            "added": [{"name": v.name, **v.as_dict()} for v in change.variables_added],
            "removed": [{"name": v.name, **v.as_dict()} for v in change.variables_removed],
            "changed": [
                {"name": c.name, "changes": {k: _from_to(v) for k, v in c.changes.items()}}
                for c in change.variables_changed
            ],  # fmt: skip
            "renamed": dict(change.renamed_variables),
        },
        "params": [{"name": k, "from": old, "to": new} for k, old, new in change.params],
        "examples": None
        if ex is None
        else {
            "file": {"from": ex.file_from, "to": ex.file_to},
            "added": ex.added,
            "removed": ex.removed,
            "modified": [{"from": old, "to": new} for old, new in ex.modified],
            "unchanged": ex.unchanged,
            "error": ex.error,
        },
        "dependents": change.dependents.as_dict(),
        "breaking": [{"kind": b.kind, "reason": b.reason} for b in change.breaking],
        "notes": list(change.notes),
    }


def summary(report: DiffReport) -> dict[str, int]:
    counts = {"changed": 0, "added": 0, "deleted": 0, "renamed": 0}
    for change in report.changes:
        counts["changed" if change.status == "modified" else change.status] += 1
    return {**counts, "unchanged": len(report.unchanged), "breaking": len(report.breaking)}


def report_dict(report: DiffReport) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "from": report.old.as_dict(),
        "to": report.new.as_dict(),
        "breaking": bool(report.breaking),
        "summary": summary(report),
        "unchanged": list(report.unchanged),
        "prompts": [change_dict(c) for c in report.changes],
    }


# -- Markdown ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("|", "\\|").replace("\n", "↵")
    return f"`{text}`" if text else '`""`'


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _fence(text: str, lang: str = "diff") -> list[str]:
    ticks = "```"
    while ticks in text:  # a diff containing ``` must not close our block early
        ticks += "`"
    return [f"{ticks}{lang}", text, ticks]


def _dependents_line(change: PromptChange) -> str:
    deps = change.dependents
    parts = []
    for label, names in (("chains", deps.chains), ("evals", deps.evals), ("adapters", deps.adapters),
                         ("packages", deps.packages)):  # fmt: skip
        parts.append(f"{label} " + (", ".join(f"`{n}`" for n in names) if names else "—"))
    return "**Used by:** " + "; ".join(parts)


def _variables_md(change: PromptChange) -> list[str]:
    rows = [f"| added | `{v.name}` | {v.type} | {_yes(v.required)} | {_cell(v.default) if v.has_default else '—'} |"
            for v in change.variables_added]  # fmt: skip
    for v in change.variables_removed:
        renamed = f" → `{change.renamed_variables[v.name]}`?" if v.name in change.renamed_variables else ""
        rows.append(f"| removed{renamed} | `{v.name}` | {v.type} | {_yes(v.required)} | "
                    f"{_cell(v.default) if v.has_default else '—'} |")  # fmt: skip
    for c in change.variables_changed:
        cells = []
        for key in ("type", "required", "default"):
            cells.append(f"{_cell(c.changes[key][0])} → {_cell(c.changes[key][1])}" if key in c.changes else "")
        if "description" in c.changes:
            cells[0] = (cells[0] + " (description changed)").strip()
        rows.append(f"| changed | `{c.name}` | {' | '.join(cells)} |")
    if not rows:
        return []
    return [
        "#### Variables",
        "",
        "| change | variable | type | required | default |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _examples_md(change: PromptChange) -> list[str]:
    ex = change.examples
    if ex is None:
        return []
    out = ["#### Few-shot examples", ""]
    if ex.file_from != ex.file_to:
        out.append(f"File: {_cell(ex.file_from)} → {_cell(ex.file_to)}")
    out.append(
        f"{len(ex.added)} added, {len(ex.removed)} removed, {len(ex.modified)} modified, {ex.unchanged} unchanged"
    )
    if ex.error:
        out.append(f"> ⚠ {ex.error}")
    lines = [f"+ {json.dumps(r, ensure_ascii=False)}" for r in ex.added]
    lines += [f"- {json.dumps(r, ensure_ascii=False)}" for r in ex.removed]
    for old, new in ex.modified:
        lines += [f"- {json.dumps(old, ensure_ascii=False)}", f"+ {json.dumps(new, ensure_ascii=False)}"]
    if lines:
        out += ["", *_fence("\n".join(lines))]
    return [*out, ""]


def change_markdown(change: PromptChange) -> list[str]:
    files = change.file_to or change.file_from
    if change.status == "renamed":
        files = f"{change.file_from} → {change.file_to}"
    mark = " ⚠ breaking" if change.breaking else ""
    out = [f"### `{change.name}` — {change.status}{mark}", "", f"`{files}`  ", _dependents_line(change), ""]
    for b in change.breaking:
        out.append(f"- ⚠ **{b.kind}**: {b.reason}")
    if change.breaking:
        out.append("")
    for note in change.notes:
        out.append(f"- {note}")
    if change.notes:
        out.append("")
    for key, diff in change.text.items():
        out += [f"#### {key}", "", *_fence(diff), ""]
    if change.fields:
        out += ["| field | from | to |", "|---|---|---|"]
        out += [f"| {k} | {_cell(old)} | {_cell(new)} |" for k, (old, new) in change.fields.items()]
        out.append("")
    out += _variables_md(change)
    if change.params:
        out += ["#### Params", "", "| param | from | to |", "|---|---|---|"]
        out += [f"| `{k}` | {_cell(old)} | {_cell(new)} |" for k, old, new in change.params]
        out.append("")
    out += _examples_md(change)
    return out


def report_markdown(report: DiffReport) -> str:
    """A pull-request comment: breaking summary first, then one section per changed prompt."""
    counts = summary(report)
    out = [f"## Prompt diff: {report.old.label} → {report.new.label}", ""]
    if report.breaking:
        out.append(f"> **⚠ breaking: {len(report.breaking)} change(s) break dependents**")
        out.append(">")
        out += [f"> - `{name}`: {b.reason}" for name, b in report.breaking]
        out.append("")
    elif report.changes:
        out += ["✅ No breaking changes.", ""]
    if not report.changes:
        out += ["No prompt changes.", ""]
        return "\n".join(out)
    parts = [f"{counts[k]} {k}" for k in ("changed", "added", "deleted", "renamed", "unchanged") if counts[k]]
    out += [f"Prompts: {', '.join(parts)}.", ""]
    for change in report.changes:
        out += change_markdown(change)
    return "\n".join(out).rstrip() + "\n"
