"""``llmops deploy``: local background servers, Kubernetes and Docker rendering, validation, history, rollback.

Packages here are small stand-ins registered as ``package/bot/vN`` (a ``manifest.json`` that names a
model and an adapter, a Dockerfile and a minimal llmops.yaml), so rendering needs no real build. The
local target's process management runs against a stand-in HTTP server (a few lines of stdlib
Python that answer /health and /ready); one test serves the tiny random Llama project with the real
``llmops serve`` (``--from-project``). kubectl and docker are never needed: the offline schema path
is what these tests exercise, as in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import stat
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops_cli.deploy import DeployOptions, deploy, history, local_status, rollback, stop_local, validate_manifests
from llmops_cli.deploy.local import read_state
from llmops_cli.deploy.process import alive, tail
from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.validation import load_config
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry
from tests.fixtures.deploy import DEPLOYMENTS, SCHEMA, load_yaml, package_manifest, register_package
from tests.helpers import git

KEY = "deploy-test-key-0123"
HAS_K8S_MODELS = importlib.util.find_spec("kubernetes") is not None

# A stand-in for `llmops serve`: answers /health at once and /ready per STANDIN_MODE.
STANDIN = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    mode = os.environ.get("STANDIN_MODE", "ready")
    print("stand-in serving", " ".join(args), flush=True)
    if mode == "die":
        print("error: the model exploded", flush=True)
        sys.exit(3)
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                code, body = 200, {"status": "ok"}
            elif mode == "ready":
                code, body = 200, {"status": "ready", "model": "stand-in"}
            elif mode == "error":
                code, body = 503, {"status": "error", "error": "weights are missing"}
            else:
                code, body = 503, {"status": "loading"}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def log_message(self, *a):
            pass
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)
# The real CLI, with `serve` registered when app.py does not register it (yet).
REAL_LLMOPS = """
import sys
from llmops_cli.cli.app import app
from llmops_cli.cli import serve
if not any(getattr(c.callback, "__name__", "") == "serve" for c in app.registered_commands):
    app.command()(serve.serve)
