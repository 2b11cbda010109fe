"""Read records from dataset files, each with the line it starts on; unreadable lines become problems.

A reader never stops at the first bad line of a JSONL or CSV file: every broken line is yielded
as a problem, so ``llmops data validate`` can report them all at once. Supported files: JSONL
(``.jsonl``/``.ndjson``), CSV/TSV (header = line 1), JSON (a list of objects), and for the text
format ``.txt`` (one record per non-blank line) and ``.md`` (one record per file).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.config.containment import check_walked
from llmops_cli.errors import UsageError

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".ndjson"),
    "csv": (".csv", ".tsv"),
    "json": (".json",),
    "txt": (".txt", ".text"),
    "md": (".md", ".markdown"),
}
RECORD_FILES = ("jsonl", "csv", "json")  # the file formats that hold field-structured records


@dataclass(frozen=True)
class RawRecord:
    """One record as read (``data``), or why its line could not be read (``error``)."""

    line: int
    data: Any = None
    error: str | None = None
    field: str = "(line)"


def file_format_of(file: Path, declared: str) -> str:
    """The file format of ``file``: the declared one, or detected from the extension."""
    if declared != "auto":
        return declared
    suffix = file.suffix.lower()
    for fmt, extensions in EXTENSIONS.items():
        if suffix in extensions:
            return fmt
    known = ", ".join(ext for exts in EXTENSIONS.values() for ext in exts)
    raise UsageError(
        f"Cannot tell the file format of {file.name} from its extension '{suffix}'.",
        hint=f"Rename it to one of {known}, or set the dataset's file_format in llmops.yaml.",
    )


def dataset_files(path: Path, declared: str, *, root: Path | None = None) -> list[Path]:
    """The files of a dataset: ``path`` itself, or the matching files under a folder (sorted).

    With ``root`` (the project), a file that a symlink in the folder takes outside the project is
    refused (see :mod:`llmops_cli.config.containment`).
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"Dataset path {path} does not exist.", hint="Fix the dataset's 'path:' in llmops.yaml.")
    wanted = EXTENSIONS[declared] if declared != "auto" else tuple(e for exts in EXTENSIONS.values() for e in exts)
    files = [
        f
        for f in path.rglob("*")
        if f.is_file() and f.suffix.lower() in wanted and not any(p.startswith(".") for p in f.relative_to(path).parts)
    ]
    if not files:
        raise UsageError(f"No data files in {path} (looked for {', '.join(wanted)}).")
    files = check_walked(files, path, root, what=f"dataset folder {path}")
    return sorted(files, key=lambda f: f.relative_to(path).as_posix())


def read_records(file: Path, file_format: str) -> Iterator[RawRecord]:
    """Every record of ``file`` with its 1-based start line; broken lines come back with ``error``."""
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = file.read_bytes()[: exc.start].count(b"\n") + 1
        yield RawRecord(bad_line, error=f"not UTF-8 text ({exc.reason} at byte {exc.start})", field="(file)")
        return
    except OSError as exc:
        yield RawRecord(1, error=f"cannot read: {exc.strerror or exc}", field="(file)")
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if file_format == "jsonl":
        yield from _jsonl(text)
    elif file_format == "csv":
        yield from _csv(text, delimiter="\t" if file.suffix.lower() == ".tsv" else ",")
    elif file_format == "json":
        yield from _json_list(text)
    elif file_format == "txt":
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                yield RawRecord(number, {"text": line})
    elif file_format == "md":
        if text.strip():
            yield RawRecord(1, {"text": text})
    else:
        raise UsageError(f"Unknown file_format '{file_format}'.", hint=f"Use one of: auto, {', '.join(EXTENSIONS)}.")


def _jsonl(text: str) -> Iterator[RawRecord]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines (often a trailing one) are not records
        try:
            yield RawRecord(number, json.loads(line))
        except json.JSONDecodeError as exc:
            yield RawRecord(number, error=f"invalid JSON: {exc.msg} (column {exc.colno})")


def _csv(text: str, *, delimiter: str) -> Iterator[RawRecord]:
    # Cells of chat datasets hold whole conversations as JSON; the default 128 KiB limit is too small.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield RawRecord(1, error=f"unreadable CSV header: {exc}", field="(header)")
        return
    header = [name.strip() for name in header]
    yield RawRecord(1, header, field="(header)")
    while True:
        start = reader.line_num + 1  # a quoted cell may span lines: report where the record starts
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RawRecord(start, error=f"unreadable CSV: {exc}")
            return  # the reader cannot resynchronise after a broken quote
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) > len(header):
            yield RawRecord(start, error=f"{len(values)} values but the header has {len(header)} columns")
            continue
        yield RawRecord(start, dict(zip(header, values + [""] * (len(header) - len(values)), strict=True)))


def _json_list(text: str) -> Iterator[RawRecord]:
    """Elements of a top-level JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()
    lines = _LineCounter(text)
    pos = _skip_space(text, 0)
    if pos >= len(text) or text[pos] != "[":
        yield RawRecord(lines.at(pos), error="expected a JSON list of records", field="(file)")
        return
    pos += 1
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]":
            return
        line = lines.at(pos)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield RawRecord(exc.lineno, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
            return
        yield RawRecord(line, value)
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            yield RawRecord(lines.at(pos), error="invalid JSON: expected ',' or ']' after a record")
            return


class _LineCounter:
    """Line numbers of increasing positions in one text, counted incrementally (not O(n) each)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos
