"""Rendering for ``llmops package``: the build result, verify problems and an archive's manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_cli.cli import output

if TYPE_CHECKING:
    from llmops_cli.package import PackageResult, VerifyReport


def print_result(result: PackageResult) -> None:
    from llmops_cli.cli.output import human_size

    m = result.manifest
    hw = m.get("hardware", {})
    rows = [
        ["archive", str(result.archive)],
        ["size", f"{human_size(result.size)} ({result.files} files)"],
        ["sha256", result.sha256],
        ["serves", _serves(m)],
        ["memory (estimate)", human_size(hw.get("memory_bytes", 0))],
        ["git", f"{m.get('git_sha') or '-'}{' (uncommitted changes)' if m.get('git_dirty') else ''}"],
        ["time", f"{result.seconds:.1f} s"],
    ]
    if result.output and result.output != result.archive:
        rows.insert(1, ["copy", str(result.output)])
    output.table(None, ["", result.name], rows)
    if result.version is None:
        output.success(f"wrote {result.archive} (not registered)")
    elif result.reused:
        output.success(f"{result.version} already has exactly this content; nothing new registered")
    else:
        output.success(f"registered {result.version}")


_SHOWN = 20  # rows per kind of problem; --json lists them all


def print_verify(report: VerifyReport) -> None:
    groups: list[list[list[Any]]] = [
        [[p, "missing", ""] for p in report.missing],
        [[p, "extra", "not in the manifest"] for p in report.extra],
        [[a["path"], "altered", f"sha256 {a['actual_sha256'][:12]} (manifest: {a['expected_sha256'][:12]}), "
          f"{a['actual_size']} bytes (manifest: {a['expected_size']})"] for a in report.altered],
        [[u["path"], "unsafe", u["problem"]] for u in report.unsafe],
    ]  # fmt: skip
    rows: list[list[Any]] = []
    for group in groups:
        rows += group[:_SHOWN]
        if len(group) > _SHOWN:
            rows.append([f"… and {len(group) - _SHOWN:,} more", group[0][1], "(--json lists every one)"])
    if rows:
        output.table(f"{report.archive.name}: problems", ["path", "problem", "detail"], rows)
    # report.error is part of the error raised after this, so it is not printed twice
    if report.ok:
        name = (report.manifest or {}).get("package")
        version = (report.manifest or {}).get("version")
        which = f"{name} v{version}" if version else str(name)
        output.success(f"{which}: {report.summary()} (archive sha256 {report.sha256})")


def print_manifest(m: dict[str, Any], *, files: bool) -> None:
    from llmops_cli.cli.output import human_size

    hw = m.get("hardware", {})
    gpu = hw.get("gpu", {})
    version = m.get("version")
    rows = [
        ["package", f"{m.get('package')}{f' v{version}' if version else ''} ({m.get('format')})"],
        ["project", str(m.get("project"))],
        ["serves", _serves(m)],
        ["git", f"{m.get('git_sha') or '-'}{' (uncommitted changes)' if m.get('git_dirty') else ''}"],
        ["python / llmops", f"{m.get('python')} / {m.get('libraries', {}).get('llmops', '?')}"],
        ["memory (estimate)", f"{human_size(hw.get('memory_bytes', 0))} ({hw.get('basis', '')})"],
        ["gpu", ("required" if gpu.get("required") else "not required") + "; " + " ".join(gpu.get("notes", []))],
        ["files", f"{len(m.get('files', [])) + 1} ({human_size(sum(f['size'] for f in m.get('files', [])))})"],
        ["entrypoint", str((m.get("entrypoint") or {}).get("command", ""))],
    ]
    output.table(None, ["", str(m.get("package"))], rows)
    artifacts = [
        [a["kind"], a["name"], f"v{a['version']}" if a.get("version") is not None else "-", a.get("ref"),
         (a.get("hash") or "-")[:19], a.get("path") or "-"]
        for a in m.get("artifacts", [])
    ]  # fmt: skip
    output.table("artifacts", ["kind", "name", "version", "from", "hash", "in package"], artifacts)
    libraries = [[k, v] for k, v in sorted((m.get("libraries") or {}).items())]
    output.table("libraries", ["library", "version"], libraries)
    if files:
        rows = [[f["path"], human_size(f["size"]), f["sha256"][:16]] for f in m.get("files", [])]
        output.table("files", ["path", "size", "sha256"], rows)


def _serves(manifest: dict[str, Any]) -> str:
    parts = []
    for key, value in (manifest.get("serves") or {}).items():
        if value:
            parts.append(f"{key} {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "; ".join(parts) or "-"
