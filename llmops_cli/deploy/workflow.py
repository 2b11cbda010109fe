"""``llmops deploy``: deploy, roll back, and report on a deployment, whatever its target.

    result = deploy(config, "local")                 # latest package version, server started
    result = deploy(config, "prod", output=Path(...)) # manifests rendered, validated, recorded
    result = rollback(config, "prod")                 # the previous package version, recorded as such
    rows = history(config, "prod")                    # every deploy/prod/vN with its status

Every successful deployment is registered as ``deploy/ENV/vN`` (:mod:`llmops_cli.deploy.records`).
Invalid manifests are written (so they can be inspected) but not recorded, and raise ConfigError.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.deployments import DeploymentSpec, parse_deployment
from llmops_cli.deploy.records import DeployRecord, deploy_history, record_deployment, rollback_target
from llmops_cli.deploy.spec import deployment_spec
from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.progress import ProgressFn

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.deploy.local import LocalState
    from llmops_cli.deploy.manifest_check import Validation
    from llmops_cli.deploy.package_ref import PackageRef
    from llmops_cli.versioning import ArtifactVersion

VALIDATORS = ("auto", "kubectl", "schema", "none")


@dataclass
class DeployOptions:
    package_version: int | None = None  # None: the latest registered version
    build: bool = False  # build (and register) the package first
    from_project: bool = False  # local only: serve the project folder, no package
    port: int | None = None  # local: override the deployment's port (0: a free one)
    output: Path | None = None  # kubernetes/docker: where files go (default deploy/ENV/)
    validator: str = "auto"  # kubernetes: auto | kubectl | schema | none
    timeout_s: float = 300.0  # local: how long to wait for /ready
    launcher: list[str] | None = None  # local: how to run the llmops CLI (default: this interpreter)


@dataclass
class DeployResult:
    env: str
    target: str
    runtime: str | None
    package: PackageRef | None
    version: ArtifactVersion | None = None
    url: str | None = None
    output: Path | None = None
    files: list[str] = field(default_factory=list)
    validation: Validation | None = None
    notes: list[str] = field(default_factory=list)
    local: LocalState | None = None
    rollback: dict[str, int | None] | None = None  # restores / replaces
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.version.tag if self.version else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.env,
            "version": self.tag,
            "target": self.target,
            "runtime": self.runtime,
            "package": self.package.ref if self.package else None,
            "source": "package" if self.package else "project",
            "url": self.url,
            "output": str(self.output) if self.output else None,
            "files": self.files,
            "validation": self.validation.as_dict() if self.validation else None,
            "notes": self.notes,
            "pid": self.local.pid if self.local else None,
            "log": self.local.log if self.local else None,
            "rollback": self.rollback,
            "where": self.where,
        }


def deploy(
    config: ProjectConfig,
    env: str,
    options: DeployOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    entry: dict[str, Any] | None = None,
    rollback: dict[str, int | None] | None = None,
) -> DeployResult:
    """Deploy ``deployments.<env>`` (or a recorded ``entry``, for rollbacks) and record it in git."""
    from llmops_cli.versioning import ArtifactRegistry

    options = options or DeployOptions()
    spec = parse_deployment(env, entry) if entry is not None else deployment_spec(config, env)
    if options.validator not in VALIDATORS:
        raise UsageError(f"--validate {options.validator!r}: one of {', '.join(VALIDATORS)}")
    _ = ArtifactRegistry.for_config(config).git  # outside git: fail before starting anything
    if options.from_project and spec.target != "local":
        raise UsageError("--from-project serves the project folder on this machine: only for target local.")
    package = None
    if not options.from_project:
        from llmops_cli.deploy.package_ref import resolve_package

        package = resolve_package(
            config, spec.package, version=options.package_version, build=options.build, progress=progress
        )
    result = DeployResult(env, spec.target, spec.runtime if spec.target == "kubernetes" else None, package)
    result.rollback = rollback
    if spec.target == "local":
        _deploy_local(config, spec, package, options, result, progress)
    else:
        assert package is not None
        _render(config, spec, package, options, result)
    return result


def _deploy_local(
    config: ProjectConfig,
    spec: DeploymentSpec,
    package: PackageRef | None,
    options: DeployOptions,
    result: DeployResult,
    progress: ProgressFn | None,
) -> None:
    from llmops_cli.deploy import local, process

    state = local.start_local(
        config, spec, package=package, port=options.port, timeout_s=options.timeout_s,
        launcher=options.launcher, progress=progress, notes=result.notes,
    )  # fmt: skip
    result.local, result.url = state, state.url
    result.where = {"url": state.url, "pid": state.pid, "log": state.log}
    try:
        result.version = record_deployment(config, spec, package=package, where=result.where,
                                           rollback=result.rollback)  # fmt: skip
    except BaseException:
        process.terminate(state.pid, started=state.process_start, timeout_s=10)
        local.stop_local(config, spec.env)
        raise
    state.deploy_version = result.version.version
    local.write_state(config, state)


def _render(
    config: ProjectConfig, spec: DeploymentSpec, package: PackageRef, options: DeployOptions, result: DeployResult
) -> None:
    from llmops_cli.deploy.files import write_output

    folder = (options.output or config.root / "deploy" / spec.env).resolve()
    header = (
        f"Rendered by 'llmops deploy {spec.env}' from {package.ref} (sha256 {package.sha256[:12]}).\n"
        "Edit llmops.yaml and render again rather than editing this file."
    )
    keep: tuple[str, ...] = ()
    if spec.target == "kubernetes":
        rendered = _render_kubernetes(config, spec, package, folder)
    elif spec.target == "docker":
        from llmops_cli.deploy.docker import CONTEXT_DIR, prepare_context, render_docker
        from llmops_cli.deploy.readme import docker_readme

        keep = (CONTEXT_DIR,)
        _check_foreign(folder, keep)
        context = prepare_context(folder, package)
        rendered = render_docker(spec, package, (context / "Dockerfile").read_text(encoding="utf-8"))
        from llmops_cli.deploy.k8s import Manifest

        rendered.files.append(Manifest("README.md", text=docker_readme(spec, package, rendered)))
    else:  # pragma: no cover - the schema allows no other target
        raise UsageError(f"unknown deployment target '{spec.target}'")
    written = write_output(folder, rendered.files, header=header, keep=keep)
    result.output, result.notes = folder, result.notes + rendered.notes
    result.files = [p.relative_to(folder).as_posix() for p in written]
    result.where = {**rendered.where, "output": _display(config, folder)}
    result.url = rendered.where.get("url") or rendered.where.get("service")
    result.validation = _validate(spec, folder, options.validator)
    if not result.validation.ok:
        raise ConfigError(
            f"the rendered {spec.target} files in {folder} are invalid ({len(result.validation.problems)} problems); "
            "nothing was recorded",
            problems=[str(p) for p in result.validation.problems],
            hint="This is a bug in llmops deploy if llmops.yaml validates; please report it.",
        )
    recorded = {p: folder / p for p in result.files if not p.endswith((".md", ".gitignore", ".example"))}
    result.version = record_deployment(config, spec, package=package, where=result.where, files=recorded,
                                       rollback=result.rollback)  # fmt: skip


def _render_kubernetes(config: ProjectConfig, spec: DeploymentSpec, package: PackageRef, folder: Path) -> Any:
    from llmops_cli.deploy.gateway import apply_store, plan_store
    from llmops_cli.deploy.k8s import Manifest, render_llmops
    from llmops_cli.deploy.readme import kubernetes_readme

    store = plan_store(config, spec)  # several replicas on one SQLite file: refused before anything is written
    if spec.runtime == "vllm":
        from llmops_cli.deploy.k8s_llm import render_vllm

        rendered = render_vllm(config, spec, package)
    elif spec.runtime == "kserve":
        from llmops_cli.deploy.k8s_llm import render_kserve

        rendered = render_kserve(config, spec, package)
    else:
        rendered = render_llmops(spec, package)
    apply_store(rendered, spec, package, store)
    text = kubernetes_readme(spec, package, rendered, _display(config, folder))
    rendered.files.append(Manifest("README.md", text=text))
    return rendered


def _check_foreign(folder: Path, keep: tuple[str, ...]) -> None:
    from llmops_cli.deploy.files import MARKER

    if folder.is_dir() and not (folder / MARKER).is_file():
        foreign = [p.name for p in folder.iterdir() if p.name not in keep]
        if foreign:
            raise UsageError(
                f"{folder} already holds files llmops did not write ({', '.join(sorted(foreign)[:5])}).",
                hint="Render into a new folder with --output, or empty that one.",
            )


def _validate(spec: DeploymentSpec, folder: Path, validator: str) -> Validation:
    from llmops_cli.deploy.manifest_check import Validation

    if validator == "none":
        return Validation("none", notes=["validation skipped (--validate none)"])
    if spec.target == "docker":
        from llmops_cli.deploy.docker import validate_compose

        return validate_compose(folder, env_var=spec.keys_env, use_docker=validator in ("auto", "kubectl"))
    from llmops_cli.deploy.manifest_check import validate_manifests

    with tempfile.TemporaryDirectory(prefix="llmops-validate-") as tmp:
        # Only the manifests: kubectl -R would also try README.md's folder siblings.
        import shutil

        staged = Path(tmp)
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".yaml", ".yml", ".json") and not path.name.startswith("."):
                target = staged / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        return validate_manifests(staged, validator=validator)


def _display(config: ProjectConfig, folder: Path) -> str:
    try:
        return folder.relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(folder)


# -- rollback, history, status ------------------------------------------------------------------------


def rollback(
    config: ProjectConfig,
    env: str,
    *,
    to: int | None = None,
    options: DeployOptions | None = None,
    progress: ProgressFn | None = None,
) -> DeployResult:
    """Deploy again what ``deploy/<env>/v<to>`` (default: the previous package version) deployed."""
    records = deploy_history(config, env)
    target = rollback_target(records, to)
    base = options or DeployOptions()
    again = DeployOptions(
        package_version=target.package_version, output=base.output, validator=base.validator,
        timeout_s=base.timeout_s, launcher=base.launcher, port=base.port,
    )  # fmt: skip
    entry = target.entry or None
    if entry is None and env not in config.deployments:
        raise UsageError(
            f"deploy/{env}/v{target.version} recorded no deployment entry and '{env}' is no longer declared."
        )
    undo: dict[str, int | None] = {"restores": target.version, "replaces": records[-1].version}
    return deploy(config, env, again, progress=progress, entry=entry, rollback=undo)


@dataclass
class HistoryRow:
    record: DeployRecord
    status: str  # running | stopped | exited | rendered | superseded

    def as_dict(self) -> dict[str, Any]:
        return {**self.record.as_dict(), "status": self.status}


def history(config: ProjectConfig, env: str) -> list[HistoryRow]:
    """Every ``deploy/<env>/vN``, newest last, with what is true of it now."""
    from llmops_cli.deploy import local

    records = deploy_history(config, env)
    if not records:
        return []
    rows = [HistoryRow(r, "superseded") for r in records]
    latest = rows[-1]
    if latest.record.target == "local":
        status = local.local_status(config, env, probe=False)
        current = status.state.deploy_version if status.state else None
        for row in rows:
            if row.record.version == current:
                row.status = status.status if status.status != "never started" else "stopped"
        if current != latest.record.version:
            latest.status = "stopped"
    else:
        latest.status = "rendered"
    return rows


def latest_record(config: ProjectConfig, env: str) -> DeployRecord | None:
    records = deploy_history(config, env)
    return records[-1] if records else None
