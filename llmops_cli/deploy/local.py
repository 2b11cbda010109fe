"""Target ``local``: the server in the background on this machine, with its pid, port and log recorded.

``start_local`` unpacks the package version into ``.llmops/deploy/ENV/package-vN-SHA/`` (once),
prepares it (vector indexes, model weights), stops a server this deployment already runs, starts
``llmops -C <folder> serve`` detached with its output in ``.llmops/deploy/ENV/server.log``, and
waits until ``GET /ready`` answers 200. ``state.json`` beside the log says what runs where.
Requests are logged to the *project's* monitor store, so ``llmops monitor`` sees them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.deploy import process
from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.paths import STATE_DIR, atomic_write_text, file_lock
from llmops_cli.progress import ProgressFn

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.package_ref import PackageRef

STATE_FILE = "state.json"
LOG_FILE = "server.log"
DEFAULT_READY_TIMEOUT_S = 300.0  # first start of the embedded model dequantizes it (~15 s on 2 cores)
DEFAULT_STOP_TIMEOUT_S = 35.0  # the server gives open streams 30 s to finish
LOG_TAIL_LINES = 25


def default_launcher() -> list[str]:
    """How to run the ``llmops`` CLI in a child process: this interpreter, ``-m llmops_cli``."""
    return [sys.executable, "-m", "llmops_cli"]


@dataclass
class LocalState:
    """What ``state.json`` records about a local deployment's server."""

    env: str
    pid: int
    host: str
    port: int
    url: str
    log: str
    started_at: str  # ISO 8601
    started_ts: float
    source: str  # "package" or "project"
    package: str
    package_version: int | None = None
    package_sha256: str | None = None
    serve_root: str = ""
    argv: list[str] = field(default_factory=list)
    process_start: str | None = None  # the kernel's start time of pid: tells it from a recycled pid
    deploy_version: int | None = None
    stopped_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def running(self) -> bool:
        return self.stopped_at is None and process.alive(self.pid, self.process_start)


@dataclass
class LocalStatus:
    env: str
    state: LocalState | None
    status: str  # running | stopped | exited | never started
    health: str | None = None  # /health answer
    ready: str | None = None  # /ready status
    uptime_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"env": self.env, "status": self.status, "health": self.health, "ready": self.ready}
        data["uptime_s"] = round(self.uptime_s, 1) if self.uptime_s is not None else None
        data.update({k: v for k, v in asdict(self.state).items() if k != "argv"} if self.state else {})
        return data


def deploy_dir(config: ProjectConfig, env: str) -> Path:
    return config.root / STATE_DIR / "deploy" / env


def read_state(config: ProjectConfig, env: str) -> LocalState | None:
    path = deploy_dir(config, env) / STATE_FILE
    try:
        return LocalState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_state(config: ProjectConfig, state: LocalState) -> None:
    atomic_write_text(deploy_dir(config, state.env) / STATE_FILE, json.dumps(asdict(state), indent=2) + "\n")


# -- start -------------------------------------------------------------------------------------------


def start_local(
    config: ProjectConfig,
    spec: DeploymentSpec,
    *,
    package: PackageRef | None,
    port: int | None = None,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    launcher: list[str] | None = None,
    progress: ProgressFn | None = None,
    notes: list[str] | None = None,
) -> LocalState:
    """Serve ``package`` (None: the project folder itself) in the background; return once it is ready."""
    from llmops_cli.errors import require

    for module in ("fastapi", "uvicorn"):
        require(module, extra="serve", purpose="llmops deploy (target local)")
    notes = notes if notes is not None else []
    folder = deploy_dir(config, spec.env)
    _ensure_state_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "lock"):  # two deploys of one environment take turns
        return _start(config, spec, folder, package, port, timeout_s, launcher, progress, notes)


