"""``llmops quantize``: bitsandbytes 4/8-bit builds, reload with plain transformers, providers, the gate.

Unit tests quantize a tiny random Llama on the CPU (bitsandbytes >= 0.49 has CPU kernels); hidden
size 64, because bitsandbytes' AVX512-BF16 4-bit path needs in_features >= its 64-wide blocks. The
quality gate runs against the eval runner's interface with ``run_suite`` replaced by a fake.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_GATE, EXIT_USAGE, ConfigError, UsageError
from tests.fixtures.quantize import LORA_TARGETS, write_project
from tests.helpers import git


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def qproject(tmp_path: Path, untied_llama_dir: Path) -> Path:
    return write_project(tmp_path / "proj", untied_llama_dir)


def load(root: Path) -> Any:
    from llmops_cli.validation import load_config

    return load_config(root)


def add_adapter(root: Path, model_dir: Path) -> Path:
    """A LoRA adapter with non-zero B (so merging changes the weights), registered as adapter/a-lora/v1."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from llmops_cli.versioning import ArtifactRegistry

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    out = root.parent / "adapter-build"
    peft_model.save_pretrained(str(out))
    (out / "train_config.json").write_text(json.dumps({"method": "lora"}))
    files = {p.name: p for p in out.iterdir() if p.is_file() and p.name != "README.md"}
    ArtifactRegistry.for_config(load(root)).register("adapter", "a-lora", files)
    return ArtifactRegistry.for_config(load(root)).folder("adapter", "a-lora")


def greedy(folder: Path, **load_options: Any) -> list[int]:
    """Generate with nothing but plain transformers: the artifact must stand on its own."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), **load_options)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer("the capital of france", return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=1)
    return list(out[0, ids["input_ids"].shape[1] :].tolist())


FAST = {"new_tokens": 2, "repeats": 1}


# --- spec ----------------------------------------------------------------------------------------------


def test_spec_defaults_and_params(qproject: Path) -> None:
    from llmops_cli.quantize import parse_quantize_spec

    spec = parse_quantize_spec(load(qproject), "q4")
    assert (spec.bits, spec.quant_type, spec.double_quant, spec.compute_dtype, spec.merge) == (
        4,
        "nf4",
        True,
        None,
        False,
    )
    assert spec.params("bfloat16") == {
        "bits": 4, "model": "tiny", "adapter": None, "merge": False, "quant_type": "nf4", "double_quant": True,
        "compute_dtype": "bfloat16",
    }  # fmt: skip
    eight = parse_quantize_spec(load(qproject), "q8").params("bfloat16")
    assert "quant_type" not in eight and eight["bits"] == 8
    assert parse_quantize_spec(load(qproject), "q4-lora").ships_adapter


def test_spec_errors(tmp_path: Path, untied_llama_dir: Path) -> None:
    from llmops_cli.quantize import parse_quantize_spec

    root = write_project(
        tmp_path / "p", untied_llama_dir, {"q4": {"model": "tiny", "bits": 4, "max_quality_drop": 0.1}}
    )
    config = load(root)
    with pytest.raises(UsageError, match="no quantized model 'q4x'") as info:
        parse_quantize_spec(config, "q4x")
    assert info.value.hint == "Did you mean 'q4'?"
    with pytest.raises(ConfigError, match="no check_with suite"):
        parse_quantize_spec(config, "q4")


# --- building and loading back -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q4", "q4-fp4", "q8"])
def test_quantize_registers_a_folder_plain_transformers_loads(qproject: Path, name: str) -> None:
    from llmops_cli.quantize import quantize
    from llmops_cli.versioning import ArtifactRef, ArtifactRegistry

    config = load(qproject)
    phases: list[str] = []
    result = quantize(config, name, device="cpu", progress=phases.append, **FAST)
    assert result.version == f"quantized/{name}/v1"
    assert any(p.startswith("quantizing") for p in phases) and phases[-1] == f"registering quantized/{name}"
    folder = qproject / "artifacts" / "quantized" / name
    assert result.folder == folder
    saved = json.loads((folder / "config.json").read_text())
    quant = saved["quantization_config"]
    assert quant["quant_method"] == "bitsandbytes"
    assert quant["load_in_4bit" if name.startswith("q4") else "load_in_8bit"] is True
    if name == "q4-fp4":
        assert (quant["bnb_4bit_quant_type"], quant["bnb_4bit_use_double_quant"]) == ("fp4", False)
    assert {"model.safetensors", "tokenizer.json", "artifact.json"} <= {p.name for p in folder.iterdir()}
    assert len(greedy(folder)) == 4

    version = ArtifactRegistry.for_config(config).get(ArtifactRef("quantized", name))
    manifest = version.manifest
    assert manifest["params"]["bits"] == (8 if name == "q8" else 4)
    assert manifest["params"]["compute_dtype"] == ("float32" if name == "q4-fp4" else "bfloat16")
    assert manifest["inputs"][0]["ref"] == str(config.models["tiny"].source)
    assert manifest["inputs"][0]["hash"].startswith("sha256:")
    metrics = manifest["metrics"]
    assert metrics["footprint_bytes"] < metrics["baseline_footprint_bytes"]
    assert 0 < metrics["footprint_ratio"] == pytest.approx(result.footprint_ratio, abs=1e-4)
    assert metrics["size_bytes"] > metrics["weights_bytes"] > 0
    assert metrics["latency_ms"] > 0 and metrics["new_tokens"] == 2 and "quality" not in metrics
    # Nothing of the build is left behind.
    assert not list((qproject / ".llmops" / "tmp").glob("quantize-*"))


def test_quantized_name_works_as_a_provider(qproject: Path) -> None:
    from llmops_cli.generation import GenerationParams, GenerationRequest
    from llmops_cli.providers import LocalProvider, clear_provider_cache, get_provider
    from llmops_cli.quantize import quantize

    config = load(qproject)
    with pytest.raises(UsageError, match="has not been built yet") as info:
        get_provider(config, "q4")
    assert "llmops quantize q4" in (info.value.hint or "")
    quantize(config, "q4", device="cpu", baseline=False, **FAST)
    clear_provider_cache()
    provider = get_provider(config, "q4")
    assert isinstance(provider, LocalProvider)
    params = GenerationParams(max_new_tokens=3)
    [result] = provider.generate([GenerationRequest(messages=({"role": "user", "content": "hello"},), params=params)])
    assert result.model == "q4" and result.completion_tokens >= 1
    model = provider._loaded.model
    assert getattr(model, "is_loaded_in_4bit", False)
    assert str(model.dtype) == "torch.bfloat16"  # kept as saved, never cast to float32
    clear_provider_cache()


def test_models_entry_over_a_quantized_folder_loads_as_saved(tmp_path: Path, qproject: Path) -> None:
    """A package rewrites its quantized model as models: {x: {source: artifacts/quantized/x}}."""
    from llmops_cli.config.project import ModelSpec
    from llmops_cli.providers import LocalProvider
    from llmops_cli.quantize import prequantized_folder, quantize

    quantize(load(qproject), "q8", device="cpu", baseline=False, **FAST)
    folder = qproject / "artifacts" / "quantized" / "q8"
    spec = ModelSpec(name="x", source=str(folder), dtype="float32")
    assert prequantized_folder(spec, qproject) == folder
    provider = LocalProvider(spec, qproject)
    provider.load()
    assert getattr(provider._loaded.model, "is_loaded_in_8bit", False)
    plain = ModelSpec(name="t", source=str(qproject))
    assert prequantized_folder(plain, qproject) is None


def test_merge_quantizes_base_plus_adapter(qproject: Path, untied_llama_dir: Path) -> None:
    from llmops_cli.quantize import quantize

    add_adapter(qproject, untied_llama_dir)
    config = load(qproject)
    merged = quantize(config, "q4-merged", device="cpu", baseline=False, **FAST)
    plain = quantize(config, "q4", device="cpu", baseline=False, **FAST)
    assert merged.source == "tiny + a-lora (merged)" and plain.source == "tiny"
    merged_dir, plain_dir = qproject / "artifacts/quantized/q4-merged", qproject / "artifacts/quantized/q4"
    assert not (merged_dir / "adapter").exists()
    manifest = json.loads((merged_dir / "artifact.json").read_text())
    refs = [i["ref"] for i in manifest["inputs"]]
    assert refs[1] == "adapter/a-lora@v1" and manifest["inputs"][1]["hash"].startswith("sha256:")
    from safetensors.torch import load_file

    a, b = load_file(str(merged_dir / "model.safetensors")), load_file(str(plain_dir / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not (a[key] == b[key]).all()  # the adapter's update reached the quantized weights
    assert len(greedy(merged_dir)) == 4


def test_unmerged_adapter_ships_beside_the_base(qproject: Path, untied_llama_dir: Path) -> None:
    from llmops_cli.providers import clear_provider_cache, get_provider
    from llmops_cli.quantize import quantize

    adapter = add_adapter(qproject, untied_llama_dir)
    config = load(qproject)
    quantize(config, "q4-lora", device="cpu", **FAST)
    folder = qproject / "artifacts/quantized/q4-lora"
    assert (folder / "adapter" / "adapter_config.json").is_file()
    assert len(greedy(folder)) == 4  # plain transformers: the quantized base alone
    clear_provider_cache()
    provider = get_provider(config, "q4-lora")
    provider.load()  # type: ignore[attr-defined]
    assert type(provider._loaded.model).__name__.startswith("PeftModel")  # type: ignore[attr-defined]
    stacked = get_provider(config, "q4-lora", adapter_path=adapter)
    with pytest.raises(UsageError, match="already carries its adapter"):
        stacked.load()  # type: ignore[attr-defined]
    clear_provider_cache()


def test_missing_adapter_version_says_how_to_train_it(qproject: Path) -> None:
    from llmops_cli.quantize import quantize

    with pytest.raises(UsageError, match="no trained version") as info:
        quantize(load(qproject), "q4-merged", device="cpu", **FAST)
    assert "llmops tune a-lora" in (info.value.hint or "")
    assert not (qproject / "artifacts" / "quantized" / "q4-merged").exists()


# --- the quality gate ----------------------------------------------------------------------------------


def suite_result(rouge: float, bleu: float | None = 20.0) -> Any:
    from llmops_cli.evals.results import SuiteResult, Threshold

    aggregates: dict[str, dict[str, float]] = {
        "rougeL": {"mean": rouge, "p95": rouge},
        "latency_ms": {"mean": 100.0, "p95": 150.0},
    }
    if bleu is not None:
        aggregates["bleu"] = {"mean": bleu, "corpus": bleu}
    thresholds = [
        Threshold("rougeL.mean", ">=", 0.0, rouge, True),
        Threshold("latency_ms.p95", "<=", 100000, 150.0, True),
    ]
    return SuiteResult("quality", {"model": "tiny"}, "dataset/qa@v1", "sha256:x", aggregates=aggregates,
                       thresholds=thresholds)  # fmt: skip


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``llmops_cli.evals.runner`` as the agreed interface; ``run_suite`` scores by the override's model."""
    from dataclasses import dataclass

    calls: list[Any] = []
    scores = {"original": 0.50, "quantized": 0.47}

    @dataclass
    class ModelOverride:
        model: str
        adapter: str | None = None

    @dataclass
    class EvalOptions:
        override: ModelOverride | None = None
        use_cache: bool = True
        limit: int | None = None

    def run_suite(config: Any, suite: str, options: EvalOptions = EvalOptions(), progress: Any = None) -> Any:
        from llmops_cli.providers import get_provider

        assert options.override is not None
        calls.append(options.override)
        # The quantized name must resolve while the check runs, before the version is registered.
        provider = get_provider(config, options.override.model)
        key = "original" if options.override.model == "tiny" else "quantized"
        if key == "quantized":
            assert ".llmops/tmp/quantize-" in str(provider.spec.source)  # type: ignore[attr-defined]
        return suite_result(scores[key])

    module = types.ModuleType("llmops_cli.evals.runner")
    module.run_suite = run_suite  # type: ignore[attr-defined]
    module.EvalOptions = EvalOptions  # type: ignore[attr-defined]
    module.ModelOverride = ModelOverride  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llmops_cli.evals.runner", module)
    calls.append(scores)
    return calls


