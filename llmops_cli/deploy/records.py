"""Every deployment in git as ``deploy/ENV/vN``: what was deployed, where, when and by whom.

The artifact holds ``deployment.json`` (and the rendered manifests, for the targets that render
any); its manifest's ``params`` repeat the facts ``llmops deploy history`` lists, so the history
reads one small file per version. A rollback is a new version whose ``rollback`` names the version
it restored (``restores``) and the one that was current before it (``replaces``).
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.package_ref import PackageRef
    from llmops_cli.versioning import ArtifactRegistry, ArtifactVersion

KIND = "deploy"
RECORD_FILE = "deployment.json"


@dataclass
class DeployRecord:
    """One registered deployment version, as ``deploy history`` shows it."""

    env: str
    version: int
    commit: str
    created: str
    target: str
    runtime: str | None
    package: str | None
    package_version: int | None
    source: str  # "package" or "project" (--from-project)
    where: str  # URL, namespace/output folder
    who: str
    rollback: dict[str, int | None] | None = None  # {"restores": M, "replaces": K}
    entry: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{KIND}/{self.env}/v{self.version}"

    @property
    def package_label(self) -> str:
        if self.source == "project":
            return f"{self.package} (project folder)"
        return f"{self.package}@v{self.package_version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "version": self.version,
            "tag": self.tag,
            "commit": self.commit,
            "created": self.created,
            "target": self.target,
            "runtime": self.runtime,
            "package": self.package,
            "package_version": self.package_version,
            "source": self.source,
            "where": self.where,
            "who": self.who,
            "rollback": self.rollback,
        }


def git_user(registry: ArtifactRegistry) -> str:
    """``Name <email>`` as git would author a commit (environment, then config), else the login name."""
    import os

    name, email = os.environ.get("GIT_AUTHOR_NAME", ""), os.environ.get("GIT_AUTHOR_EMAIL", "")
    if not name:
        try:
            name, email = registry.git.config_value("user.name"), registry.git.config_value("user.email")
        except Exception:  # an unreadable git config must not stop a deployment
            name = email = ""
    if name:
        return f"{name} <{email}>" if email else str(name)
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def record_deployment(
    config: ProjectConfig,
    spec: DeploymentSpec,
    *,
    package: PackageRef | None,
    where: Mapping[str, Any],
    files: Mapping[str, Path] | None = None,
    rollback: dict[str, int | None] | None = None,
) -> ArtifactVersion:
    """Register ``deploy/<env>/vN`` with ``deployment.json`` plus ``files`` (rendered manifests)."""
    from llmops_cli import __version__
    from llmops_cli.versioning import ArtifactRegistry, Input

    registry = ArtifactRegistry.for_config(config)
    who = git_user(registry)
    head = registry.git.head()
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    source = "package" if package is not None else "project"
    record = {
        "deployment": spec.env,
        "target": spec.target,
        "runtime": spec.runtime if spec.target == "kubernetes" else None,
        "package": {"name": spec.package, "version": package.version if package else None,
                    "sha256": package.sha256 if package else None, "ref": package.ref if package else None},
        "source": source,
        "where": dict(where),
        "when": now,
        "who": who,
        "rollback": rollback,
        "entry": spec.as_written(),
        "project": {"name": config.name, "git_head": head},
        "llmops": __version__,
    }  # fmt: skip
    if package is not None:
        inputs = [Input(package.ref, f"sha256:{package.sha256}")]
    else:
        inputs = [Input(f"project@{(head or 'uncommitted')[:12]}", f"git:{head or '-'}")]
    params = {
        "target": record["target"],
        "runtime": record["runtime"],
        "package": spec.package,
        "package_version": package.version if package else None,
        "source": source,
        "where": _where_text(where),
        "who": who,
        "rollback": rollback,
        "entry": spec.as_written(),
    }
    registry.ensure_state_dir()
    with tempfile.TemporaryDirectory(prefix="deploy-", dir=registry.state) as tmp:
        record_file = Path(tmp) / RECORD_FILE
        record_file.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        all_files = {RECORD_FILE: record_file, **{f"manifests/{k}": v for k, v in (files or {}).items()}}
        what = package.ref if package else "the project folder"
        summary = f"{spec.target} deployment of {what} ({_where_text(where)})"
        if rollback:
            summary += f", rollback to v{rollback.get('restores')}"
        return registry.register(
            KIND,
            spec.env,
            all_files,
            inputs=inputs,
            config_hash=config.section_hash("deployments", spec.env),
            params=params,
            summary=summary,
        )


def _where_text(where: Mapping[str, Any]) -> str:
    parts = [str(where[k]) for k in ("url", "namespace", "output") if where.get(k)]
    return ", ".join(parts) or "-"


def deploy_history(config: ProjectConfig, env: str) -> list[DeployRecord]:
    """Every registered version of ``deploy/<env>``, oldest first."""
    from llmops_cli.versioning import ArtifactRef, ArtifactRegistry

    registry = ArtifactRegistry.for_config(config)
    records = []
    for version in registry.versions(ArtifactRef(KIND, env)):
        manifest = registry.read_manifest(version)
        params = manifest.get("params") or {}
        records.append(
            DeployRecord(
                env=env,
                version=version.version,
                commit=version.commit,
                created=str(manifest.get("created") or version.date),
                target=str(params.get("target") or "?"),
                runtime=params.get("runtime"),
                package=params.get("package"),
                package_version=params.get("package_version"),
                source=str(params.get("source") or "package"),
                where=str(params.get("where") or "-"),
                who=str(params.get("who") or "-"),
                rollback=params.get("rollback"),
                entry=dict(params.get("entry") or {}),
            )
        )
    return records


def rollback_target(records: list[DeployRecord], to: int | None = None) -> DeployRecord:
    """The version a rollback restores: ``to``, else the latest earlier one with another package version.

    Skipping versions that deployed the same package version as the current one makes a rollback
    after a plain re-deploy go back to the package before it, rather than re-deploy the same one.
    Versions deployed from the project folder (``--from-project``) name no package version and are
    never rollback targets.
    """
    if not records:
        raise UsageError("Nothing to roll back: this deployment has no recorded versions yet.")
    env = records[0].env
    if to is not None:
        match = next((r for r in records if r.version == to), None)
        if match is None:
            have = ", ".join(f"v{r.version}" for r in records)
            raise UsageError(f"deploy/{env} has no v{to} (it has {have}).")
        if match.source != "package" or match.package_version is None:
            raise UsageError(
                f"deploy/{env}/v{to} served the project folder, not a package version; it cannot be restored."
            )
        return match
    current = records[-1]
    for record in reversed(records[:-1]):
        if record.source != "package" or record.package_version is None:
            continue
        if (record.package, record.package_version) != (current.package, current.package_version):
            return record
    raise UsageError(
        f"Nothing to roll back to: no earlier version of deploy/{env} deployed another package version.",
        hint=f"'llmops deploy history {env}' lists the versions; pick one with --to vN.",
    )
