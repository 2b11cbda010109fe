"""Documents to index: text files, markdown and JSON-lines rows, each with a stable id and a sha256.

A retriever's dataset is a folder (walked recursively, in sorted order, hidden entries skipped) or
one file. ``.txt`` and ``.md`` files are one document each; a ``.jsonl`` (or ``.json`` list, or
``.csv``) file holds one document per row with a ``text`` (or ``content``) field and optional
``id``, ``title`` and ``metadata``. Ids are project-relative paths (``docs/faq.md``), or
``path#row-id`` for rows, so they stay the same across runs and machines; they are what the
incremental index compares.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_cli.config.containment import check_walked
from llmops_cli.errors import UsageError

# file_format -> the extensions it covers; "auto" in a folder takes the plain-document kinds.
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "md": (".md", ".markdown"),
    "txt": (".txt", ".text"),
    "jsonl": (".jsonl",),
    "json": (".json",),
    "csv": (".csv",),
}
_AUTO_IN_FOLDER = ("md", "txt", "jsonl")
_TEXT_FIELDS = ("text", "content")


@dataclass(frozen=True)
class Document:
    """One document: ``id`` is stable across runs; ``sha256`` covers everything that gets indexed."""

    id: str
    source: str  # the file it came from, project-relative ("docs/wifi.md")
    text: str
    sha256: str
    kind: str  # "md", "txt" or "row"
    title: str | None = None
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


def content_hash(documents: list[Document]) -> str:
    """``sha256:`` over the sorted (id, sha256) pairs: the identity of a dataset's indexed content.

    Ids are included (not only the hashes) so that renaming a file counts as a change.
    """
    digest = hashlib.sha256()
    for doc in sorted(documents, key=lambda d: d.id):
        digest.update(f"{doc.id}\t{doc.sha256}\n".encode())
    return "sha256:" + digest.hexdigest()


def load_documents(
    path: Path,
    *,
    root: Path,
    file_format: str = "auto",
    fields: Mapping[str, str] | None = None,
) -> list[Document]:
    """Every non-empty document under ``path`` (a folder or one file), in a deterministic order."""
    if not path.exists():
        raise UsageError(f"Dataset path {path} does not exist.", hint="Fix the dataset's 'path:' in llmops.yaml.")
    files = (
        [path]
        if path.is_file()
        else check_walked(_walk(path, file_format), path, root, what=f"documents folder {path}")
    )
    documents: list[Document] = []
    seen: dict[str, Path] = {}
    for file in files:
        for doc in _load_file(file, _display_path(file, root, path), file_format, fields or {}):
            if doc.id in seen:
                raise UsageError(f"Two documents have the id '{doc.id}' ({seen[doc.id]} and {file}).")
            seen[doc.id] = file
            documents.append(doc)
    if not documents:
        kinds = ", ".join(ext for fmt in _formats(file_format) for ext in _EXTENSIONS[fmt])
        raise UsageError(
            f"No documents found in {path} (looked for {kinds}).",
            hint="Put .md, .txt or .jsonl files there, or point the dataset's 'path:' at them.",
        )
    return documents


def _formats(file_format: str) -> tuple[str, ...]:
    if file_format == "auto":
        return _AUTO_IN_FOLDER
    if file_format not in _EXTENSIONS:
        hint = f"Use one of: {', '.join(_EXTENSIONS)}."
        raise UsageError(f"file_format '{file_format}' cannot be indexed.", hint=hint)
    return (file_format,)


def _walk(folder: Path, file_format: str) -> list[Path]:
    wanted = tuple(ext for fmt in _formats(file_format) for ext in _EXTENSIONS[fmt])
    found = []
    for file in folder.rglob("*"):
        rel = file.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):  # .git, .obsidian, editor swap files
            continue
        if file.is_file() and file.suffix.lower() in wanted:
            found.append(file)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _display_path(file: Path, root: Path, dataset: Path) -> str:
    """Project-relative when inside the project (what eval datasets name as ``source``)."""
    for base in (root, dataset if dataset.is_dir() else dataset.parent):
        try:
            return file.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return file.as_posix()


def _format_of(file: Path, file_format: str) -> str:
    if file_format != "auto":
        return file_format
    suffix = file.suffix.lower()
    for fmt, extensions in _EXTENSIONS.items():
        if suffix in extensions:
            return fmt
    raise UsageError(
        f"Cannot index {file}: unknown file type '{suffix}'.",
        hint="Use .md, .txt or .jsonl files, or set the dataset's file_format.",
    )


def _read_text(file: Path, source: str) -> str:
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{source} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_file(file: Path, source: str, file_format: str, fields: Mapping[str, str]) -> Iterator[Document]:
    fmt = _format_of(file, file_format)
    text = _read_text(file, source)
    if fmt in ("md", "txt"):
        if text.strip():
            title = _markdown_title(text) if fmt == "md" else None
            yield Document(source, source, text, _sha256(text), fmt, title)
        return
    for where, row in _rows(text, fmt, source):
        doc = _row_document(row, where, source, fields)
        if doc is not None:
            yield doc


def _rows(text: str, fmt: str, source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(position for messages and default ids, row) pairs; position is the 1-based line or row."""
    if fmt == "jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                yield str(number), _object(_json(line, f"{source}:{number}"), f"{source}:{number}")
    elif fmt == "json":
        data = _json(text, source)
        if not isinstance(data, list):
            raise UsageError(f"{source}: expected a JSON list of documents, got {type(data).__name__}.")
        for number, item in enumerate(data, start=1):
            yield str(number), _object(item, f"{source}[{number - 1}]")
    else:  # csv: the header row names the fields
        for number, record in enumerate(csv.DictReader(io.StringIO(text)), start=1):
            yield str(number), dict(record)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: invalid JSON ({error.msg}, column {error.colno}).") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected an object with a 'text' field, got {type(value).__name__}.")
    return value


def _row_document(row: dict[str, Any], where: str, source: str, fields: Mapping[str, str]) -> Document | None:
    row = {fields.get(key, key): value for key, value in row.items()}
    key = next((k for k in _TEXT_FIELDS if k in row), None)
    if key is None:
        raise UsageError(
            f"{source}, row {where}: no 'text' (or 'content') field; it has {', '.join(map(str, row)) or 'none'}.",
            hint="Rename the field with the dataset's 'fields:' mapping, e.g. fields: {body: text}.",
        )
    text = str(row[key] or "").replace("\r\n", "\n")
    if not text.strip():
        return None
    row_id = str(row["id"]) if row.get("id") not in (None, "") else where
    title = str(row["title"]) if row.get("title") not in (None, "") else None
    metadata = _flat_metadata(row.get("metadata"))
    # The hash covers what the index stores about the row, so a retitled row is re-indexed.
    identity = json.dumps({"text": text, "title": title, "metadata": metadata}, sort_keys=True, ensure_ascii=False)
    return Document(f"{source}#{row_id}", source, text, _sha256(identity), "row", title, metadata)


def _flat_metadata(value: Any) -> dict[str, str | int | float | bool]:
    """Scalars as they are (the vector store only takes scalars); anything else as JSON text."""
    if not isinstance(value, dict):
        return {}
    flat: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if item is None:
            continue
        flat[str(key)] = item if isinstance(item, (str, int, float, bool)) else json.dumps(item, sort_keys=True)
    return flat


def _markdown_title(text: str) -> str | None:
    for line in text.split("\n"):
        if line.startswith("# "):
            return line[2:].strip().rstrip("#").strip() or None
    return None
