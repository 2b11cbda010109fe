"""The llama.cpp engine: CPU budget, GGUF export of a tiny Llama, the runtime, serving, the fallback.

The tiny model here is a 2-layer random Llama with a SentencePiece tokenizer trained in a second
(the TinyLlama / Llama 2 tokenizer kind, which llama.cpp's converter reads from tokenizer.model),
exported with llama.cpp's own converter and quantizer and run by the stock ``llama_cpp.Llama``.
The real SmolLM2 (byte-level BPE, the other tokenizer kind) is exported in the integration test.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops_cli.engines import cpus
from llmops_cli.engines import llama_cpp as engine
from llmops_cli.errors import ConfigError, MissingDependencyError, UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult
from llmops_cli.providers import clear_provider_cache, get_provider
from llmops_cli.providers.batching import BatchingProvider
from llmops_cli.providers.runtime import choose_runtime
from llmops_cli.validation import load_config

needs_engine = pytest.mark.skipif(not engine.available(), reason=f"llama.cpp engine: {engine.status().reason}")
needs_converter = pytest.mark.skipif(
    not (engine.tools_dir() / "convert_hf_to_gguf.py").is_file(),
    reason="llama.cpp's converters are not installed (python -m llmops_cli.engines.install)",
)

SENTENCES = [
    "the thermostat connects to wifi on the 2.4 GHz band",
    "reset the sensor by holding the button for ten seconds",
    "hearth plus is billed every month and can be cancelled any time",
    "the app shows the temperature of every room in your home",
    "a blinking orange light means the thermostat lost its connection",
] * 20
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def ask(text: str, **params: Any) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), GenerationParams(**params))


# --- the CPU budget -----------------------------------------------------------------------------------


def test_usable_cpus_follow_the_cgroup_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert cpus.usable_cpus(tmp_path) == 4  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert cpus.cgroup_cpu_quota(tmp_path) == 1.5 and cpus.usable_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_cpu_quota(tmp_path) is None and cpus.usable_cpus(tmp_path) == 4
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")  # cgroup v1: 1 CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpus.usable_cpus(tmp_path) == 1


def test_thread_budget_splits_cpus_and_honours_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpus.THREADS_ENV, raising=False)
    assert (
        cpus.thread_budget(1, cpus=8) == 8
        and cpus.thread_budget(3, cpus=8) == 2
        and cpus.thread_budget(16, cpus=2) == 1
    )
    monkeypatch.setenv(cpus.THREADS_ENV, "3")
    assert cpus.thread_budget(4, cpus=8) == 3


def test_missing_cpu_features_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.platform, "machine", lambda: "x86_64")
    info = tmp_path / "cpuinfo"
    info.write_text("processor: 0\nflags\t\t: fpu sse2 avx fma f16c\n")
    assert engine.missing_cpu_features(info) == ["avx2"]
    info.write_text("flags: fpu sse2 avx avx2 fma f16c\n")
    assert engine.missing_cpu_features(info) == []


# --- fallback and explicit choices (no engine needed) ------------------------------------------------------


def _gguf_project(tmp_path: Path, gguf: Path | str, **model: Any) -> Any:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    doc = {"version": 1, "name": "p", "models": {"m": {"source": str(gguf), **model}}}
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc))
    return load_config(root)


def test_auto_falls_back_to_transformers_and_says_how_to_get_llama_cpp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from llmops_cli.providers import runtime

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    config = _gguf_project(tmp_path, gguf)
    monkeypatch.setattr(engine.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(runtime, "_told", set())
    with caplog.at_level(logging.WARNING, logger="llmops"):
        choice = choose_runtime(config.models["m"], config.root)
    assert choice.engine == "transformers" and "not installed" in choice.reason
    assert "python -m llmops_cli.engines.install" in caplog.text and "runs on transformers" in caplog.text

    config = _gguf_project(tmp_path, gguf, runtime="llama-cpp")
    with pytest.raises(MissingDependencyError) as raised:
        choose_runtime(config.models["m"], config.root)
    assert raised.value.exit_code == 3 and "python -m llmops_cli.engines.install" in (raised.value.hint or "")


def test_explicit_runtimes(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    config = _gguf_project(tmp_path, gguf, runtime="transformers")
    assert choose_runtime(config.models["m"], config.root).engine == "transformers"
    config = _gguf_project(tmp_path, gguf)
    assert choose_runtime(config.models["m"], config.root, device="cuda").engine == "transformers"
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    config = _gguf_project(tmp_path, folder, runtime="llama-cpp")
    if engine.available():
        with pytest.raises(UsageError, match="not a GGUF"):
            choose_runtime(config.models["m"], config.root)
    assert choose_runtime(_gguf_project(tmp_path, folder).models["m"], tmp_path).engine == "transformers"


def test_gguf_entries_are_validated(tmp_path: Path) -> None:
    from llmops_cli.quantize.spec import parse_quantize_spec

    root = tmp_path / "proj"
    root.mkdir()
    doc: dict[str, Any] = {
        "version": 1,
        "name": "p",
        "models": {"base": {"source": "smollm2-135m-instruct"}},
        "quantized": {"q": {"model": "base", "method": "gguf", "type": "q4_k_m"}},
    }
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc))
    spec = parse_quantize_spec(load_config(root), "q")
    assert spec.method == "gguf" and spec.gguf_type == "q4_k_m"
    assert spec.params("n/a") == {"method": "gguf", "type": "q4_k_m", "model": "base", "adapter": None, "merge": False}

    doc["quantized"]["q"]["bits"] = 4
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"quantized\.q\.bits applies to method: bitsandbytes"):
        parse_quantize_spec(load_config(root), "q")
    del doc["quantized"]["q"]["type"], doc["quantized"]["q"]["bits"]
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as raised:
        load_config(root)
    assert "type" in "\n".join(raised.value.problems)


def test_export_refuses_other_architectures(tmp_path: Path) -> None:
    from llmops_cli.engines.gguf import check_exportable

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UsageError) as raised:
        check_exportable(tmp_path, "gpt")
    assert "Llama family" in raised.value.message and "GPT2LMHeadModel" in raised.value.message
    assert "bitsandbytes" in (raised.value.hint or "")


# --- a slot-aware batcher (no engine needed) -------------------------------------------------------------


class TwoSlots:
    """A provider that runs two requests at once and records how many overlap."""

    name = "two"
    concurrency = 2
    preferred_batch = 1

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.sizes.append(len(requests))
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
        return [GenerationResult("ok", 1, 1, 50.0, "stop", self.name) for _ in requests]


def test_batcher_keeps_every_slot_busy_one_request_each() -> None:
    inner = TwoSlots()
    batcher = BatchingProvider(inner, max_batch=8, max_wait_ms=1)
    try:
        threads = [threading.Thread(target=batcher.generate, args=([ask("q")],)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        batcher.close()
    assert inner.peak == 2 and set(inner.sizes) == {1} and len(inner.sizes) == 6


# --- GGUF export and the runtime on a tiny Llama ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_spm_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a SentencePiece tokenizer (tokenizer.model) and a chat template."""
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-spm-llama")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=320, model_type="bpe", byte_fallback=True,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    config = LlamaConfig(
        vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer_config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_spm_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not engine.available() or not (engine.tools_dir() / "convert_hf_to_gguf.py").is_file():
        pytest.skip(f"llama.cpp engine or converters missing: {engine.status().reason or 'converters'}")
    from llmops_cli.engines.gguf import export_gguf

    out = tmp_path_factory.mktemp("tiny-ggufs")
    files = {}
    for kind in ("f16", "q8_0", "q4_0"):
        files[kind] = out / f"tiny-{kind}.gguf"
        export_gguf(tiny_spm_llama, files[kind], kind, name="tiny", workdir=out / f"work-{kind}")
    return files


