"""What one ``llmops quantize`` run built, measured and registered, and how it is summarized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_cli.errors import QualityGateFailed
from llmops_cli.quantize.measure import Measurement
from llmops_cli.quantize.quality import QualityReport


@dataclass
class QuantizeResult:
    """What one ``llmops quantize`` run built, measured and registered."""

    name: str
    version: str  # the tag, quantized/NAME/vN
    folder: Path
    params: dict[str, Any]
    source: str  # what was quantized, in words
    device: str
    quantize_s: float
    size_bytes: int  # the whole artifact folder
    weights_bytes: int  # its checkpoint files
    source_weights_bytes: int  # the unquantized checkpoint the build started from
    reference_footprint_bytes: int  # get_memory_footprint() of the unquantized model in bfloat16
    quantized: Measurement
    baseline: Measurement | None = None
    quality: QualityReport | None = None

    @property
    def footprint_ratio(self) -> float:
        return self.quantized.footprint_bytes / self.reference_footprint_bytes

    @property
    def gate_passed(self) -> bool:
        return self.quality is None or self.quality.passed

    def metrics(self) -> dict[str, Any]:
        """Numbers kept in the version's artifact.json."""
        q = self.quantized
        metrics: dict[str, Any] = {
            "size_bytes": self.size_bytes,
            "weights_bytes": self.weights_bytes,
            "source_weights_bytes": self.source_weights_bytes,
            "footprint_bytes": q.footprint_bytes,
            "reference_footprint_bytes": self.reference_footprint_bytes,
            "footprint_ratio": round(self.footprint_ratio, 4),
            "quantize_s": round(self.quantize_s, 3),
            "load_s": round(q.load_s, 3),
            "latency_ms": round(q.latency_ms, 1),
            "ms_per_token": round(q.ms_per_token, 2),
            "new_tokens": q.new_tokens,
            "device": self.device,
        }
        if self.baseline is not None:
            b = self.baseline
            metrics.update(
                baseline_dtype=b.dtype,
                baseline_footprint_bytes=b.footprint_bytes,
                baseline_load_s=round(b.load_s, 3),
                baseline_latency_ms=round(b.latency_ms, 1),
                baseline_ms_per_token=round(b.ms_per_token, 2),
            )
        if self.quality is not None:
            metrics["quality"] = self.quality.as_dict()
        return metrics

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "folder": str(self.folder),
            "source": self.source,
            "params": self.params,
            "metrics": self.metrics(),
            "quantized": self.quantized.as_dict(),
            "baseline": None if self.baseline is None else self.baseline.as_dict(),
            "quality": None if self.quality is None else self.quality.as_dict(),
            "gate_passed": self.gate_passed,
        }

    def raise_for_gate(self) -> None:
        """Raise :class:`QualityGateFailed` (exit code 5) when the quality check failed its limit."""
        if self.quality is None or self.quality.passed:
            return
        q = self.quality
        if not q.compared:
            why = f"no metric of '{q.suite}' could be compared ({q.note or 'no values'})"
        else:
            drops = "; ".join(
                f"{m.metric} {m.original:.4g} -> {m.quantized:.4g} (drop {m.delta:.4g})"
                for m in q.failures()
                if m.original is not None and m.quantized is not None and m.delta is not None
            )
            why = f"quality drop above max_quality_drop {q.max_drop:g} on '{q.suite}': {drops}"
        raise QualityGateFailed(
            f"{self.name}: {why}.",
            hint=f"{self.version} is registered with this report. Raise max_quality_drop, use more bits "
            "(bits: 8) or another quant_type, then run 'llmops quantize' again.",
        )


def summary(result: QuantizeResult) -> str:
    q = result.quantized
    text = (
        f"{_describe_params(result.params)} of {result.source}: footprint {result.footprint_ratio:.2f}x of bfloat16, "
        f"{q.ms_per_token:.1f} ms/token on {result.device}"
    )
    if result.quality is not None:
        worst = result.quality.worst_drop
        drop = "n/a" if worst is None else f"{worst:.4f}"
        text += f"; {result.quality.suite}: worst drop {drop} ({'passed' if result.quality.passed else 'FAILED'})"
    return text


def _describe_params(params: dict[str, Any]) -> str:
    if params.get("method") == "gguf":
        return f"GGUF {params['type']}"
    if params["bits"] == 8:
        return "8-bit"
    return f"4-bit {params['quant_type']}"
