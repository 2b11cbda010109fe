"""Results of pure checks, remembered across llmops processes.

Every command validates ``llmops.yaml`` and its prompt files first. Two of those checks are pure
functions of text whose libraries take longer to import than the checks take to run: the JSON
Schema check (jsonschema) and the parse of Jinja templates (jinja2). Together they are about a
fifth of an unchanged ``llmops package`` re-run. A :class:`Memo` remembers their results in
``LLMOPS_HOME/cache/memo/NAME.json`` under the sha256 of everything the result depends on:

- the input itself, spelled canonically (:func:`canonical`; a value JSON cannot spell exactly,
  such as a non-string mapping key or a date, is never remembered);
- the size and modification time of llmops' ``__init__.py`` (its version) and of the source
  files that compute the result (``code``), so an edited checkout does not reuse what its older code decided;
- the folder each library in ``libraries`` is installed in (its modification time changes when
  anything is installed there or removed), so an upgraded jsonschema or jinja2 decides again.

Only pure functions may be remembered: nothing that reads files, the clock or the environment.
Callers remember successes only (a document that passed, a template that parsed), so every error
is computed and worded fresh. The file is a cache: unreadable or corrupt, it counts as empty;
unwritable, nothing is remembered; two processes writing at once lose at most some entries.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAX_ENTRIES = 2000  # the oldest go first; a key and a small value each, well under 1 MB
_VERSION_FILE = str(Path(__file__).with_name("__init__.py"))  # holds llmops' __version__


class Memo:
    """A persistent ``key -> JSON value`` map for one pure function (see the module docstring)."""

    def __init__(self, name: str, *, code: Iterable[str], libraries: Iterable[str] = (), ordered: bool = False) -> None:
        self.name = name
        self._ordered = ordered  # mappings in another key order are other inputs (e.g. for a YAML dump)
        self._code = tuple(code)
        self._libraries = tuple(libraries)
        self._stamp: str | None = None
        self._entries: dict[str, Any] | None = None

    def key(self, *parts: Any) -> str | None:
        """The key of ``parts`` under this code and these libraries; None when a part cannot be spelled exactly."""
        spelled = canonical(list(parts), ordered=self._ordered)
        if spelled is None:
            return None
        return hashlib.sha256(f"{self.stamp()}\n{spelled}".encode()).hexdigest()

    def get(self, key: str | None) -> Any:
        if key is None:
            return None
        return self._load().get(key)

    def put(self, key: str | None, value: Any) -> None:
        if key is None:
            return
        entries = self._load()
        if entries.get(key) == value:
            return
        entries.pop(key, None)
        entries[key] = value
        while len(entries) > MAX_ENTRIES:
            del entries[next(iter(entries))]
        try:
            from llmops_cli.paths import atomic_write_text

            path = self.path()
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(entries, separators=(",", ":")))
        except OSError:
            pass  # a read-only home: nothing is remembered, nothing breaks

    def path(self) -> Path:
        from llmops_cli.paths import llmops_home

        return llmops_home() / "cache" / "memo" / f"{self.name}.json"

    def stamp(self) -> str:
        if self._stamp is None:
            parts = []
            for file in (_VERSION_FILE, *self._code):
                parts.append(_stat(file))
            for library in self._libraries:
                parts.append(f"{library}:{_installed_folder(library)}")
            self._stamp = "\n".join(parts)
        return self._stamp

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            try:
                loaded = json.loads(self.path().read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = None
            self._entries = loaded if isinstance(loaded, dict) else {}
        return self._entries


def canonical(value: Any, *, ordered: bool = False) -> str | None:
    """``value`` as compact JSON, mapping keys sorted unless ``ordered``, when JSON spells it
    exactly (str-keyed mappings, lists, str, int, finite float, bool, None), else None."""
    if not _spellable(value):
        return None
    return json.dumps(value, sort_keys=not ordered, ensure_ascii=False, separators=(",", ":"))


def _spellable(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):  # not a tuple: YAML and JSON Schema tell them apart
        return all(_spellable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _spellable(v) for k, v in value.items())
    return False


def _stat(file: str) -> str:
    try:
        st = os.stat(file)
    except OSError:
        return f"{file}:missing"
    return f"{file}:{st.st_size}:{st.st_mtime_ns}"


def _installed_folder(library: str) -> str:
    """Where ``library`` is installed and when that folder last changed (no import of it)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(library)
    except (ImportError, ValueError):
        return "missing"
    locations = list(spec.submodule_search_locations or []) if spec else []
    origin = locations[0] if locations else (spec.origin if spec else None)
    if not origin:
        return "missing"
    folder = Path(origin).parent  # site-packages: changed by every install or removal in it
    return f"{_stat(str(folder))}"
