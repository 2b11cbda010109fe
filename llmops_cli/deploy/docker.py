"""Target ``docker``: the package's Dockerfile and a ``compose.yaml`` that builds and runs it.

The output folder holds ``Dockerfile`` (the package's own, byte for byte), ``compose.yaml``,
``.env.example`` and a README; ``context/`` is the unpacked package (the build context, ignored by
git through the folder's ``.gitignore``, like ``.env`` with the real keys). Compose reads the keys
from ``.env`` and refuses to start when the variable is unset (``${VAR:?...}``), so the container
never runs open by accident. ``docker compose config`` validates the file when Docker Compose is
installed; otherwise a structural check of the keys llmops writes runs instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.deploy.k8s import Manifest, Rendered, default_image
from llmops_cli.deploy.manifest_check import Problem, Validation
from llmops_cli.deploy.manifest_rules import parse_quantity
from llmops_cli.deploy.spec import CONTAINER_PORT, dns_label, release_name

if TYPE_CHECKING:
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.package_ref import PackageRef

CONTEXT_DIR = "context"
COMPOSE_FILE = "compose.yaml"
_CONTEXT_MARKER = ".llmops-package.sha256"
_HEALTH = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/health', timeout=4)"


def compose_document(spec: DeploymentSpec, package: PackageRef) -> dict[str, Any]:
    key = spec.keys_env
    command = ["llmops", "-C", "/app", "serve", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    command += ["--api-keys-env", key, "--store", "/data/monitor.db"]
    if spec.max_concurrency:
        command += ["--max-concurrency", str(spec.max_concurrency)]
    if spec.redact is not None:
        command.append("--redact" if spec.redact else "--no-redact")
    published = (
        f"{spec.port}:{CONTAINER_PORT}" if spec.host in ("0.0.0.0", "") else f"{spec.host}:{spec.port}:{CONTAINER_PORT}"
    )
    service: dict[str, Any] = {
        "image": spec.image or default_image(package),
        "build": {"context": CONTEXT_DIR, "dockerfile": "../Dockerfile"},
        "command": command,
        "ports": [published],
        "environment": {key: f"${{{key}:?set {key} (comma-separated API keys) in .env or the environment}}"},
        "volumes": ["monitor:/data"],  # the request log outlives the container
        "healthcheck": {
            "test": ["CMD", "python", "-c", _HEALTH],
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "120s",
        },
        "restart": "unless-stopped",
        "stop_grace_period": "40s",
        "labels": {"dev.llmops.deployment": spec.env, "dev.llmops.package": package.ref},
    }
    deploy: dict[str, Any] = {}
    memory = spec.resources.get("memory")
    if memory:
        size = parse_quantity(str(memory))
        if size:
            deploy.setdefault("resources", {})["limits"] = {"memory": f"{int(size // 2**20)}m"}
    if spec.gpus:
        devices = [{"driver": "nvidia", "count": spec.gpus, "capabilities": ["gpu"]}]
        deploy.setdefault("resources", {})["reservations"] = {"devices": devices}
    if deploy:
        service["deploy"] = deploy
    return {"name": release_name(spec), "services": {dns_label(package.name): service}, "volumes": {"monitor": {}}}


def render_docker(spec: DeploymentSpec, package: PackageRef, dockerfile: str) -> Rendered:
    out = Rendered()
    key = spec.keys_env
    out.files.append(Manifest("Dockerfile", text=dockerfile))
    out.files.append(Manifest(COMPOSE_FILE, obj=compose_document(spec, package)))
    out.files.append(
        Manifest(
            ".env.example", text=f"# Copy to .env (never commit it) and put comma-separated API keys here.\n{key}=\n"
        )
    )
    out.files.append(
        Manifest(
            ".gitignore", text=f"# the real keys and the unpacked package (build context)\n.env\n/{CONTEXT_DIR}/\n"
        )
    )
    host = "127.0.0.1" if spec.host in ("0.0.0.0", "") else spec.host
    out.where = {"url": f"http://{host}:{spec.port}", "image": spec.image or default_image(package)}
    if spec.gpus:
        out.notes.append(
            "the llmops server loads models on CPU for now (llmops serve has no --device option yet); "
            "the GPU reservation is kept for when it does"
        )
    return out


def prepare_context(folder: Path, package: PackageRef) -> Path:
    """``folder/context``: the unpacked package, unpacked again only when the package changed."""
    from llmops_cli.package import unpack

    context = folder / CONTEXT_DIR
    marker = context / _CONTEXT_MARKER
    if marker.is_file() and marker.read_text().strip() == package.sha256:
        return context
    if context.exists():
        shutil.rmtree(context)
    unpack(package.archive, context)
    # Outside the manifest's files, so 'llmops package verify' is unaffected; .dockerignore keeps it out of the image.
    marker.write_text(package.sha256 + "\n")
    ignore = context / ".dockerignore"
    if not ignore.exists():
        ignore.write_text(_CONTEXT_MARKER + "\n")
    return context


# -- validation ------------------------------------------------------------------------------------------

_TOP = {"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"}
_SERVICE = {
    "annotations", "build", "cap_add", "cap_drop", "command", "container_name", "cpus", "depends_on", "deploy",
    "devices", "dns", "entrypoint", "env_file", "environment", "expose", "extra_hosts", "gpus", "healthcheck",
    "hostname", "image", "init", "ipc", "labels", "logging", "mem_limit", "mem_reservation", "network_mode",
    "networks", "platform", "ports", "privileged", "profiles", "pull_policy", "read_only", "restart",
    "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "tmpfs", "tty",
    "ulimits", "user", "volumes", "working_dir",
}  # fmt: skip
_PORT = re.compile(r"^((\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):)?(\d+(-\d+)?:)?\d+(-\d+)?(/(tcp|udp))?$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")


def validate_compose(folder: Path, *, env_var: str, use_docker: bool = True) -> Validation:
    """Structural checks of ``compose.yaml`` plus ``docker compose config`` when it is installed."""
    result = Validation("structure")
    result.problems += check_compose(folder)
    if use_docker:
        _docker_config(folder, env_var, result)
    return result


def check_compose(folder: Path) -> list[Problem]:
    import yaml

    file = COMPOSE_FILE
    try:
        doc = yaml.safe_load((folder / file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return [Problem(file, "", f"cannot be read: {error}")]
    if not isinstance(doc, dict):
        return [Problem(file, "", "must be a mapping")]
    out = [Problem(file, k, "unknown top-level key") for k in doc if k not in _TOP and not str(k).startswith("x-")]
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        return [*out, Problem(file, "services", "required: a mapping of at least one service")]
    declared = set((doc.get("volumes") or {}).keys()) if isinstance(doc.get("volumes"), dict) else set()
    for name, service in services.items():
        out += _check_service(folder, file, f"services.{name}", service, declared)
    return out


def _check_service(folder: Path, file: str, at: str, service: Any, volumes: set[str]) -> list[Problem]:
    if not isinstance(service, dict):
        return [Problem(file, at, "must be a mapping")]
    out = [
        Problem(file, f"{at}.{k}", "unknown field")
        for k in service
        if k not in _SERVICE and not str(k).startswith("x-")
    ]
    if not service.get("image") and not service.get("build"):
        out.append(Problem(file, at, "needs 'image' or 'build'"))
    build = service.get("build")
    if isinstance(build, dict):
        context = folder / str(build.get("context") or ".")
        if not context.is_dir():
            out.append(Problem(file, f"{at}.build.context", f"{build.get('context')!r} is not a folder here"))
        elif not (context / str(build.get("dockerfile") or "Dockerfile")).is_file():
            out.append(
                Problem(
                    file,
                    f"{at}.build.dockerfile",
                    f"{build.get('dockerfile')!r} does not exist (relative to the context)",
                )
            )
    elif build is not None and not isinstance(build, str):
        out.append(Problem(file, f"{at}.build", "must be a path or a mapping"))
    for i, port in enumerate(service.get("ports") or []):
        if not isinstance(port, (str, int)) or not _PORT.match(str(port)):
            out.append(Problem(file, f"{at}.ports[{i}]", f"{port!r} is not a port mapping such as 127.0.0.1:8000:8000"))
    env = service.get("environment")
    if isinstance(env, dict):
        for key, value in env.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                out.append(Problem(file, f"{at}.environment.{key}", "must be a string, number or boolean"))
    elif env is not None and not (isinstance(env, list) and all(isinstance(e, str) for e in env)):
        out.append(Problem(file, f"{at}.environment", "must be a mapping or a list of KEY=VALUE strings"))
    command = service.get("command")
    if command is not None and not (
        isinstance(command, str) or (isinstance(command, list) and all(isinstance(c, str) for c in command))
    ):
        out.append(Problem(file, f"{at}.command", "must be a string or a list of strings"))
    restart = service.get("restart")
    if restart is not None and (not isinstance(restart, str) or not _RESTART.match(restart)):
        out.append(
            Problem(file, f"{at}.restart", f"{restart!r} is not one of no, always, unless-stopped, on-failure[:N]")
        )
    health = service.get("healthcheck")
    if isinstance(health, dict):
        test = health.get("test")
        if not (isinstance(test, str) or (isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE"))):
            out.append(
                Problem(
                    file, f"{at}.healthcheck.test", "must be a string or a list starting with CMD, CMD-SHELL or NONE"
                )
            )
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in health and not (isinstance(health[key], str) and _DURATION.match(health[key])):
                out.append(Problem(file, f"{at}.healthcheck.{key}", f"{health[key]!r} is not a duration such as 30s"))
        if "retries" in health and (not isinstance(health["retries"], int) or isinstance(health["retries"], bool)):
            out.append(Problem(file, f"{at}.healthcheck.retries", "must be an integer"))
    elif health is not None:
        out.append(Problem(file, f"{at}.healthcheck", "must be a mapping"))
    for i, volume in enumerate(service.get("volumes") or []):
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if ":" in volume and not source.startswith((".", "/", "~", "$")) and source not in volumes:
                out.append(
                    Problem(file, f"{at}.volumes[{i}]", f"named volume {source!r} is not declared under 'volumes:'")
                )
    return out


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        try:
            probe = subprocess.run(
                [docker, "compose", "version"], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            probe = None
        if probe is not None and probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _docker_config(folder: Path, env_var: str, result: Validation) -> None:
    import os

    command = _compose_command()
    if command is None:
        result.notes.append("Docker Compose is not installed: compose.yaml got a structural check only")
        return
    # A placeholder key lets the ${VAR:?...} interpolation pass; nothing is started.
    env = {**os.environ, env_var: os.environ.get(env_var) or "placeholder"}
    try:
        proc = subprocess.run([*command, "-f", str(folder / COMPOSE_FILE), "config", "-q"], capture_output=True,
                              text=True, timeout=60, check=False, env=env, cwd=folder)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        result.notes.append(f"docker compose could not run ({error}): structural check only")
        return
    result.validator = "compose + structure"
    for line in (proc.stderr or "").splitlines():
        if line.strip() and proc.returncode != 0:
            result.problems.append(Problem(COMPOSE_FILE, "", f"docker compose: {line.strip()}"))
