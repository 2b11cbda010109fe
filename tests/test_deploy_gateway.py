"""Kubernetes manifests with the llmops gateway (vLLM, KServe), ``--device``, and the monitor store of replicas.

Renders with the stand-in packages of ``tests/fixtures/deploy.py`` and validates offline (the
``kubernetes`` client's API models); ``replicas > 1`` needs a PostgreSQL ``monitor.store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.deploy import deploy
from llmops_cli.validation import load_config
from tests.fixtures.deploy import SCHEMA, load_yaml, register_package
from tests.helpers import git

PG_URL = "postgresql://llmops:${PG_PASSWORD}@db.example.internal:5432/llmops"


@pytest.fixture
def proj(deploy_project: Path) -> Path:
    """The init project with a package ``bot`` and one deployment per target (tests/fixtures/deploy.py)."""
    return deploy_project


def edit(root: Path, **changes: Any) -> None:
    """Set top-level keys or ``deployments.NAME`` entries (``deployment_NAME=...``) and commit."""
    path = root / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if key.startswith("deployment_"):
            data["deployments"][key.removeprefix("deployment_")] = value
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(root, "commit", "-qam", "edit")


def containers(path: Path) -> dict[str, Any]:
    return {c["name"]: c for c in load_yaml(path)["spec"]["template"]["spec"]["containers"]}


def test_vllm_pods_have_the_gateway_in_front(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "gpu", SCHEMA)
    assert result.validation is not None and result.validation.ok, result.validation.problems
    out = proj / "deploy" / "gpu"
    pod = containers(out / "deployment.yaml")
    gateway, vllm = pod["gateway"], pod["vllm"]
    command = gateway["command"]
    assert command[:4] == ["llmops", "-C", "/app", "serve"] and gateway["image"] == "bot:v1"
    assert command[command.index("--upstream") + 1] == "http://127.0.0.1:8001"
    assert command[command.index("--upstream-key-env") + 1] == "VLLM_API_KEY"
    assert command[command.index("--api-keys-env") + 1] == "LLMOPS_API_KEYS"
    assert gateway["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert vllm["args"][vllm["args"].index("--port") + 1] == "8001"
    assert vllm["ports"][0]["name"] == "vllm" and vllm["readinessProbe"]["httpGet"]["port"] == "vllm"
    service = load_yaml(out / "service.yaml")
    assert service["spec"]["ports"][0]["targetPort"] == "http"  # the gateway's port, never vLLM's
    secret = load_yaml(out / "secret" / "api-keys.yaml")
    assert secret["stringData"] == {"LLMOPS_API_KEYS": "", "VLLM_API_KEY": ""}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in gateway["env"]}
    assert refs == {"LLMOPS_API_KEYS": "bot-gpu-api-keys", "VLLM_API_KEY": "bot-gpu-api-keys"}
    readme = (out / "README.md").read_text()
    assert "--from-literal=LLMOPS_API_KEYS=" in readme and "--from-literal=VLLM_API_KEY=" in readme
    assert any("llmops gateway" in note for note in result.notes)


def test_kserve_gets_a_gateway_deployment_and_no_open_route(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "ks", SCHEMA)
    assert result.validation is not None and result.validation.ok, result.validation.problems
    out = proj / "deploy" / "ks"
    isvc = load_yaml(out / "llminferenceservice.yaml")
    assert "router" not in isvc["spec"]  # KServe publishes no route that would bypass the gateway
    deployment = load_yaml(out / "gateway" / "deployment.yaml")
    (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
    command = gateway["command"]
    assert (
        command[command.index("--upstream") + 1] == "https://bot-ks-kserve-workload-svc.default.svc.cluster.local:8000"
    )
    assert "--no-upstream-verify" in command and "--upstream-key-env" not in command
    service = load_yaml(out / "gateway" / "service.yaml")
    assert service["metadata"]["name"] == "bot-ks"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    assert load_yaml(out / "secret" / "api-keys.yaml")["stringData"] == {"LLMOPS_API_KEYS": ""}
    assert result.where["service"] == "http://bot-ks:8000"


def test_gpus_run_the_llmops_server_on_cuda(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "prod", SCHEMA)
    command = containers(proj / "deploy" / "prod" / "deployment.yaml")["server"]["command"]
    assert command[command.index("--device") + 1] == "cuda"
    assert not any("unused" in note or "CPU for now" in note for note in result.notes)
    prod = dict(load_config(proj).deployments["prod"].raw)
    edit(proj, deployment_prod={**prod, "serve": {"device": "cpu"}})
    result = deploy(load_config(proj), "prod", SCHEMA)
    command = containers(proj / "deploy" / "prod" / "deployment.yaml")["server"]["command"]
    assert command[command.index("--device") + 1] == "cpu"
    assert any("reserved but unused" in note for note in result.notes)


def test_three_replicas_share_a_postgresql_store_from_a_secret(
    proj: Path,
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("PG_PASSWORD", "s3cret-never-written")
    edit(proj, monitor={"store": PG_URL})
    register_package(proj, "one")
    for env, runtime in (("prod", "llmops"), ("gpu", "vllm"), ("ks", "kserve")):
        entry = dict(load_config(proj).deployments[env].raw)
        edit(proj, **{f"deployment_{env}": {**entry, "replicas": 3}})
        result = deploy(load_config(proj), env, SCHEMA)
        assert result.validation is not None and result.validation.ok, (runtime, result.validation.problems)
        out = proj / "deploy" / env
        secret = load_yaml(out / "secret" / "monitor-store.yaml")
        assert secret["metadata"]["name"] == f"bot-{env}-monitor-store"
        assert secret["stringData"] == {"LLMOPS_MONITOR_STORE": ""}
        deployment = out / ("gateway/deployment.yaml" if runtime == "kserve" else "deployment.yaml")
        assert load_yaml(deployment)["spec"]["replicas"] == 3
        server = containers(deployment)["server" if runtime == "llmops" else "gateway"]
        env_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in server["env"]}
        assert env_refs["LLMOPS_MONITOR_STORE"] == f"bot-{env}-monitor-store"
        # an empty Secret must not fall back to a pod-local SQLite file
        assert server["command"][:2] == ["/bin/sh", "-c"] and '[ -z "$LLMOPS_MONITOR_STORE" ]' in server["command"][2]
        assert server["command"][4:8] == ["llmops", "-C", "/app", "serve"]
        readme = (out / "README.md").read_text()
        assert f"create secret generic bot-{env}-monitor-store" in readme
        for path in out.rglob("*"):
            if path.is_file():
                assert "s3cret-never-written" not in path.read_text(), path
        assert "db.example.internal" in (out / "secret" / "monitor-store.yaml").read_text()


def test_sqlite_with_three_replicas_exits_2_and_writes_nothing(proj: Path, cli: Any) -> None:
    register_package(proj, "one")
    entry = dict(load_config(proj).deployments["gpu"].raw)
    edit(proj, deployment_gpu={**entry, "replicas": 3})
    result = cli("deploy", "gpu", "--validate", "schema", cwd=proj)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "3 replicas" in text and "SQLite" in text and "monitor.store: postgresql://" in text
    assert not (proj / "deploy" / "gpu").exists()
    assert git(proj, "tag", "--list", "deploy/*") == ""