def test_compare_results_uses_higher_is_better_gated_metrics() -> None:
    from llmops_cli.quantize import compare_results

    report = compare_results(suite_result(0.5), suite_result(0.42), max_drop=0.05)
    assert [m.metric for m in report.metrics] == ["rougeL.mean"]  # latency is lower-is-better
    [rouge] = report.metrics
    assert rouge.delta == pytest.approx(0.08) and rouge.passed is False and not report.passed
    assert compare_results(suite_result(0.5), suite_result(0.45), max_drop=0.05).passed  # equal to the limit
    assert compare_results(suite_result(0.5), suite_result(0.1), max_drop=None).passed  # report only
    ungated = suite_result(0.5)
    ungated.thresholds = []
    both = compare_results(ungated, suite_result(0.4, bleu=18.0), max_drop=3.0)
    assert {m.metric: round(m.delta or 0, 4) for m in both.metrics} == {"rougeL.mean": 0.1, "bleu.corpus": 2.0}
    missing = compare_results(suite_result(0.5), suite_result(float("nan")), max_drop=0.05)
    assert not missing.compared and not missing.passed and missing.note


def test_gate_fails_with_exit_code_5_after_registering(qproject: Path, fake_runner: list[Any], cli: Any) -> None:
    fake_runner[0]["quantized"] = 0.30
    result = cli("quantize", "q4-gated", "--device", "cpu", "--tokens", "2", "--no-baseline", cwd=qproject)
    assert result.exit_code == EXIT_GATE, result.output
    assert "quality drop above max_quality_drop 0.05" in result.output
    assert "rougeL.mean 0.5 -> 0.3" in result.output
    overrides = fake_runner[1:]
    assert [(o.model, o.adapter) for o in overrides] == [("tiny", None), ("q4-gated", None)]
    manifest = json.loads((qproject / "artifacts/quantized/q4-gated/artifact.json").read_text())
    assert manifest["version"] == 1 and manifest["metrics"]["quality"]["passed"] is False
    assert git(qproject, "tag", "--list", "quantized/*").split() == ["quantized/q4-gated/v1"]


