"""Deployments: serve a package version locally, or render Kubernetes / Docker files for it, and
record every deployment in git as ``deploy/ENV/vN`` (history, rollback).

    from llmops_cli.deploy import DeployOptions, deploy, rollback, history
    result = deploy(config, "local")          # background server, waits for /ready
    result = deploy(config, "prod")           # manifests in deploy/prod/, validated
    rollback(config, "prod")                  # the previous package version again

Importing this package is cheap: the server, the package builder, PyYAML and the Kubernetes
models are imported only by the functions that use them.
"""

from llmops_cli.config.deployments import DeploymentSpec
from llmops_cli.deploy.local import LocalState, LocalStatus, local_status, log_path, stop_local
from llmops_cli.deploy.manifest_check import Problem, Validation, validate_manifests
from llmops_cli.deploy.package_ref import PackageRef, resolve_package
from llmops_cli.deploy.records import DeployRecord, deploy_history, rollback_target
from llmops_cli.deploy.spec import deployment_spec
from llmops_cli.deploy.workflow import (
    DeployOptions,
    DeployResult,
    HistoryRow,
    deploy,
    history,
    latest_record,
    rollback,
)

__all__ = [
    "DeployOptions",
    "DeployRecord",
    "DeployResult",
    "DeploymentSpec",
    "HistoryRow",
    "LocalState",
    "LocalStatus",
    "PackageRef",
    "Problem",
    "Validation",
    "deploy",
    "deploy_history",
    "deployment_spec",
    "history",
    "latest_record",
    "local_status",
    "log_path",
    "resolve_package",
    "rollback",
    "rollback_target",
    "stop_local",
    "validate_manifests",
]
