"""A cache of file hashes keyed by what ``stat`` says, so an unchanged file is not read again.

Like git's index and DVC's state database: a file whose device, inode, size, mtime and ctime (in
nanoseconds) are what they were when it was hashed has the same content, and its sha256 comes from
``.llmops/cache/hashes.sqlite`` instead of a full read. Any write to a file changes its mtime and
ctime, so a changed file is always hashed again.

Racy files: a file modified within ``RACY_SECONDS`` of being hashed could be written again in the
same clock tick without its mtime moving, so such a hash is used for this call but never cached (as
git treats "racily clean" index entries).

The cache is only an optimization: any error opening or writing it falls back to hashing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from llmops_cli.versioning.store import sha256_file

RACY_SECONDS = 2.0
CACHE_FILE = "hashes.sqlite"
STAMP_FILE = "hashes.stamp"  # touched to read the filesystem's clock (see HashCache.clock)
_SCHEMA = """CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
    sha256 TEXT NOT NULL)"""


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HashCache:
    """``sha256(path)`` that reads the file only when its stat changed since it was last hashed."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "cache" / CACHE_FILE
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                ignore = self.state_dir / ".gitignore"  # .llmops/ ignores itself (as ensure_state_dir does)
                if not ignore.exists():
                    ignore.write_text("# llmops state: content store, caches, indexes\n*\n")
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
                self._db = db
            except (OSError, sqlite3.Error):
                return None
        return self._db

    def lookup(self, path: Path) -> str | None:
        """The cached sha256 of ``path`` when its stat is unchanged; None otherwise."""
        path = Path(path).resolve()
        try:
            st = path.stat()
        except OSError:
            return None
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, sha256 FROM hashes WHERE path = ?", (str(path),)
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is not None and tuple(row[:5]) == _key(st):
            return str(row[5])
        return None

    def remember(self, path: Path, sha: str, st: os.stat_result | None = None) -> None:
        """Record that ``path`` (as ``st`` describes it; default: now) hashes to ``sha``, unless it is racy."""
        path = Path(path).resolve()
        try:
            st = st or path.stat()
        except OSError:
            return
        if time.time() - max(st.st_mtime, st.st_ctime) < RACY_SECONDS:
            return
        self._insert(path, st, sha)

    def _insert(self, path: Path, st: os.stat_result, sha: str) -> None:
        db = self._connect()
        if db is None:
            return
        with contextlib.suppress(sqlite3.Error):
            db.execute(
                "INSERT OR REPLACE INTO hashes (path, dev, ino, size, mtime_ns, ctime_ns, sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(path), *_key(st), sha),
            )

    def clock(self) -> tuple[int, int] | None:
        """The filesystem's own clock, read off a stamp file touched now: ``(device, mtime_ns)``."""
        stamp = self.path.parent / STAMP_FILE
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()  # creates it, or sets its times to the filesystem's now
            st = stamp.stat()
        except OSError:
            return None
        return st.st_dev, st.st_mtime_ns

    def remember_written(self, path: Path, sha: str, clock: tuple[int, int] | None) -> None:
        """Record the sha256 of a file llmops wrote itself (``sha`` of the bytes it wrote) and made
        visible at ``path`` by a rename after reading :meth:`clock` (``clock``), once writing was done.

        Nobody else could write the file before that rename, so when the filesystem's clock had
        moved past the file's last change by then, any later write moves its times: the hash is
        safe to keep without the :data:`RACY_SECONDS` wait (a re-run right after a build need not
        read a new 100 MB archive again). In the same clock tick, or across filesystems, nothing
        is recorded and the next look-up hashes the file as usual.
        """
        if clock is None:
            return
        path = Path(path).resolve()
        try:
            st = path.stat()
        except OSError:
            return
        if st.st_dev != clock[0] or max(st.st_mtime_ns, st.st_ctime_ns) >= clock[1]:
            return
        self._insert(path, st, sha)

    def sha256(self, path: Path, *, read: Callable[[Path], str] | None = None) -> str:
        """The sha256 hex digest of ``path``: from the cache when its stat is unchanged, else by reading it."""
        cached = self.lookup(path)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        before = Path(path).stat()
        sha = (read or sha256_file)(Path(path))
        after = Path(path).stat()
        if _key(before) == _key(after):  # not written to while it was read
            self.remember(path, sha, after)
        return sha

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