def test_gate_passes_and_no_check_skips_it(qproject: Path, fake_runner: list[Any], cli: Any) -> None:
    result = cli("quantize", "q4-gated", "--device", "cpu", "--tokens", "2", "--json", cwd=qproject)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["gate_passed"] is True and data["quality"]["metrics"][0]["delta"] == pytest.approx(0.03)
    assert data["baseline"]["dtype"] == "float32" and data["version"] == "quantized/q4-gated/v1"
    fake_runner[0]["quantized"] = 0.0
    skipped = cli("quantize", "q4-gated", "--device", "cpu", "--tokens", "2", "--no-check", cwd=qproject)
    assert skipped.exit_code == 0, skipped.output
    assert "registered quantized/q4-gated/v2" in skipped.output
    assert len(fake_runner) == 3  # the two runs of the first command only


def test_cli_table_and_unknown_name(qproject: Path, cli: Any) -> None:
    result = cli("quantize", "q8", "--device", "cpu", "--tokens", "2", cwd=qproject)
    assert result.exit_code == 0, result.output
    assert "memory footprint" in result.output and "of bfloat16" in result.output
    assert "unquantized (float32)" in result.output and "registered quantized/q8/v1" in result.output
    wrong = cli("quantize", "q8x", cwd=qproject)
    assert wrong.exit_code == EXIT_USAGE
    assert "no quantized model 'q8x'" in wrong.output and "Did you mean 'q8'?" in wrong.output


# --- GPU and the real model ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif("not _cuda()", reason="needs a CUDA GPU (bitsandbytes' CUDA kernels)")
@pytest.mark.parametrize("name", ["q4", "q8"])
def test_quantize_on_cuda_then_load_on_cpu_and_gpu(qproject: Path, name: str) -> None:
    from llmops_cli.quantize import quantize

    result = quantize(load(qproject), name, device="cuda", **FAST)
    assert result.device == "cuda" and result.params["compute_dtype"] in ("bfloat16", "float16")
    folder = qproject / "artifacts" / "quantized" / name
    assert len(greedy(folder)) == 4  # plain from_pretrained places bitsandbytes models on the GPU
    assert len(greedy(folder, device_map={"": "cpu"})) == 4  # the same bytes run on the CPU


@pytest.mark.integration
def test_smollm2_4bit_footprint_and_answer(project: Path) -> None:
    """The embedded SmolLM2 in 4-bit nf4: under 0.45x of bfloat16, and it still knows Paris."""
    import yaml

    from llmops_cli.quantize import quantize

    doc = yaml.safe_load((project / "llmops.yaml").read_text())
    doc["quantized"] = {"base-4bit": {"model": "base", "bits": 4}}
    (project / "llmops.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = quantize(load(project), "base-4bit", device="cpu", baseline=False, new_tokens=8, repeats=1)
    assert result.footprint_ratio <= 0.45
    assert "Paris" in result.quantized.sample
    assert greedy(project / "artifacts" / "quantized" / "base-4bit")


def test_quality_check_with_the_real_eval_runner(qproject: Path) -> None:
    pytest.importorskip("llmops_cli.evals.runner")
    from llmops_cli.providers import clear_provider_cache
    from llmops_cli.quantize import quantize

    config = load(qproject)
    result = quantize(config, "q4-gated", device="cpu", baseline=False, **FAST)
    clear_provider_cache()
    assert result.quality is not None
    [rouge] = result.quality.metrics  # rougeL is gated; latency_ms is lower-is-better
    assert rouge.metric == "rougeL.mean" and rouge.original is not None and rouge.quantized is not None
    assert result.quality.original_passed is not None
    assert result.gate_passed == (rouge.delta is not None and rouge.delta <= 0.05 + 1e-9)
