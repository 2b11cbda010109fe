"""Installed distributions' versions, answered as :func:`importlib.metadata.version` answers them.

Importing :mod:`importlib.metadata` costs ~15 ms (it pulls in the ``email`` package) and each of
its look-ups searches every ``sys.path`` entry again. Here each entry is listed once per process
(again only when its modification time changes) and the version is read from the first
``*.dist-info`` / ``*.egg-info`` folder of that name, the one importlib.metadata would pick: the
same folder-name rule, the same order (``sys.path``, then the directory listing), the same
``Version`` header of ``METADATA`` (or ``PKG-INFO``). Whatever this module cannot answer exactly
(a zip or ``.egg`` on ``sys.path``, another distribution finder before the path finder, folded or
unusual headers, an egg-info file) is passed to importlib.metadata itself, so the answer is never
different, only faster.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import Any

_SUFFIXES = (".dist-info", ".egg-info")
_HEADER_NAME = re.compile(r"[\041-\071\073-\176]+")  # what email's feedparser takes for a header name
_UNKNOWN = object()  # this module cannot tell: importlib.metadata answers
_listings: dict[str, tuple[int, dict[str, list[str]]]] = {}  # sys.path entry -> (mtime, name -> folders)


def canonical(name: str) -> str:
    """PEP 503 normalisation: lower case, runs of ``-_.`` become one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version(name: str) -> str:
    """:func:`importlib.metadata.version`, including its ``PackageNotFoundError`` for a missing name."""
    found = _lookup(name)
    if isinstance(found, str):
        return found
    from importlib import metadata

    return metadata.version(name)


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """``name -> version`` (:func:`version`) of those of ``names`` that are installed; the others left out."""
    found: dict[str, str] = {}
    for name in names:
        answer = _lookup(name)
        if isinstance(answer, str):
            found[name] = answer
        elif answer is not None:  # unknown here: importlib.metadata decides (and may be imported)
            from importlib import metadata

            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
    return found


def _lookup(name: str) -> str | None | object:
    """The version; None when the name is certainly not installed; ``_UNKNOWN`` when this cannot tell."""
    finders = _distribution_finders()
    if not name or not finders or not _is_path_finder(finders[0]):
        return _UNKNOWN  # another finder answers first (or an empty name: importlib's ValueError)
    key = canonical(name)
    for entry in sys.path:
        index = _index(entry)
        if index is None:
            return _UNKNOWN  # an entry this cannot list (a zip, an .egg): importlib may find it there
        folders = index.get(key)
        if folders:
            return _version_at(folders[0])
    return None if len(finders) == 1 else _UNKNOWN  # a later finder might still find it


def _distribution_finders() -> list[Any]:
    return [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]


def _is_path_finder(finder: Any) -> bool:
    from importlib.machinery import PathFinder

    return finder is PathFinder


def _index(entry: Any) -> dict[str, list[str]] | None:
    """``canonical name -> metadata folders`` in one ``sys.path`` entry, in listing order (None: cannot tell)."""
    if not isinstance(entry, str):
        return None
    root = entry or "."
    if os.path.basename(entry).lower().endswith(".egg"):
        return None  # importlib also reads an .egg's EGG-INFO, under its own name rule
    try:
        mtime = os.stat(root).st_mtime_ns
    except OSError:
        mtime = None
    cacheable = mtime is not None and os.path.isabs(root)  # '' and relative entries follow the working directory
    if cacheable:
        cached = _listings.get(root)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        children = os.listdir(root)
    except (FileNotFoundError, PermissionError):
        children = []  # importlib lists nothing here either
    except OSError:
        return None  # a file (maybe a zip importlib would read) or an error importlib may not share
    index: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith(_SUFFIXES):
            # importlib.metadata's rule: the name is everything before the first '-'
            index.setdefault(canonical(low.rpartition(".")[0].partition("-")[0]), []).append(os.path.join(root, child))
    if cacheable and mtime is not None:
        _listings[root] = (mtime, index)
    return index


def _version_at(folder: str) -> str | object:
    """The ``Version`` header importlib.metadata reads for ``folder`` (``_UNKNOWN`` where unsure)."""
    if not os.path.isdir(folder):
        return _UNKNOWN  # an egg-info file, or gone: importlib's own reading decides
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, filename), encoding="utf-8") as stream:
                text = stream.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            continue
        except (OSError, ValueError):
            return _UNKNOWN
        if text:
            return _version_header(text)
    return _UNKNOWN


def _version_header(text: str) -> str | object:
    """The first ``Version`` header as :func:`email.message_from_string` gives it, for plain headers only."""
    lines = text.split("\n")  # the file was read with universal newlines: no '\r' is left
    for i, line in enumerate(lines):
        if not line or line[0] in " \t":
            return _UNKNOWN  # the end of the headers without a Version, or a folded header
        head, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(head):
            return _UNKNOWN  # not a plain header ("From ", a bad name): let email's parser decide
        if head.lower() == "version":
            if i + 1 < len(lines) and lines[i + 1][:1] in (" ", "\t"):
                return _UNKNOWN  # folded onto the next line
            return value.lstrip(" \t")
    return _UNKNOWN
