"""``llmops deploy``: run a package locally, or render Kubernetes / Docker files; status, logs, stop,
history and rollback. ``llmops deploy ENV`` is short for ``llmops deploy up ENV``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli import output, render_deploy
from llmops_cli.cli.base import LlmopsTyper, default_command_group
from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.state import STATE

EnvArg = Annotated[str, typer.Argument(help="Deployment (under deployments: in llmops.yaml).")]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="kubernetes/docker: folder for the rendered files (default: deploy/ENV/).",
                 file_okay=False),
]  # fmt: skip
ValidateOpt = Annotated[
    str,
    typer.Option("--validate", help="kubernetes: auto (kubectl when it reaches a cluster, plus the API schema), "
                 "kubectl, schema (offline) or none.", metavar="HOW"),
]  # fmt: skip
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="local: seconds to wait for /ready.")]
PortOpt = Annotated[
    int | None, typer.Option("--port", "-p", min=0, max=65535, help="local: port (0 picks a free one).")
]


app = LlmopsTyper(
    cls=default_command_group("up", default_takes_options=False),
    help="Deploy a package (`llmops deploy ENV` is short for `llmops deploy up ENV`): a local background "
    "server, or validated Kubernetes / Docker files; every deployment is recorded in git as deploy/ENV/vN.",
)


@app.command("up")
def up(
    env: EnvArg,
    package_version: Annotated[
        int | None, typer.Option("--package-version", min=1, help="Deploy package/NAME/vN (default: the latest).")
    ] = None,
    build: Annotated[bool, typer.Option("--build", help="Build (and register) the package first.")] = False,
    from_project: Annotated[
        bool, typer.Option("--from-project", help="local: serve the project folder itself, not a package.")
    ] = False,
    port: PortOpt = None,
    output_dir: OutputOpt = None,
    validate: ValidateOpt = "auto",
    timeout: TimeoutOpt = 300.0,
    json_out: JsonOpt = False,
) -> None:
    """Deploy ENV: target local starts the server in the background and waits until it is ready;
    kubernetes and docker render their files and validate them. Records deploy/ENV/vN in git."""
    from llmops_cli.deploy import DeployOptions, deploy

    options = DeployOptions(package_version=package_version, build=build, from_project=from_project, port=port,
                            output=output_dir, validator=validate, timeout_s=timeout)  # fmt: skip
    config = STATE.config()
    with output.progress(f"deploy {env}", enabled=not (json_out or STATE.quiet), style="status") as report:
        result = deploy(config, env, options, progress=report)
    render_deploy.print_result(result, json_out)


@app.command("rollback")
def rollback(
    env: EnvArg,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Restore deploy/ENV/vN (default: the previous package version).", metavar="vN"),
    ] = None,
    port: PortOpt = None,
    output_dir: OutputOpt = None,
    validate: ValidateOpt = "auto",
    timeout: TimeoutOpt = 300.0,
    json_out: JsonOpt = False,
) -> None:
    """Deploy again the package version an earlier deployment served (local: restart the server on
    it; kubernetes/docker: render its files again), recorded as a new version marked as a rollback."""
    from llmops_cli.deploy import DeployOptions
    from llmops_cli.deploy import rollback as do_rollback

    options = DeployOptions(port=port, output=output_dir, validator=validate, timeout_s=timeout)
    with output.progress(f"rollback {env}", enabled=not (json_out or STATE.quiet), style="status") as report:
        result = do_rollback(STATE.config(), env, to=_version(to), options=options, progress=report)
    render_deploy.print_result(result, json_out)


@app.command("status")
def status(env: EnvArg, json_out: JsonOpt = False) -> None:
    """Whether ENV runs (local: pid, URL, uptime, /health and /ready) or what was last rendered."""
    from llmops_cli.deploy import deployment_spec, latest_record, local_status

    config = STATE.config()
    spec = deployment_spec(config, env)
    record = latest_record(config, env)
    if spec.target != "local":
        render_deploy.print_rendered_status(env, spec, record, json_out=json_out)
        return
    render_deploy.print_local_status(env, local_status(config, env), record, json_out=json_out)


@app.command("logs")
def logs(
    env: EnvArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to print.")] = 50,
) -> None:
    """Print the local server's log (the latest start; the one before is server.log.1)."""
    import sys

    from llmops_cli.deploy import deployment_spec, log_path
    from llmops_cli.deploy.process import follow as follow_lines
    from llmops_cli.deploy.process import tail
    from llmops_cli.errors import UsageError

    config = STATE.config()
    spec = deployment_spec(config, env)
    if spec.target != "local":
        raise UsageError(f"deployment '{env}' runs on {spec.target}; llmops keeps logs only for local servers.",
                         hint=_remote_hint(spec, "logs"))  # fmt: skip
    path = log_path(config, env)
    if not path.is_file():
        raise UsageError(f"{env} has no log yet (never started here).", hint=f"Run 'llmops deploy {env}'.")
    for line in tail(path, lines):
        sys.stdout.write(line + "\n")
    if follow:
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            for line in follow_lines(path):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()


@app.command("stop")
def stop(
    env: EnvArg,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 35.0,
) -> None:
    """Stop the local server (SIGTERM, then SIGKILL after --timeout); a stale record is cleaned up."""
    from llmops_cli.deploy import deployment_spec, stop_local
    from llmops_cli.errors import UsageError

    config = STATE.config()
    spec = deployment_spec(config, env)
    if spec.target != "local":
        raise UsageError(
            f"deployment '{env}' runs on {spec.target}, not on this machine.", hint=_remote_hint(spec, "stop")
        )
    outcome, state = stop_local(config, env, timeout_s=timeout)
    pid = f" (pid {state.pid})" if state else ""
    messages = {
        "stopped": f"{env}: server stopped{pid}",
        "killed": f"{env}: server did not stop within {timeout:.0f} s and was killed{pid}",
        "exited": f"{env}: the server{pid} had already exited; its record is closed",
        "not running": f"{env}: not running",
    }
    output.success(messages[outcome]) if outcome in ("stopped", "killed") else output.info(messages[outcome])


@app.command("history")
def history(env: EnvArg, json_out: JsonOpt = False) -> None:
    """Every recorded deployment of ENV: version, package version, target, date, status."""
    from llmops_cli.deploy import history as deploy_history

    rows = deploy_history(STATE.config(), env)
    render_deploy.print_history(env, rows, json_out=json_out)


# -- helpers ----------------------------------------------------------------------------------------


def _version(text: str | None) -> int | None:
    from llmops_cli.errors import UsageError

    if text is None:
        return None
    digits = text[1:] if text.lower().startswith("v") else text
    if not digits.isdigit():
        raise UsageError(f"--to {text!r}: expected a version such as v3")
    return int(digits)


def _remote_hint(spec: Any, what: str) -> str:
    if spec.target == "kubernetes":
        ns = f" -n {spec.namespace}" if spec.namespace else ""
        return f"Use kubectl{ns} {'logs deployment/NAME' if what == 'logs' else 'scale deployment/NAME --replicas=0'}."
    return f"Use 'docker compose {what}' in the deployment's output folder."