def _start(
    config: ProjectConfig,
    spec: DeploymentSpec,
    folder: Path,
    package: PackageRef | None,
    port: int | None,
    timeout_s: float,
    launcher: list[str] | None,
    progress: ProgressFn | None,
    notes: list[str],
) -> LocalState:
    serve_root = _unpacked(folder, package, progress) if package is not None else config.root
    previous = read_state(config, spec.env)
    if previous is not None and previous.running:
        outcome = process.terminate(previous.pid, started=previous.process_start, timeout_s=DEFAULT_STOP_TIMEOUT_S)
        _mark_stopped(config, previous)
        notes.append(f"the server it ran before (pid {previous.pid}) was {outcome}")
    chosen = _port(spec, port)
    argv = _serve_argv(config, spec, serve_root, chosen, launcher, from_project=package is None)
    if not os.environ.get(spec.keys_env):
        notes.append(f"{spec.keys_env} is not set: the server accepts requests without an API key")
    log = folder / LOG_FILE
    _rotate(log)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    log.write_text(f"# llmops deploy {spec.env} at {stamp}: {' '.join(argv)}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    from llmops_cli.monitor import store_path

    location = store_path(config)
    if isinstance(location, str):  # a PostgreSQL URL: through the environment, never argv (ps shows argv)
        env["LLMOPS_MONITOR_STORE"] = location
    child = process.spawn(argv, log=log, cwd=serve_root, env=env)
    url = f"http://{_probe_host(spec.host)}:{chosen}"
    state = LocalState(
        env=spec.env, pid=child.pid, host=spec.host, port=chosen, url=url, log=str(log), started_at=stamp,
        started_ts=time.time(), source="package" if package else "project", package=spec.package,
        package_version=package.version if package else None, package_sha256=package.sha256 if package else None,
        serve_root=str(serve_root), argv=argv, process_start=process.start_time(child.pid),
    )  # fmt: skip
    write_state(config, state)
    try:
        _wait_ready(child, url, timeout_s, log, progress)
    except BaseException:
        process.terminate(child.pid, timeout_s=5)
        child.poll()
        _mark_stopped(config, state)
        raise
    if package is not None:
        _drop_other_unpacked(folder, keep=serve_root)
    return state


def _ensure_state_dir(config: ProjectConfig) -> None:
    state = config.root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# llmops state: content store, caches, indexes\n*\n")


def _unpacked(folder: Path, package: PackageRef, progress: ProgressFn | None) -> Path:
    """The package unpacked (once per archive) and prepared to serve."""
    from llmops_cli.package import prepare_bundle, unpack

    target = folder / f"package-v{package.version}-{package.sha256[:12]}"
    reused = (target / "llmops.yaml").is_file()
    if not reused:
        if target.exists():
            shutil.rmtree(target)  # a half-written folder from an interrupted deploy
        if progress:
            progress("unpack", 0, 0)
        unpack(package.archive, target)  # checks every file against the manifest as it is written
    # A folder unpacked by an earlier deploy may have been changed since: check it again before serving.
    prepare_bundle(target, progress=progress, verify=reused)
    return target


def _drop_other_unpacked(folder: Path, *, keep: Path) -> None:
    for other in folder.glob("package-v*"):
        if other.is_dir() and other.resolve() != keep.resolve():
            shutil.rmtree(other, ignore_errors=True)


def _port(spec: DeploymentSpec, override: int | None) -> int:
    port = spec.port if override is None else override
    if port == 0:
        return process.free_port(spec.host)
    if not process.port_free(spec.host, port):
        raise UsageError(
            f"Port {port} on {spec.host} is already in use, so deployment '{spec.env}' cannot listen there.",
            hint="Stop what listens there, or deploy on another port with --port (0 picks a free one).",
        )
    return port


def _serve_argv(
    config: ProjectConfig,
    spec: DeploymentSpec,
    root: Path,
    port: int,
    launcher: list[str] | None,
    *,
    from_project: bool,
) -> list[str]:
    from llmops_cli.monitor import store_path

    argv = [*(launcher or default_launcher()), "-C", str(root), "serve", "--host", spec.host, "--port", str(port)]
    if from_project:
        argv += ["--deployment", spec.env]  # tells the server which package it serves (for the request log)
    argv += ["--api-keys-env", spec.keys_env]
    location = store_path(config)
    if not isinstance(location, str):  # a SQLite file; a URL goes in the environment (see deploy_local)
        argv += ["--store", str(location)]
    if spec.max_concurrency:
        argv += ["--max-concurrency", str(spec.max_concurrency)]
    if spec.redact is not None:
        argv.append("--redact" if spec.redact else "--no-redact")
    return argv


def _rotate(log: Path) -> None:
    if log.is_file():
        os.replace(log, log.with_name(log.name + ".1"))


def _probe_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _wait_ready(child: Any, url: str, timeout_s: float, log: Path, progress: ProgressFn | None) -> None:
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    pause = 0.1
    while True:
        code = child.poll()
        if code is not None:
            raise UnavailableError(
                f"The server exited (code {code}) before it was ready. Last lines of {log}:\n" + _tail_text(log),
                hint="Fix what the log says, then deploy again ('llmops deploy logs' shows the whole log).",
            )
        status, body = http_get(url + "/ready", timeout_s=2.0)
        if status == 200:
            return
        if status == 503 and body.get("status") == "error":
            raise UnavailableError(
                f"The server started but its model failed to load: {body.get('error') or 'unknown error'}.\n"
                f"Last lines of {log}:\n" + _tail_text(log)
            )
        if time.monotonic() > deadline:
            raise UnavailableError(
                f"The server did not become ready within {timeout_s:.0f} s. Last lines of {log}:\n" + _tail_text(log),
                hint="A large model may need longer: deploy with --timeout SECONDS.",
            )
        if progress:
            progress("ready", int(time.monotonic() - started), int(timeout_s))
        time.sleep(pause)
        pause = min(1.0, pause * 1.5)  # quick for a fast start, few probe lines in the log for a slow one


def _tail_text(log: Path) -> str:
    return "\n".join("  " + line for line in process.tail(log, LOG_TAIL_LINES)) or "  (empty)"


def http_get(url: str, *, timeout_s: float = 2.0) -> tuple[int | None, dict[str, Any]]:
    """``(status, JSON body)`` of a GET; ``(None, {})`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - our own loopback URL
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None, {}


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- status, stop, logs -------------------------------------------------------------------------------


def _mark_stopped(config: ProjectConfig, state: LocalState) -> None:
    state.stopped_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_state(config, state)


def local_status(config: ProjectConfig, env: str, *, probe: bool = True) -> LocalStatus:
    """Whether the deployment's server runs, and what ``/health`` and ``/ready`` say."""
    state = read_state(config, env)
    if state is None:
        return LocalStatus(env, None, "never started")
    if state.stopped_at is not None:
        return LocalStatus(env, state, "stopped")
    if not process.alive(state.pid, state.process_start):
        return LocalStatus(env, state, "exited")
    result = LocalStatus(env, state, "running", uptime_s=max(0.0, time.time() - state.started_ts))
    if probe:
        code, _ = http_get(state.url + "/health")
        result.health = "ok" if code == 200 else (f"HTTP {code}" if code else "no answer")
        code, body = http_get(state.url + "/ready")
        result.ready = str(body.get("status") or (f"HTTP {code}" if code else "no answer"))
    return result


def stop_local(
    config: ProjectConfig, env: str, *, timeout_s: float = DEFAULT_STOP_TIMEOUT_S
) -> tuple[str, LocalState | None]:
    """Stop the deployment's server: ``(outcome, state)``; outcome is stopped, killed, exited or not running.

    ``exited`` means the recorded process had already gone (a stale pid); the record is closed.
    """
    state = read_state(config, env)
    if state is None or state.stopped_at is not None:
        return "not running", state
    if not process.alive(state.pid, state.process_start):
        _mark_stopped(config, state)
        return "exited", state
    outcome = process.terminate(state.pid, started=state.process_start, timeout_s=timeout_s)
    _mark_stopped(config, state)
    return outcome, state


def log_path(config: ProjectConfig, env: str) -> Path:
    state = read_state(config, env)
    return Path(state.log) if state is not None else deploy_dir(config, env) / LOG_FILE