@needs_engine
@needs_converter
def test_export_gives_ggufs_the_stock_llama_cpp_loads(tiny_ggufs: dict[str, Path]) -> None:
    import gguf
    from llama_cpp import Llama

    sizes = {kind: path.stat().st_size for kind, path in tiny_ggufs.items()}
    assert sizes["q4_0"] < sizes["q8_0"] < sizes["f16"]
    for kind, path in tiny_ggufs.items():
        reader = gguf.GGUFReader(str(path))
        assert reader.fields["general.architecture"].contents() == "llama"
        assert reader.fields["tokenizer.ggml.model"].contents() == "llama"  # SentencePiece
        assert reader.fields["tokenizer.chat_template"].contents() == CHAT_TEMPLATE
        llm = Llama(model_path=str(path), n_ctx=128, n_threads=1, verbose=False)
        out = llm.create_completion("the thermostat", max_tokens=5, temperature=0)
        assert out["usage"]["completion_tokens"] >= 1, kind
        del llm


@needs_engine
@needs_converter
def test_runtime_generates_in_parallel_with_stops_seeds_and_streaming(
    tiny_ggufs: dict[str, Path], tmp_path: Path
) -> None:
    config = _gguf_project(tmp_path, tiny_ggufs["q8_0"], runtime="llama-cpp", parallel=2)
    provider: Any = get_provider(config, "m")
    try:
        assert provider.engine == "llama-cpp" and provider.concurrency == 2 and provider.threads >= 1
        greedy = [ask(s, max_new_tokens=12) for s in ("the thermostat", "reset the", "hearth plus", "the app")]
        one_by_one = [provider.generate([r])[0] for r in greedy]
        together = provider.generate(greedy)
        assert [r.text for r in together] == [r.text for r in one_by_one]  # slots and prefix reuse change nothing
        # (a random model emits stray UTF-8 bytes; llama-cpp-python then decodes past max_tokens to finish a character)
        assert all(r.prompt_tokens > 3 and r.completion_tokens >= 1 and r.model == "m" for r in together)
        assert provider.render(greedy[0].messages).endswith("<|assistant|>")

        text = one_by_one[0].text
        assert len(text) > 2, text
        stop = text[1:3]
        (stopped,) = provider.generate([ask("the thermostat", max_new_tokens=12, stop=(stop,))])
        assert stopped.text == text[: text.index(stop)] and stopped.finish_reason == "stop"

        sampled = [ask("the app", max_new_tokens=10, temperature=1.5, seed=7) for _ in range(2)]
        first, second = provider.generate([sampled[0]])[0], provider.generate([sampled[1]])[0]
        assert first.text == second.text  # seeded sampling is reproducible

        pieces: list[str] = []
        stream = provider.stream(ask("reset the", max_new_tokens=12))
        try:
            while True:
                pieces.append(next(stream))
        except StopIteration as done:
            result = done.value
        assert "".join(pieces) == one_by_one[1].text == result.text and result.completion_tokens >= 1
    finally:
        clear_provider_cache()