sys.argv[0] = "llmops"
app()
"""


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def proj(deploy_project: Path) -> Path:
    """The init project with a package ``bot`` and one deployment per target (tests/fixtures/deploy.py)."""
    return deploy_project


def standin(tmp_path: Path) -> list[str]:
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    return [sys.executable, str(script)]


def local_options(tmp_path: Path, **changes: Any) -> DeployOptions:
    options = DeployOptions(launcher=standin(tmp_path), timeout_s=30, port=0)  # 0: a free port
    for key, value in changes.items():
        setattr(options, key, value)
    return options


@pytest.fixture
def stop_servers(proj: Path) -> Iterator[None]:
    yield
    config = load_config(proj)
    for env in config.deployments:
        stop_local(config, env, timeout_s=5)


# --- kubernetes: runtime llmops -------------------------------------------------------------------


def test_kubernetes_manifests_render_validate_and_are_recorded(proj: Path) -> None:
    register_package(proj, "one")
    register_package(proj, "two")
    result = deploy(load_config(proj), "prod", SCHEMA)
    out = proj / "deploy" / "prod"
    assert result.output == out.resolve() and result.validation is not None and result.validation.ok
    assert sorted(result.files) == ["README.md", "deployment.yaml", "secret/api-keys.yaml", "service.yaml"]
    deployment = load_yaml(out / "deployment.yaml")
    assert deployment["metadata"] == {
        "name": "bot-prod",
        "namespace": "support",
        "labels": deployment["spec"]["template"]["metadata"]["labels"],
    }
    assert deployment["spec"]["replicas"] == 1  # several need a PostgreSQL monitor store: test_deploy_gateway.py
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "bot:v2"  # default image name: PACKAGE:vN built from the package's Dockerfile
    assert container["command"][:4] == ["llmops", "-C", "/app", "serve"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    key_ref = container["env"][0]["valueFrom"]["secretKeyRef"]
    secret = load_yaml(out / "secret" / "api-keys.yaml")
    assert key_ref == {"name": secret["metadata"]["name"], "key": "LLMOPS_API_KEYS"}
    assert secret["stringData"] == {"LLMOPS_API_KEYS": ""}  # a placeholder, never a key
    assert (
        "kubectl -n support create secret generic bot-prod-api-keys" in (out / "secret" / "api-keys.yaml").read_text()
    )
    service = load_yaml(out / "service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "docker build -t bot:v2" in (out / "README.md").read_text()
    # recorded in git with the package version it deployed as lineage
    registry = ArtifactRegistry.for_config(load_config(proj))
    recorded = registry.get(ArtifactRef("deploy", "prod"))
    assert result.tag == "deploy/prod/v1" == recorded.tag
    package_sha = registry.get(ArtifactRef("package", "bot")).manifest["files"][0]["sha256"]
    assert recorded.manifest["inputs"] == [{"ref": "package/bot@v2", "hash": f"sha256:{package_sha}"}]
    paths = {f["path"] for f in recorded.manifest["files"]}
    assert {"deployment.json", "manifests/deployment.yaml", "manifests/secret/api-keys.yaml"} <= paths
    record = json.loads((proj / "artifacts" / "deploy" / "prod" / "deployment.json").read_text())
    assert record["package"]["version"] == 2 and record["who"] == "Test User <test@example.com>"
    assert record["where"]["namespace"] == "support"
    assert git(proj, "status", "--porcelain", "--", "artifacts") == ""


def test_a_broken_manifest_is_rejected_with_file_and_path(proj: Path) -> None:
    register_package(proj, "one")
    deploy(load_config(proj), "prod", SCHEMA)
    out = proj / "deploy" / "prod"
    assert validate_manifests(out, validator="schema").ok
    deployment = load_yaml(out / "deployment.yaml")
    deployment["spec"]["replicas"] = "two"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolcy"] = "Always"  # a typo
    container["resources"]["limits"]["memory"] = "lots"
    container["readinessProbe"]["httpGet"]["port"] = "web"
    deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "other"
    (out / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    problems = {(p.file, p.path): p.message for p in validate_manifests(out, validator="schema").problems}
    containers = "spec.template.spec.containers[0]"
    assert "integer" in problems[("deployment.yaml", "spec.replicas")]
    if HAS_K8S_MODELS:  # unknown fields need the API schema
        assert problems[("deployment.yaml", f"{containers}.imagePullPolcy")] == "unknown field"
    assert "quantity" in problems[("deployment.yaml", f"{containers}.resources.limits.memory")]
    assert "no container port named 'web'" in problems[("deployment.yaml", f"{containers}.readinessProbe.httpGet.port")]
    assert ("deployment.yaml", "spec.selector.matchLabels.app.kubernetes.io/name") in problems
    assert ("service.yaml", "spec.selector") in problems  # the service no longer selects the pods


def test_invalid_rendering_exits_2_and_records_nothing(proj: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.deploy import k8s

    register_package(proj, "one")
    real = k8s.render_llmops

    def broken(spec: Any, package: Any) -> Any:
        rendered = real(spec, package)
        rendered.files[0].obj["spec"]["replicas"] = "two"  # type: ignore[index]
        return rendered

    monkeypatch.setattr(k8s, "render_llmops", broken)
    result = cli("deploy", "prod", "--validate", "schema", cwd=proj)
    assert result.exit_code == 2
    assert "deployment.yaml: spec.replicas:" in result.output and "integer" in result.output
    assert ArtifactRegistry.for_config(load_config(proj)).versions(ArtifactRef("deploy", "prod")) == []


def test_without_the_kubernetes_package_structural_checks_still_reject(
    proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops_cli.deploy import manifest_check

    register_package(proj, "one")
    monkeypatch.setattr(manifest_check, "_models_module", lambda: None)
    result = deploy(load_config(proj), "prod", SCHEMA)
    assert result.validation is not None and result.validation.ok and result.validation.validator == "structure"
    assert "pip install 'kubernetes>=37'" in result.validation.notes[0]
    out = proj / "deploy" / "prod"
    deployment = load_yaml(out / "deployment.yaml")
    deployment["spec"]["replicas"] = "two"
    (out / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    (problem,) = validate_manifests(out, validator="schema").problems
    assert str(problem) == "deployment.yaml: spec.replicas: must be an integer (got 'two')"


def test_kubectl_is_used_when_present_and_falls_back_offline(
    proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_package(proj, "one")
    deploy(load_config(proj), "prod", SCHEMA)
    out = proj / "deploy" / "prod"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def fake(stderr: str, code: int) -> None:
        kubectl.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
        kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)

    fake("error: failed to download openapi: dial tcp 127.0.0.1:8080: connect: connection refused", 1)
    offline = validate_manifests(out)
    assert offline.ok and offline.validator == "schema" and "could not reach a cluster" in offline.notes[0]
    fake(f'error: error validating "{out}/service.yaml": error validating data: bad port', 1)
    rejected = validate_manifests(out)
    assert rejected.validator == "kubectl + schema"
    assert [str(p) for p in rejected.problems] == ["service.yaml: (document): kubectl: error validating data: bad port"]
    fake("", 0)
    assert validate_manifests(out).validator == "kubectl + schema"


# --- kubernetes: vLLM and KServe --------------------------------------------------------------------


def test_vllm_runtime_serves_the_base_model_with_lora_adapters(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "gpu", SCHEMA)
    assert result.validation is not None and result.validation.ok
    pod = load_yaml(proj / "deploy" / "gpu" / "deployment.yaml")["spec"]["template"]["spec"]
    gateway, vllm = pod["containers"]  # the llmops gateway in front: tests/test_deploy_gateway.py
    assert gateway["name"] == "gateway" and vllm["image"].startswith("vllm/vllm-openai:")
    args = vllm["args"]
    # the package ships the embedded GGUF: vLLM takes the original weights from the hub
    assert args[0] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert args[args.index("--served-model-name") + 1] == "base"
    assert "--enable-lora" in args
    assert args[args.index("--lora-modules") + 1] == "answer-lora=/models/artifacts/adapter/answer-lora"
    assert args[args.index("--max-lora-rank") + 1] == "8"  # answer-lora has r: 8
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[name]["httpGet"]["path"] == "/health"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert 'if [ -z "$VLLM_API_KEY" ]' in vllm["command"][2]  # an empty key must not mean "open"
    (copy,) = pod["initContainers"]
    assert copy["image"] == "bot:v1" and "/app/artifacts/adapter/answer-lora/." in copy["command"][2]
    assert any("chain 'rag-answer'" in n for n in result.notes)


def test_vllm_runtime_serves_a_quantized_package_model(proj: Path) -> None:
    quantized = package_manifest()
    quantized["serves"] = {"chain": None, "model": "base-4bit", "adapter": None}
    quantized["artifacts"] = [
        {"kind": "quantized", "name": "base-4bit", "version": 2, "ref": "quantized/base-4bit@v2", "hash": "sha256:3",
         "path": "artifacts/quantized/base-4bit", "detail": {"bits": 4}},
    ]  # fmt: skip
    register_package(proj, "q", serves=quantized["serves"], artifacts=quantized["artifacts"])
    deploy(load_config(proj), "gpu", SCHEMA)
    args = load_yaml(proj / "deploy" / "gpu" / "deployment.yaml")["spec"]["template"]["spec"]["containers"][1]["args"]
    assert args[0] == "/models/artifacts/quantized/base-4bit"
    assert args[args.index("--quantization") + 1] == "bitsandbytes" and "--enable-lora" not in args


def test_kserve_runtime_renders_an_llm_inference_service(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "ks", SCHEMA)
    assert result.validation is not None and result.validation.ok, result.validation
    out = proj / "deploy" / "ks"
    isvc = load_yaml(out / "llminferenceservice.yaml")
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1alpha1", "LLMInferenceService")
    model = isvc["spec"]["model"]
    assert model["uri"] == "hf://HuggingFaceTB/SmolLM2-135M-Instruct" and model["name"] == "base"
    assert model["lora"]["adapters"] == [
        {"name": "answer-lora", "uri": "pvc://bot-ks-models/artifacts/adapter/answer-lora"}
    ]
    (main,) = isvc["spec"]["template"]["containers"]
    assert main["name"] == "main" and main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    job = load_yaml(out / "storage" / "copy-weights-job.yaml")
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "bot-ks-models"
    assert load_yaml(out / "storage" / "pvc.yaml")["kind"] == "PersistentVolumeClaim"
    # structural checks of the custom resource
    del isvc["spec"]["model"]["uri"]
    isvc["spec"]["model"]["lora"]["adapters"][0]["name"] = "base"
    isvc["spec"]["template"]["containers"][0]["bogus"] = 1
    (out / "llminferenceservice.yaml").write_text(yaml.safe_dump(isvc))
    problems = {p.path for p in validate_manifests(out, validator="schema").problems}
    expected = {"spec.model.uri", "spec.model.lora.adapters[0].name"}
    assert problems == (expected | {"spec.template.containers[0].bogus"} if HAS_K8S_MODELS else expected)


def test_rendering_replaces_only_its_own_files(proj: Path) -> None:
    register_package(proj, "one")
    config = load_config(proj)
    deploy(config, "ks", SCHEMA)
    out = proj / "deploy" / "ks"
    entry = dict(DEPLOYMENTS["ks"], runtime="llmops")
    deploy(config, "ks", SCHEMA, entry=entry)  # the same folder, another runtime
    assert not (out / "llminferenceservice.yaml").exists() and not (out / "storage").exists()
    assert (out / "deployment.yaml").is_file()
    foreign = proj / "elsewhere"
    foreign.mkdir()
    (foreign / "kustomization.yaml").write_text("resources: []\n")
    with pytest.raises(UsageError, match="did not write"):
        deploy(config, "prod", DeployOptions(validator="schema", output=foreign))


# --- docker -------------------------------------------------------------------------------------------


def test_docker_target_writes_dockerfile_and_compose(proj: Path) -> None:
    register_package(proj, "one")
    result = deploy(load_config(proj), "box", SCHEMA)
    out = proj / "deploy" / "box"
    assert result.validation is not None and result.validation.ok, result.validation
    assert (out / "Dockerfile").read_text() == (out / "context" / "Dockerfile").read_text()
    assert (out / "context" / "manifest.json").is_file()
    compose = load_yaml(out / "compose.yaml")
    (service,) = compose["services"].values()
    assert service["build"] == {"context": "context", "dockerfile": "../Dockerfile"}
    assert service["ports"] == ["127.0.0.1:8080:8000"]
    assert service["environment"]["LLMOPS_API_KEYS"].startswith("${LLMOPS_API_KEYS:?")  # unset: refuses to start
    assert service["healthcheck"]["test"][:2] == ["CMD", "python"] and "/health" in service["healthcheck"]["test"][3]
    assert service["restart"] == "unless-stopped"
    assert ".env" in (out / ".gitignore").read_text().split()
    assert result.url == "http://127.0.0.1:8080"
    recorded = {
        f["path"]
        for f in ArtifactRegistry.for_config(load_config(proj)).get(ArtifactRef("deploy", "box")).manifest["files"]
    }
    assert recorded == {"deployment.json", "manifests/Dockerfile", "manifests/compose.yaml"}
    service["restart"] = "sometimes"
    service["ports"] = ["eighty"]
    (out / "compose.yaml").write_text(yaml.safe_dump(compose))
    from llmops_cli.deploy.docker import check_compose

    assert {p.path for p in check_compose(out)} == {"services.bot.restart", "services.bot.ports[0]"}


# --- history and rollback ----------------------------------------------------------------------------


def test_history_and_rollback_record_the_package_versions(proj: Path, cli: Any) -> None:
    register_package(proj, "one")
    register_package(proj, "two")
    config = load_config(proj)
    deploy(config, "prod", DeployOptions(validator="schema", package_version=1))
    deploy(config, "prod", SCHEMA)

    def image() -> str:
        pod = load_yaml(proj / "deploy" / "prod" / "deployment.yaml")["spec"]["template"]["spec"]
        return str(pod["containers"][0]["image"])

    assert image() == "bot:v2"
    back = rollback(config, "prod", options=SCHEMA)
    assert back.tag == "deploy/prod/v3" and back.package is not None and back.package.version == 1
    assert back.rollback == {"restores": 1, "replaces": 2}
    assert image() == "bot:v1"
    rows = history(config, "prod")
    assert [(r.record.version, r.record.package_version, r.status) for r in rows] == [
        (1, 1, "superseded"), (2, 2, "superseded"), (3, 1, "rendered"),
    ]  # fmt: skip
    assert rows[-1].record.rollback == {"restores": 1, "replaces": 2}
    again = rollback(config, "prod", options=SCHEMA)  # back to the package before the current one
    assert again.package is not None and again.package.version == 2 and again.rollback == {"restores": 2, "replaces": 3}
    chosen = rollback(config, "prod", to=3, options=SCHEMA)
    assert chosen.package is not None and chosen.package.version == 1
    tags = git(proj, "tag", "--list", "deploy/prod/*").split()
    assert tags == [f"deploy/prod/v{n}" for n in range(1, 6)]
    with pytest.raises(UsageError, match="has no v9"):
        rollback(config, "prod", to=9)
    listing = cli("deploy", "history", "prod", cwd=proj)
    assert listing.exit_code == 0
    assert "rollback to v3" in listing.output and "bot@v1" in listing.output and "bot@v2" in listing.output
    as_json = json.loads(cli("deploy", "history", "prod", "--json", cwd=proj).stdout)
    assert [r["package_version"] for r in as_json] == [1, 2, 1, 2, 1]
    status = cli("deploy", "status", "prod", cwd=proj)
    assert status.exit_code == 0 and "v5" in status.output and "bot@v1" in status.output
    back_cli = cli("deploy", "rollback", "prod", "--to", "v2", "--validate", "schema", "--json", cwd=proj)
    assert back_cli.exit_code == 0, back_cli.output
    assert json.loads(back_cli.stdout)["rollback"] == {"restores": 2, "replaces": 5}


def test_rollback_needs_an_earlier_package_version(proj: Path) -> None:
    register_package(proj, "one")
    config = load_config(proj)
    deploy(config, "prod", SCHEMA)
    deploy(config, "prod", SCHEMA)  # the same package version again
    with pytest.raises(UsageError, match="Nothing to roll back to"):
        rollback(config, "prod", options=SCHEMA)


def test_missing_package_says_how_to_build_it(proj: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli("deploy", "prod", "--validate", "schema", cwd=proj)
    assert result.exit_code == 2
    assert "no registered version" in result.output and "llmops package bot" in result.output
    wrong = cli("deploy", "prdo", cwd=proj)
    assert wrong.exit_code == 2 and "Did you mean 'prod'?" in wrong.output

    import llmops_cli.package as package_module

    built: list[str] = []

    def fake_build(config: Any, name: str, **kwargs: Any) -> Any:
        built.append(name)
        version = register_package(config.root, "built")
        return type("Result", (), {"version": f"package/{name}/v{version}"})()

    monkeypatch.setattr(package_module, "build_package", fake_build)
    result = cli("deploy", "prod", "--build", "--validate", "schema", cwd=proj)
    assert result.exit_code == 0, result.output
    assert built == ["bot"] and "deploy/prod/v1: rendered package/bot@v1" in result.output


# --- local: process management (stand-in server) ------------------------------------------------------


def test_local_lifecycle_status_logs_redeploy_rollback_stop(proj: Path, tmp_path: Path, stop_servers: None) -> None:
    register_package(proj, "one")
    register_package(proj, "two")
    config = load_config(proj)
    first = deploy(config, "local", local_options(tmp_path, package_version=1))
    state = first.local
    assert state is not None and alive(state.pid, state.process_start)
    assert first.tag == "deploy/local/v1" and first.url == f"http://127.0.0.1:{state.port}"
    saved = read_state(config, "local")
    assert saved is not None and (saved.pid, saved.port, saved.package_version, saved.deploy_version) == (
        state.pid, state.port, 1, 1,
    )  # fmt: skip
    assert Path(saved.log).is_file() and Path(saved.log).parent == proj / ".llmops" / "deploy" / "local"
    assert "--api-keys-env" in saved.argv and str(proj / ".llmops" / "monitor.db") in saved.argv
    status = local_status(config, "local")
    assert (status.status, status.health, status.ready) == ("running", "ok", "ready")
    assert status.uptime_s is not None and status.uptime_s >= 0
    assert any("stand-in serving" in line for line in tail(Path(saved.log), 5))
    assert (
        proj / ".llmops" / "deploy" / "local" / f"package-v1-{saved.package_sha256[:12]}" / "manifest.json"
    ).is_file()

    second = deploy(config, "local", local_options(tmp_path))  # v2 of the package: the server restarts
    assert second.local is not None and second.package is not None and second.package.version == 2
    assert not alive(state.pid, state.process_start)
    assert any("was stopped" in note for note in second.notes)
    assert not list((proj / ".llmops" / "deploy" / "local").glob("package-v1-*"))  # the old unpacked copy is gone

    back = rollback(config, "local", options=local_options(tmp_path))
    assert back.package is not None and back.package.version == 1 and back.rollback == {"restores": 1, "replaces": 2}
    assert not alive(second.local.pid, second.local.process_start)
    rows = history(config, "local")
    assert [(r.record.version, r.status) for r in rows] == [(1, "superseded"), (2, "superseded"), (3, "running")]

    outcome, stopped = stop_local(config, "local", timeout_s=5)
    assert outcome == "stopped" and stopped is not None and not alive(stopped.pid, stopped.process_start)
    assert local_status(config, "local").status == "stopped"
    assert history(config, "local")[-1].status == "stopped"
    assert stop_local(config, "local")[0] == "not running"


def test_local_stale_pid_and_port_in_use(proj: Path, tmp_path: Path, stop_servers: None) -> None:
    register_package(proj, "one")
    config = load_config(proj)
    result = deploy(config, "local", local_options(tmp_path))
    assert result.local is not None
    os.kill(result.local.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(result.local.pid, result.local.process_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local_status(config, "local").status == "exited"
    assert stop_local(config, "local")[0] == "exited"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"Port {taken} on 127.0.0.1 is already in use"):
            deploy(config, "local", local_options(tmp_path, port=taken))


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("die", r"exited \(code 3\) before it was ready"),
        ("error", "model failed to load: weights are missing"),
        ("loading", "did not become ready within 2 s"),
    ],
)
def test_local_start_failures_show_the_log_and_leave_nothing_running(
    proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, message: str, stop_servers: None
) -> None:
    register_package(proj, "one")
    monkeypatch.setenv("STANDIN_MODE", mode)
    config = load_config(proj)
    with pytest.raises(UnavailableError, match=message) as caught:
        deploy(config, "local", local_options(tmp_path, timeout_s=2))
    assert "stand-in serving" in caught.value.message  # the log tail
    state = read_state(config, "local")
    assert state is not None and state.stopped_at is not None and not alive(state.pid, state.process_start)
    assert ArtifactRegistry.for_config(config).versions(ArtifactRef("deploy", "local")) == []


def test_local_cli_status_logs_stop(proj: Path, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.deploy import local

    register_package(proj, "one")
    monkeypatch.setattr(local, "default_launcher", lambda: standin(tmp_path))
    try:
        started = cli("deploy", "local", "--port", "0", cwd=proj)
        assert started.exit_code == 0, started.output
        assert "deploy/local/v1: package/bot@v1 is serving at http://127.0.0.1:" in started.output
        assert "LLMOPS_API_KEYS is not set" in started.output
        status = cli("deploy", "status", "local", "--json", cwd=proj)
        data = json.loads(status.stdout)
        assert data["status"] == "running" and data["health"] == "ok" and data["package_version"] == 1
        logs = cli("deploy", "logs", "local", "-n", "1", cwd=proj)
        assert logs.exit_code == 0 and logs.stdout.startswith("stand-in serving")
        remote = cli("deploy", "logs", "prod", cwd=proj)
        assert remote.exit_code == 2 and "kubectl -n support logs" in remote.output
    finally:
        stopped = cli("deploy", "stop", "local", "--timeout", "5", cwd=proj)
    assert stopped.exit_code == 0 and "server stopped" in stopped.output


# --- local: the real server on a tiny model --------------------------------------------------------------


def test_local_deploy_serves_the_project_and_a_built_package_with_llmops_serve(
    proj: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop_servers: None,
) -> None:
    """The real server, twice: from the project folder, then from a package built by 'llmops package'."""
    from llmops_cli.monitor import MonitorStore
    from llmops_cli.package import build_package

    path = proj / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["base"] = {"source": str(tiny_model_dir), "dtype": "float32"}
    data["packages"]["bot"] = {"model": "base"}  # no adapter: none is trained here
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(proj, "commit", "-qam", "tiny model")
    monkeypatch.setenv("LLMOPS_API_KEYS", KEY)
    config = load_config(proj)
    launcher = [sys.executable, "-c", REAL_LLMOPS]
    body = {"model": "base", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
    auth = {"Authorization": f"Bearer {KEY}"}

    options = DeployOptions(from_project=True, launcher=launcher, timeout_s=120, port=0)
    result = deploy(config, "local", options)
    assert result.package is None and result.local is not None and result.url is not None
    answer = httpx.post(result.url + "/v1/chat/completions", json=body, headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    assert httpx.post(result.url + "/v1/chat/completions", json=body, timeout=60).status_code == 401
    status = local_status(config, "local")
    assert (status.status, status.health, status.ready) == ("running", "ok", "ready")
    recorded = ArtifactRegistry.for_config(config).get(ArtifactRef("deploy", "local")).manifest
    assert recorded["params"]["source"] == "project" and recorded["inputs"][0]["ref"].startswith("project@")
    with pytest.raises(UsageError, match="no earlier version"):
        rollback(config, "local")  # a project-folder deployment names no package version

    built = build_package(config, "bot")
    packaged = deploy(config, "local", DeployOptions(launcher=launcher, timeout_s=120, port=0))
    assert packaged.package is not None and f"package/bot/v{packaged.package.version}" == built.version
    assert not alive(result.local.pid, result.local.process_start)  # the project-folder server was replaced
    assert packaged.url is not None and packaged.local is not None
    assert Path(packaged.local.serve_root).parent == proj / ".llmops" / "deploy" / "local"
    answer = httpx.post(packaged.url + "/v1/chat/completions", json=body, headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    assert stop_local(config, "local", timeout_s=30)[0] == "stopped"
    with MonitorStore(proj / ".llmops" / "monitor.db") as store:  # the project's store, for llmops monitor
        assert store.count(endpoint="/v1/chat/completions") >= 2


def test_from_project_is_only_for_local(proj: Path) -> None:
    with pytest.raises(UsageError, match="only for target local"):
        deploy(load_config(proj), "prod", DeployOptions(from_project=True))
