"""``llmops quantize NAME``: build a bitsandbytes 4/8-bit or GGUF variant, report its costs, gate its quality."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli import output
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

if TYPE_CHECKING:
    from llmops_cli.quantize import QualityReport, QuantizeResult


def quantize(
    name: Annotated[str, typer.Argument(help="Quantized model (under quantized: in llmops.yaml) to build.")],
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the check_with eval suite and its max_quality_drop gate.")
    ] = False,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="Do not load and time the unquantized model for comparison.")
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="auto (a CUDA GPU when there is one, else cpu), cpu, cuda or cuda:N.")
    ] = "auto",
    tokens: Annotated[
        int, typer.Option("--tokens", min=1, help="New tokens per timed generation (greedy, fixed prompt).")
    ] = 32,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantize a model (or model + merged adapter) and register quantized/NAME/vN.

    method: bitsandbytes (8-bit or 4-bit nf4/fp4, on transformers) or method: gguf (q8_0, q4_k_m,
    f16..., made with llama.cpp's converter and quantizer, run on llama.cpp). Reports size on disk,
    memory footprint against bfloat16, load time, generation latency and, with check_with, the
    quality drop on that eval suite. Exit code 5 when the drop exceeds max_quality_drop
    (the version is still registered, with its report).
    """
    from llmops_cli.quantize import quantize as run_quantize

    consent_to_code(allow_code)
    cfg = STATE.config()
    with _status(name, enabled=not (json_out or STATE.quiet)) as report:
        result = run_quantize(
            cfg, name, check=not no_check, baseline=not no_baseline, device=device, new_tokens=tokens, progress=report
        )
    if json_out:
        output.print_json(result.as_dict())
    else:
        _print_result(result)
    result.raise_for_gate()


@contextlib.contextmanager
def _status(name: str, *, enabled: bool) -> Iterator[Any]:
    """A rich spinner showing the current step (with the eval's case count); finished steps stay as dim lines."""
    if not enabled:
        yield lambda message, done=None, total=None: None
        return
    from rich.markup import escape

    from llmops_cli.cli.progress import live_status

    console = output.err_console()
    with live_status(f"{name}: starting") as status:
        current: list[str] = []

        def report(message: str, done: int | None = None, total: int | None = None) -> None:
            if current and current[-1] != message and console.is_terminal:
                console.print(f"[dim]  {escape(current[-1])}[/dim]")
            if not current or current[-1] != message:
                current.append(message)
            count = f" ({done}/{total})" if done is not None and total else ""
            status.update(f"{name}: {escape(message)}{count}")

        yield report


def _print_result(result: QuantizeResult) -> None:
    from rich.markup import escape

    from llmops_cli.cli.output import human_size

    q, b = result.quantized, result.baseline
    ratio = f"{result.footprint_ratio:.2f}x"
    header = ["", f"quantized ({_what(result.params)})"]
    if b is not None:
        header.append(f"unquantized ({b.dtype})")
    rows: list[list[Any]] = [
        ["size on disk (weights)", human_size(result.weights_bytes), human_size(result.source_weights_bytes)],
        [
            "memory footprint",
            f"{human_size(q.footprint_bytes)} ({ratio} of bfloat16: {human_size(result.reference_footprint_bytes)})",
            None if b is None else human_size(b.footprint_bytes),
        ],
        ["load time", f"{q.load_s:.2f} s", None if b is None else f"{b.load_s:.2f} s"],
        [
            f"latency ({q.new_tokens} tokens)",
            f"{q.latency_ms:.0f} ms ({q.ms_per_token:.1f} ms/token)",
            None if b is None else f"{b.latency_ms:.0f} ms ({b.ms_per_token:.1f} ms/token)",
        ],
        ["sample answer", escape(_short(q.sample)), None if b is None else escape(_short(b.sample))],
    ]
    if b is None:
        rows = [row[:2] for row in rows]
    output.table(f"{result.name}: {escape(result.source)} on {result.device}", header, rows)
    if result.quality is not None:
        _print_quality(result.quality)
    output.success(
        f"registered {result.version} ({human_size(result.size_bytes)}, {result.quantize_s:.1f} s to quantize)"
    )


def _print_quality(report: QualityReport) -> None:
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    limit = "-" if report.max_drop is None else f"{report.max_drop:g}"
    rows = []
    for m in report.metrics:
        status = {True: "ok", False: "FAILED", None: "-"}[m.passed]
        rows.append([m.metric, num(m.original), num(m.quantized), num(m.delta), limit, status])
    output.table(f"quality: {report.suite} (drop = original - quantized)", ["metric", "original", "quantized",
                 "drop", "max drop", ""], rows)  # fmt: skip
    if report.note:
        output.info(f"note: {report.note}")


def _what(params: dict[str, Any]) -> str:
    if params.get("method") == "gguf":
        return f"GGUF {params.get('type')}"
    if params.get("bits") == 8:
        return "8-bit"
    return f"4-bit {params.get('quant_type')}"


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
