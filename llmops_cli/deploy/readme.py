"""The README.md written beside rendered output: how to build, fill the secret, apply and check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.deploy.k8s import secret_name
from llmops_cli.deploy.spec import release_name

if TYPE_CHECKING:
    from llmops_cli.config.deployments import DeploymentSpec
    from llmops_cli.deploy.k8s import Rendered
    from llmops_cli.deploy.package_ref import PackageRef


def _build_steps(package: PackageRef, image: str) -> list[str]:
    archive = f"artifacts/package/{package.name}/{package.name}.tar.gz"
    return [
        "1. Build the image from the package's Dockerfile and push it where the cluster pulls from",
        f"   (the default name `{image}` is local; set `image:` on the deployment for a registry):",
        "",
        "   ```bash",
        f"   llmops checkout package/{package.name}@v{package.version}   # if another version is checked out",
        f"   llmops package unpack {archive} build/{package.name}-v{package.version}",
        f"   docker build -t {image} build/{package.name}-v{package.version}",
        f"   docker push {image}",
        "   ```",
    ]


def kubernetes_readme(spec: DeploymentSpec, package: PackageRef, rendered: Rendered, output: str) -> str:
    ns = spec.namespace or "default"
    n = f" -n {ns}"
    name = release_name(spec)
    lines = [
        f"# Deployment `{spec.env}`: {package.ref} on Kubernetes ({spec.runtime} runtime)",
        "",
        f"Rendered by `llmops deploy {spec.env}`; edit `llmops.yaml` and render again rather than editing",
        "these files. Every render is recorded in git as `deploy/ENV/vN` (`llmops deploy history`).",
        "",
    ]
    image = rendered.where.get("image")
    step = 1
    if image:
        lines += _build_steps(package, str(image)) + [""]
        step = 2
    lines += [f"{step}. Create the namespace if needed: `kubectl create namespace {ns}`.", ""]
    step += 1
    keys = [spec.keys_env, "VLLM_API_KEY"] if spec.runtime == "vllm" else [spec.keys_env]
    literals = " ".join(f'--from-literal={k}="$(openssl rand -hex 24)"' for k in keys)
    lines += [
        f"{step}. Create the API-key Secret once (clients' comma-separated keys in {spec.keys_env}"
        + ("; VLLM_API_KEY is only between the gateway and vLLM" if spec.runtime == "vllm" else "")
        + "; never commit real keys).",
        "   `secret/api-keys.yaml` only shows its shape, with empty values the servers refuse to start with:",
        "",
        "   ```bash",
        f"   kubectl{n} create secret generic {secret_name(spec)} {literals}",
        "   ```",
        "",
    ]
    step += 1
    if any(f.path == "secret/monitor-store.yaml" for f in rendered.files):
        from llmops_cli.deploy.gateway import STORE_ENV, store_secret_name

        lines += [
            f"{step}. Create the monitor-store Secret once: the PostgreSQL URL every pod logs requests to",
            "   (`secret/monitor-store.yaml` shows its shape; `llmops monitor` reads the same database):",
            "",
            "   ```bash",
            f"   kubectl{n} create secret generic {store_secret_name(spec)} "
            f"--from-literal={STORE_ENV}='postgresql://USER:PASSWORD@HOST:5432/DB'",
            "   ```",
            "",
        ]
        step += 1
    if spec.runtime == "kserve" and any(f.path.startswith("storage/") for f in rendered.files):
        lines += [
            f"{step}. Copy the weights into the volume: `kubectl apply -f {output}/storage/` and wait for the Job.",
            "",
        ]
        step += 1
    lines += [f"{step}. Apply: `kubectl apply -f {output}/`", ""]
    step += 1
    if spec.runtime == "kserve":
        lines += [f"{step}. Check: `kubectl{n} get llminferenceservice {name}` (ready once vLLM is loaded), then", ""]
        lines += [
            f"   `kubectl{n} port-forward service/{name} {spec.port}:{spec.port}` (the llmops gateway) and call",
            f"   `http://127.0.0.1:{spec.port}/v1/models` with `Authorization: Bearer <key>`.",
            "",
        ]
    else:
        lines += [
            f"{step}. Check: `kubectl{n} rollout status deployment/{name}`, then",
            f"   `kubectl{n} port-forward service/{name} {spec.port}:{spec.port}` and call",
            f"   `http://127.0.0.1:{spec.port}/v1/models` with `Authorization: Bearer <key>`.",
            "",
        ]
    if rendered.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in rendered.notes] + [""]
    return "\n".join(lines)


def docker_readme(spec: DeploymentSpec, package: PackageRef, rendered: Rendered) -> str:
    key = spec.keys_env
    url = rendered.where.get("url")
    lines = [
        f"# Deployment `{spec.env}`: {package.ref} with Docker Compose",
        "",
        f"Rendered by `llmops deploy {spec.env}`. `context/` is the unpacked package (the build context) and",
        "`.env` holds the real keys: both stay out of git (`.gitignore`).",
        "",
        "```bash",
        "cp .env.example .env          # then put comma-separated API keys after the '='",
        "docker compose up -d --build  # builds the image from the package and starts it",
        "docker compose ps             # healthy once /health answers",
        f'curl -H "Authorization: Bearer $(grep {key} .env | cut -d= -f2 | cut -d, -f1)" {url}/v1/models',
        "```",
        "",
        "Requests are logged to the `monitor` volume (`/data/monitor.db` in the container).",
        "",
    ]
    if rendered.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in rendered.notes] + [""]
    return "\n".join(lines)
