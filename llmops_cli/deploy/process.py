"""Background server processes: start detached, recognise them later, stop them, read their logs.

A local deployment's server runs in its own session (so Ctrl-C in the terminal that deployed it,
or that terminal closing, does not stop it) with stdout and stderr in a log file. To tell a live
server from a recycled pid, the process start time (from ``/proc`` on Linux) is recorded and
compared; zombies count as exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_ON_POSIX = os.name == "posix"


def spawn(argv: list[str], *, log: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached (new session, no stdin), stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        options: dict[str, object] = {"start_new_session": True} if _ON_POSIX else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        }  # fmt: skip
        return subprocess.Popen(  # noqa: S603 - argv is built by llmops, never by a shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            close_fds=True, **options,  # type: ignore[call-overload]
        )  # fmt: skip


def start_time(pid: int) -> str | None:
    """When ``pid`` started, as an opaque string (``/proc`` on Linux, ``ps`` elsewhere); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _ps_start_time(pid)
    # Field 2 (comm) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _ps_start_time(pid: int) -> str | None:
    if not _ON_POSIX or Path("/proc/self/stat").exists():
        return None  # Linux without this pid: it is gone
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else None


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (a test, or a deploy that stops what it started)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs and (when ``started`` is known) is the process that was started then."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds the pid
    if _state(pid) in ("Z", "X"):
        return False
    if started is not None:
        now = start_time(pid)
        if now is not None and now != started:
            return False
    return True


def terminate(pid: int, *, started: str | None = None, timeout_s: float = 35.0) -> str:
    """Stop ``pid`` (its whole process group): SIGTERM, wait ``timeout_s``, then SIGKILL.

    Returns ``"stopped"``, ``"killed"`` or ``"not running"``.
    """
    if not alive(pid, started):
        return "not running"
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid, started):
            return "stopped"
        time.sleep(0.05)
    _signal(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    deadline = time.monotonic() + 10
    while alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "killed"


def _signal(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (it was started in a new session), else the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _ON_POSIX:
            try:
                os.killpg(pid, sig)
                return
            except (ProcessLookupError, PermissionError):
                pass
        os.kill(pid, sig)


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port the OS says is free on ``host`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 50) -> list[str]:
    """The last ``lines`` lines of a text file (read from the end, so large logs stay cheap)."""
    if lines <= 0 or not path.is_file():
        return []
    block, data = 64 * 1024, b""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        while position > 0 and data.count(b"\n") <= lines:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def follow(path: Path, *, poll_s: float = 0.25, stop: object = None) -> Iterator[str]:
    """Yield lines appended to ``path`` from now on (``tail -f``), until the caller stops iterating.

    ``stop`` is an optional callable; when it returns true the generator ends after draining.
    """
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        pending = b""
        while True:
            chunk = handle.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                continue
            if callable(stop) and stop():
                if pending:
                    yield pending.decode("utf-8", errors="replace")
                return
            time.sleep(poll_s)
