"""Load a declared dataset into validated, normalized rows, or report every bad row at once.

``check_dataset`` never raises for bad rows: it returns them all as ``file:LINE: field: message``
problems (``llmops data validate``). ``load_rows`` is the strict form the other commands use: it
raises one :class:`~llmops_cli.errors.ConfigError` carrying every problem.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.data.formats import MISSING, RECORD_FORMATS, REQUIRED, empty_fields, normalize_record
from llmops_cli.data.readers import RECORD_FILES, dataset_files, file_format_of, read_records
from llmops_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from llmops_cli.config.project import DatasetSpec, ProjectConfig


@dataclass
class Row:
    """One validated, normalized record."""

    line: int  # 1-based line (JSONL) or the line a CSV record starts on (header = line 1)
    data: dict[str, Any]  # normalized fields of the format (see llmops_cli.data.formats)
    file: str = ""  # project-relative file: a dataset that is a folder has several

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class DatasetCheck:
    """What ``llmops data validate`` reports: the valid rows and every problem of the others."""

    name: str
    format: str
    path: str
    files: list[str]
    training: bool
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    invalid_rows: int = 0
    empty: dict[str, list[str]] = field(default_factory=dict)  # field -> "file:line" of rows with it empty

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "path": self.path,
            "files": self.files,
            "training": self.training,
            "ok": self.ok,
            "rows": len(self.rows),
            "invalid_rows": self.invalid_rows,
            "problems": self.problems,
            "empty": {key: len(where) for key, where in self.empty.items()},
            "empty_rows": sorted({w for where in self.empty.values() for w in where}, key=_where_key),
        }


def dataset_spec(config: ProjectConfig, name: str) -> DatasetSpec:
    """The declared dataset ``name``, or a UsageError that lists the declared ones."""
    if name in config.datasets:
        return config.datasets[name]
    close = difflib.get_close_matches(name, list(config.datasets), n=1)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    declared = ", ".join(config.datasets) or "none"
    raise UsageError(f"unknown dataset '{name}'", hint=f"{hint}Declared datasets: {declared}.")


def is_training_dataset(config: ProjectConfig, name: str) -> bool:
    """Whether an adapter trains on ``name`` (its chat rows must then end with an assistant turn)."""
    return any(adapter.dataset == name for adapter in config.adapters.values())


def check_dataset(config: ProjectConfig, name: str, *, training: bool | None = None) -> DatasetCheck:
    """Read and validate every row of dataset ``name``; bad rows become problems, never exceptions.

    ``training`` (default: whether an adapter uses the dataset) requires chat rows to end with an
    assistant turn. Files that cannot be found or whose type is unknown still raise UsageError.
    """
    spec = dataset_spec(config, name)
    training = is_training_dataset(config, name) if training is None else training
    path = config.resolve_path(spec.path)
    declared = spec.file_format
    renames: dict[str, str] = dict(spec.fields)
    if spec.format == "documents":
        return _check_documents(config, spec, path, declared, renames)
    files = dataset_files(path, declared, root=config.root)
    check = DatasetCheck(name, spec.format, spec.path, [_display(f, config.root) for f in files], training)
    for file, shown in zip(files, check.files, strict=True):
        _check_file(check, file, shown, file_format_of(file, declared), renames)
    return check


def load_rows(config: ProjectConfig, name: str, *, training: bool | None = None) -> list[Row]:
    """The valid rows of dataset ``name``; raises ConfigError listing every bad row if there is one."""
    check = check_dataset(config, name, training=training)
    if not check.ok:
        raise invalid_dataset_error(check)
    return check.rows


def invalid_dataset_error(check: DatasetCheck) -> ConfigError:
    count, rows = len(check.problems), check.invalid_rows
    return ConfigError(
        f"dataset '{check.name}' ({check.path}, format {check.format}) is invalid: "
        f"{count} problem{'s' if count != 1 else ''} in {rows} row{'s' if rows != 1 else ''}",
        problems=check.problems,
        hint="Fix the rows above (or map your field names with 'fields:' in llmops.yaml), "
        f"then run 'llmops data validate {check.name}'.",
    )


# --- per file -------------------------------------------------------------------------------------


def _check_file(check: DatasetCheck, file: Path, shown: str, file_format: str, renames: Mapping[str, str]) -> None:
    if file_format not in RECORD_FILES and check.format in RECORD_FORMATS and check.format != "text":
        raise UsageError(
            f"{shown}: a '{check.format}' dataset needs records with fields (jsonl, csv or json), "
            f"not a {file_format} file",
            hint="Convert the file to JSON lines, or set file_format if the extension is misleading.",
        )
    sources = {canonical: source for source, canonical in renames.items()}
    missing_columns: set[str] = set()
    bad_lines: set[int] = set()
    for record in read_records(file, file_format):
        if record.field == "(header)" and record.error is None:
            missing_columns = _missing_columns(check, shown, record.data, renames, sources)
            continue
        if record.error is not None:
            _problem(check, bad_lines, shown, record.line, record.field, record.error)
            continue
        raw = _rename(record.data, renames, check.format)
        data, problems = normalize_record(check.format, raw, training=check.training)
        problems = [p for p in problems if not (p.code == MISSING and p.field in missing_columns)]
        for p in problems:
            message = p.message
            if p.code == MISSING and p.field in sources:
                message += f" (fields: maps '{sources[p.field]}' to it, and the row has no '{sources[p.field]}')"
            elif p.code == MISSING and p.field.isidentifier() and isinstance(record.data, dict):
                message += f"; the row has: {', '.join(map(str, record.data)) or 'no fields'}"
            _problem(check, bad_lines, shown, record.line, p.field, message)
        if problems or missing_columns:
            if not problems:
                check.invalid_rows += 1  # unusable: a required column is missing (reported once)
            continue
        row = Row(record.line, data, shown)
        for key in empty_fields(check.format, data):
            check.empty.setdefault(_empty_key(key, data), []).append(row.where)
        check.rows.append(row)


def _missing_columns(
    check: DatasetCheck, shown: str, header: list[str], renames: Mapping[str, str], sources: Mapping[str, str]
) -> set[str]:
    """Required fields no CSV column provides: reported once, on the header line, not on every row."""
    columns = {renames.get(name, name) for name in header}
    missing = {key for key in REQUIRED[check.format] if key not in columns}
    for key in sorted(missing):
        how = f" (fields: maps '{sources[key]}' to it)" if key in sources else ""
        have = ", ".join(header) or "none"
        check.problems.append(f"{shown}:1: {key}: missing column{how}; the header has: {have}")
    return missing


def _problem(check: DatasetCheck, bad_lines: set[int], shown: str, line: int, where: str, message: str) -> None:
    check.problems.append(f"{shown}:{line}: {where}: {message}")
    if line not in bad_lines:
        bad_lines.add(line)
        check.invalid_rows += 1


def _rename(record: Any, renames: Mapping[str, str], fmt: str) -> Any:
    """Apply ``fields:`` (source -> canonical) to a record, and for chat also inside each message."""
    if not renames or not isinstance(record, dict):
        return record
    renamed = {renames.get(key, key): value for key, value in record.items()}
    inner = {k: v for k, v in renames.items() if v in ("role", "content")}
    messages = renamed.get("messages")
    if fmt == "chat" and inner and isinstance(messages, str):  # a CSV cell: rename inside the parsed list
        with contextlib.suppress(ValueError):
            messages = json.loads(messages)
    if fmt == "chat" and inner and isinstance(messages, list):
        renamed["messages"] = [
            {inner.get(k, k): v for k, v in m.items()} if isinstance(m, dict) else m for m in messages
        ]
    return renamed


def _empty_key(key: str, data: dict[str, Any]) -> str:
    """``messages[3].content`` -> ``assistant content``: empties of chat rows grouped by role."""
    if key.startswith("messages["):
        index = int(key[len("messages[") : key.index("]")])
        return f"{data['messages'][index]['role']} content"
    return key


def _check_documents(
    config: ProjectConfig, spec: DatasetSpec, path: Path, declared: str, renames: dict[str, str]
) -> DatasetCheck:
    """A documents dataset (the retrievers' input): one row per document, read as ``llmops index`` does."""
    from llmops_cli.retrieval.documents import load_documents

    documents = load_documents(path, root=config.root, file_format=declared, fields=renames)
    check = DatasetCheck(spec.name, spec.format, spec.path, sorted({d.source for d in documents}), False)
    for doc in documents:
        data: dict[str, Any] = {"text": doc.text.strip(), "id": doc.id}
        if doc.title:
            data["title"] = doc.title
        check.rows.append(Row(1, data, doc.source))
    return check


def _display(file: Path, root: Path) -> str:
    try:
        return file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return file.as_posix()


def _where_key(where: str) -> tuple[str, int]:
    file, _, line = where.rpartition(":")
    return file, int(line)
