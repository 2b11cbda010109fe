"""Rendering for ``llmops deploy``: the result of up/rollback, status and history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops_cli.cli import output

if TYPE_CHECKING:
    from llmops_cli.deploy import DeploymentSpec, DeployRecord, DeployResult, HistoryRow, LocalStatus


def print_result(result: DeployResult, json_out: bool) -> None:
    if json_out:
        output.print_json(result.as_dict())
        return
    what = result.package.ref if result.package else "the project folder"
    undo = result.rollback
    rollback = f" (rollback to v{undo['restores']}, replacing v{undo['replaces']})" if undo else ""
    from rich.markup import escape

    for note in result.notes:
        output.info(f"[yellow]note:[/yellow] {escape(note)}")
    if result.target == "local":
        assert result.local is not None
        output.success(f"{result.tag}: {what} is serving at {result.url} (pid {result.local.pid}){rollback}")
        output.info(f"[dim]log: {result.local.log}; 'llmops deploy status|logs|stop {result.env}'[/dim]")
        return
    validation = result.validation
    checked = (
        f"validated ({validation.validator})" if validation and validation.validator != "none" else "not validated"
    )
    output.success(
        f"{result.tag}: rendered {what} into {result.output} ({len(result.files)} files, {checked}){rollback}"
    )
    if validation:
        for note in validation.notes:
            output.info(f"[dim]{escape(note)}[/dim]")
    output.info(
        f"next: see {result.output}/README.md"
        + (f" (kubectl apply -f {result.output}/)" if result.target == "kubernetes" else "")
    )


def print_rendered_status(env: str, spec: DeploymentSpec, record: DeployRecord | None, *, json_out: bool) -> None:
    """``deploy status`` for a kubernetes or docker deployment: what was last rendered."""
    data = {"deployment": env, "target": spec.target, "runtime": spec.runtime,
            "last": record.as_dict() if record else None}  # fmt: skip
    if json_out:
        output.print_json(data)
        return
    if record is None:
        output.info(f"{env}: never deployed (run 'llmops deploy {env}')")
        return
    rows = [["version", f"v{record.version} ({record.created})"], ["package", record.package_label],
            ["target", f"{spec.target} ({spec.runtime})" if spec.target == "kubernetes" else spec.target],
            ["where", record.where], ["by", record.who]]  # fmt: skip
    output.table(None, ["", env], rows)
    output.info("llmops does not apply these files: check the cluster with kubectl (or docker compose ps)")


def print_local_status(env: str, state: LocalStatus, record: DeployRecord | None, *, json_out: bool) -> None:
    """``deploy status`` for a local server: pid, URL, uptime, /health and /ready."""
    if json_out:
        output.print_json({**state.as_dict(), "last": record.as_dict() if record else None})
        return
    if state.state is None:
        output.info(f"{env}: never started here (run 'llmops deploy {env}')")
        return
    s = state.state
    version = f"v{s.deploy_version}" if s.deploy_version else "-"
    package = f"{s.package}@v{s.package_version}" if s.package_version else f"{s.package} (project folder)"
    rows = [["status", state.status], ["deployment", f"deploy/{env}/{version}"], ["package", package],
            ["url", s.url], ["pid", str(s.pid)], ["started", s.started_at]]  # fmt: skip
    if state.uptime_s is not None:
        rows.append(["uptime", duration(state.uptime_s)])
    if state.status == "running":
        rows += [["/health", state.health or "-"], ["/ready", state.ready or "-"]]
    if s.stopped_at:
        rows.append(["stopped", s.stopped_at])
    rows.append(["log", s.log])
    output.table(None, ["", env], rows)
    if state.status == "exited":
        output.warn(f"the server exited on its own; 'llmops deploy logs {env}' shows why")


def print_history(env: str, rows: list[HistoryRow], *, json_out: bool) -> None:
    """``deploy history``: one row per recorded deployment, newest first."""
    if json_out:
        output.print_json([r.as_dict() for r in rows])
        return
    if not rows:
        output.info(f"{env}: no deployments recorded yet")
        return
    table = []
    for row in reversed(rows):
        r = row.record
        status = row.status + (f" (rollback to v{r.rollback['restores']})" if r.rollback else "")
        target = f"{r.target}/{r.runtime}" if r.runtime else r.target
        table.append(
            [f"v{r.version}", r.package_label, target, r.created[:19].replace("T", " "), status, r.where, r.who]
        )
    output.table(f"deploy/{env}", ["version", "package", "target", "date", "status", "where", "by"], table)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