@needs_engine
@needs_converter
def test_serve_streams_on_llama_cpp_and_never_streams_a_stop_string(
    tiny_ggufs: dict[str, Path], tmp_path: Path
) -> None:
    from llmops_cli.serve import ServeOptions, create_app, serve_in_thread

    config = _gguf_project(tmp_path, tiny_ggufs["q8_0"], runtime="llama-cpp")
    app = create_app(config, options=ServeOptions(api_keys=("k",)))
    headers = {"Authorization": "Bearer k"}
    body = {"model": "m", "messages": [{"role": "user", "content": "the thermostat"}], "max_tokens": 12}
    try:
        with serve_in_thread(app) as url:
            deadline = time.monotonic() + 60
            while httpx.get(url + "/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            whole = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60).json()
            text = whole["choices"][0]["message"]["content"]
            assert whole["usage"]["completion_tokens"] >= 1 and len(text) > 2
            stop = text[1:3]
            pieces = []
            with httpx.stream(
                "POST", url + "/v1/chat/completions", json={**body, "stream": True, "stop": [stop]}, headers=headers
            ) as answer:
                assert answer.status_code == 200
                for line in answer.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        delta = json.loads(line[6:])["choices"][0].get("delta", {})
                        pieces.append(delta.get("content") or "")
            streamed = "".join(pieces)
            assert streamed == text[: text.index(stop)] and stop not in streamed
            listed = httpx.get(url + "/v1/models", headers=headers).json()
            assert "m" in [m["id"] for m in listed["data"]]
    finally:
        clear_provider_cache()


@needs_engine
@needs_converter
def test_quantize_gguf_registers_a_version_served_on_llama_cpp(tiny_spm_llama: Path, project: Path, cli: Any) -> None:
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["tiny"] = {"source": str(tiny_spm_llama), "dtype": "float32"}
    data["quantized"] = {"tiny-q8": {"model": "tiny", "method": "gguf", "type": "q8_0"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("quantize", "tiny-q8", "--no-baseline", "--tokens", "4", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == "quantized/tiny-q8/v1" and report["params"]["type"] == "q8_0"
    assert report["quantized"]["dtype"] == "gguf q8_0" and report["metrics"]["weights_bytes"] > 0
    gguf_file = project / "artifacts" / "quantized" / "tiny-q8" / "model.gguf"
    assert gguf_file.is_file()
    try:
        provider = get_provider(load_config(project), "tiny-q8")
        assert getattr(provider, "engine", None) == "llama-cpp"
        assert provider.generate([ask("the app", max_new_tokens=4)])[0].completion_tokens >= 1
    finally:
        clear_provider_cache()


def test_vllm_gets_the_gguf_file_of_a_gguf_build() -> None:
    from llmops_cli.deploy.package_ref import _served_model

    component = {
        "kind": "quantized",
        "name": "base-q4",
        "path": "artifacts/quantized/base-q4",
        "detail": {"format": "gguf", "file": "model.gguf", "type": "q4_k_m"},
    }
    served = _served_model(component)
    assert served.path == "artifacts/quantized/base-q4" and served.file == "model.gguf" and served.bits is None
    assert served.note is not None and "llama.cpp" in served.note


def test_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpus.cpu_has_bf16(info)
    info.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not cpus.cpu_has_bf16(info)
