"""Providers: batched local generation (tiny random Llama, LoRA), the OpenAI HTTP client, the factory.

The local tests reuse the tiny Llama and tokenizer built in ``tests/fixtures/models.py``; the HTTP tests
talk to a fake OpenAI-compatible server on 127.0.0.1 in a thread, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.config.project import ModelSpec, ProjectConfig
from llmops_cli.errors import UnavailableError, UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest
from llmops_cli.providers import (
    LocalProvider,
    OpenAIProvider,
    clear_provider_cache,
    cut_at_stop,
    get_provider,
    plan_batches,
    transcript,
)
from tests.helpers import REPO_ROOT

QUESTIONS = [
    "hello",
    "what is the capital of france?",
    "a tiny random model for fast tests, how are you today?",
    "the capital",
    "hello world, how are you today? the capital of france is paris",
    "what?",
]


def ask(text: str, **params: Any) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), GenerationParams(**params))


def local_spec(folder: Path, name: str = "tiny") -> ModelSpec:
    return ModelSpec(name=name, source=str(folder))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LocalProvider:
    provider = LocalProvider(local_spec(tiny_model_dir), tiny_model_dir.parent, batch_size=4)
    provider.load()
    return provider


def test_importing_and_getting_providers_stays_light(tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
from llmops_cli.config.project import ProjectConfig
from llmops_cli.providers import get_provider
root = Path({str(tmp_path)!r})
models = {{"base": {{"source": "smollm2-135m-instruct"}},
          "hosted": {{"provider": "openai", "base_url": "http://h/v1", "model": "m"}}}}
config = ProjectConfig.from_dict({{"name": "p", "version": 1, "models": models}}, root=root, path=root / "x")
get_provider(config, "base"), get_provider(config, "hosted")
print(",".join(m for m in ("torch", "transformers", "peft", "typer", "rich", "httpx") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported too early: {done.stdout.strip()}"


# --- pure helpers ------------------------------------------------------------------------------


def test_plan_batches_groups_by_params_and_sorts_by_length() -> None:
    greedy, hot = {"max_new_tokens": 4}, {"max_new_tokens": 4, "temperature": 0.7, "seed": 1}
    requests = [ask("a", **greedy), ask("b", **hot), ask("c", **greedy), ask("d", **greedy), ask("e", **hot)]
    batches = plan_batches(requests, [5, 1, 3, 9, 2], batch_size=2)
    assert batches == [[2, 0], [3], [1, 4]]
    with pytest.raises(UsageError):
        plan_batches(requests, [1] * 5, batch_size=0)


def test_cut_at_stop_and_transcript() -> None:
    assert cut_at_stop("one\n\ntwo END three", ("END", "\n\n")) == ("one", True)
    assert cut_at_stop("no stop here", ("END",)) == ("no stop here", False)
    assert transcript([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]) == (
        "System: Be brief.\nUser: Hi\nAssistant:"
    )


# --- LocalProvider -----------------------------------------------------------------------------


def test_batched_greedy_equals_one_at_a_time(tiny: LocalProvider) -> None:
    requests = [ask(q, max_new_tokens=8) for q in QUESTIONS]
    batched = tiny.generate(requests)
    single = [tiny.generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in single]
    assert [r.prompt_tokens for r in batched] == [r.prompt_tokens for r in single]
    # mixed lengths: the batch really was padded, and prompt counts exclude the padding
    assert len({r.prompt_tokens for r in batched}) > 2
    assert all(r.model == "tiny" and r.latency_ms > 0 for r in batched)


def test_order_is_preserved_across_groups_and_batches(tiny: LocalProvider) -> None:
    mixed = [ask(q, max_new_tokens=3 + i % 3) for i, q in enumerate(QUESTIONS * 2)]
    results = tiny.with_batch_size(3).generate(mixed)
    expected = [tiny.generate([r])[0].text for r in mixed]
    assert [r.text for r in results] == expected
    rendered = tiny.tokenizer()(tiny.render(mixed[4].messages), add_special_tokens=False)["input_ids"]
    assert results[4].prompt_tokens == len(rendered)


def test_progress_is_reported_per_batch(tiny: LocalProvider) -> None:
    seen: list[tuple[int, int]] = []
    tiny.with_batch_size(4).generate([ask(q, max_new_tokens=2) for q in QUESTIONS], progress=lambda *a: seen.append(a))
    assert seen == [(4, 6), (6, 6)]


def test_max_new_tokens_gives_length_and_sensible_counts(tiny: LocalProvider) -> None:
    results = tiny.generate([ask(q, max_new_tokens=5) for q in QUESTIONS])
    for result in results:
        assert 1 <= result.completion_tokens <= 5
        assert result.prompt_tokens > 3
        if result.finish_reason == "length":
            assert result.completion_tokens == 5
        else:
            assert result.finish_reason == "stop"
    # random weights: at least most rows run into the limit instead of hitting EOS
    assert any(r.finish_reason == "length" for r in results)


def test_seeded_sampling_is_reproducible(tiny: LocalProvider) -> None:
    requests = [ask(q, max_new_tokens=10, temperature=1.5, seed=7) for q in QUESTIONS[:4]]
    import torch

    torch.manual_seed(0)
    expected_draw = torch.rand(1)
    torch.manual_seed(0)
    first = [r.text for r in tiny.generate(requests)]
    assert torch.equal(torch.rand(1), expected_draw)  # the caller's global RNG was left alone
    assert [r.text for r in tiny.generate(requests)] == first
    other = [r.text for r in tiny.generate([ask(q, max_new_tokens=10, temperature=1.5, seed=8) for q in QUESTIONS[:4]])]
    greedy = [r.text for r in tiny.generate([ask(q, max_new_tokens=10) for q in QUESTIONS[:4]])]
    assert first != other or first != greedy


def test_stop_strings_cut_the_text_and_stop_early(tiny: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    free = tiny.generate([ask(QUESTIONS[1], max_new_tokens=16)])[0]
    assert free.finish_reason == "length", free
    # a printable ASCII character the model produced after its first token: a stop the tokens can spell
    stop = next(ch for ch in free.text[1:] if ch.isascii() and ch.isprintable())
    first = free.text.find(stop)

    widths: list[int] = []
    model = tiny._loaded.model
    real_generate = model.generate

    def spy(**kwargs: Any) -> Any:
        output = real_generate(**kwargs)
        widths.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    monkeypatch.setattr(model, "generate", spy)
    cut = tiny.generate([ask(QUESTIONS[1], max_new_tokens=16, stop=(stop, "never-produced"))])[0]
    assert cut.text == free.text[:first]
    assert cut.finish_reason == "stop"
    assert 1 <= cut.completion_tokens < free.completion_tokens
    assert widths == [cut.completion_tokens]  # generation itself stopped there, not only the text


def test_lora_adapter_changes_the_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # init_lora_weights=False draws B at random too (not zeros), so the adapter is not a no-op.
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = tmp_path / "faq-lora"
    get_peft_model(base, config).save_pretrained(adapter_dir)

    requests = [ask(q, max_new_tokens=8) for q in QUESTIONS[:4]]
    plain = LocalProvider(local_spec(tiny_model_dir), tmp_path).generate(requests)
    tuned = LocalProvider(local_spec(tiny_model_dir), tmp_path, adapter_path=adapter_dir)
    adapted = tuned.generate(requests)
    assert tuned.name == "tiny+faq-lora"
    assert [r.text for r in adapted] != [r.text for r in plain]
    assert [r.text for r in tuned.generate(requests[:1])] == [adapted[0].text]  # batched == single with LoRA


def test_bad_adapter_folder_is_a_usage_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no adapter_config.json"):
        LocalProvider(local_spec(tiny_model_dir), tmp_path, adapter_path=tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors.ptr").write_text("sha256:abc")
    with pytest.raises(UnavailableError, match="content store"):
        LocalProvider(local_spec(tiny_model_dir), tmp_path, adapter_path=tmp_path)


def test_plain_transcript_without_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = ModelSpec(name="t", source=str(tiny_model_dir), chat_template="")
    provider = LocalProvider(spec, tmp_path)
    provider.tokenizer().chat_template = None  # a base model without any template
    assert provider.render([{"role": "user", "content": "hi"}]) == "User: hi\nAssistant:"
    assert provider.generate([ask("hi", max_new_tokens=3)])[0].completion_tokens >= 1
    with pytest.raises(UsageError, match="not a chat message"):
        provider.generate([GenerationRequest(({"role": "robot", "content": "x"},))])


def test_loading_is_lazy_and_silent(
    tiny_model_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A checkpoint whose generation_config.json asks for sampling, as many instruct models ship.
    folder = tmp_path / "sampling-defaults"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.6, top_p=0.9, top_k=20)
    (folder / "generation_config.json").write_text(json.dumps(config))
    provider = LocalProvider(local_spec(folder), tmp_path)
    assert not provider.loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        provider.generate([ask("hello", max_new_tokens=2, temperature=0.0)])
    assert provider.loaded
    assert [str(w.message) for w in caught if "generation" in str(w.message).lower()] == []
    provider.generate([ask("hello", max_new_tokens=2, temperature=0.9, top_p=0.9, top_k=5, repetition_penalty=1.2)])
    err = capfd.readouterr().err
    assert "Loading weights" not in err
    assert "temperature" not in err and "generation flags" not in err


# --- factory -----------------------------------------------------------------------------------


def make_config(root: Path, models: dict[str, Any], **sections: Any) -> ProjectConfig:
    data = {"name": "p", "version": 1, "models": models, **sections}
    return ProjectConfig.from_dict(data, root=root, path=root / "llmops.yaml")


def test_factory_caches_and_checks(tiny_model_dir: Path, tmp_path: Path) -> None:
    clear_provider_cache()
    config = make_config(
        tmp_path,
        {
            "base": {"source": str(tiny_model_dir)},
            "hosted": {"provider": "openai", "base_url": "http://h/v1", "model": "m"},
        },
        quantized={"base-4bit": {"model": "base", "bits": 4}},
    )
    first = get_provider(config, "base")
    assert isinstance(first, LocalProvider)
    assert get_provider(config, "base") is first
    wider = get_provider(config, "base", batch_size=16)
    assert isinstance(wider, LocalProvider) and wider.batch_size == 16 and wider._loaded is first._loaded
    assert isinstance(get_provider(config, "hosted"), OpenAIProvider)
    with pytest.raises(UsageError, match="has not been built yet"):
        get_provider(config, "base-4bit")
    with pytest.raises(UsageError, match="remote") as info:
        get_provider(config, "hosted", adapter_path=tmp_path)
    with pytest.raises(UsageError, match="No model named 'bsae'") as info:
        get_provider(config, "bsae")
    assert info.value.hint == "Did you mean 'base'?"
    clear_provider_cache()
    assert get_provider(config, "base") is not first


# --- OpenAIProvider against a fake server ----------------------------------------------------------


class FakeOpenAI:
    """A scripted OpenAI-compatible server: each POST pops the next (status, body, delay) reply."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, Any], float]] = []
        self.seen: list[dict[str, Any]] = []
        self.default = (200, None, 0.0)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                fake.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, reply, delay = fake.replies.pop(0) if fake.replies else fake.default
                time.sleep(delay)
                if reply is None:
                    reply = fake.completion(body)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def completion(body: dict[str, Any]) -> dict[str, Any]:
        question = body["messages"][-1]["content"]
        return {
            "model": body["model"],
            "choices": [{"message": {"role": "assistant", "content": f"echo: {question}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(question.split()), "completion_tokens": 7, "total_tokens": 99},
        }


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeOpenAI()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def remote(fake: FakeOpenAI, **options: Any) -> OpenAIProvider:
    settings: dict[str, Any] = {"name": "hosted", "base_url": fake.url, "model": "m-1", "backoff_s": 0.05}
    return OpenAIProvider(**{**settings, **options})


def test_openai_success_with_usage_auth_and_order(fake_api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_TEST_KEY", "sk-test")
    provider = remote(fake_api, api_key_env="LLMOPS_TEST_KEY", headers={"X-Team": "search"})
    params = {"max_new_tokens": 12, "temperature": 0.3, "stop": ("Q:",), "seed": 5}
    questions = [f"question number {i}" for i in range(7)]
    results = provider.generate([ask(q, **params) for q in questions])
    assert [r.text for r in results] == [f"echo: {q}" for q in questions]
    assert (results[0].prompt_tokens, results[0].completion_tokens) == (3, 7)
    assert all(r.finish_reason == "stop" and r.model == "m-1" and r.latency_ms > 0 for r in results)
    seen = fake_api.seen[0]
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["Authorization"] == "Bearer sk-test"
    assert seen["headers"]["X-Team"] == "search"
    body = seen["body"]
    assert (body["model"], body["max_tokens"], body["temperature"], body["stop"], body["seed"]) == (
        "m-1",
        12,
        0.3,
        ["Q:"],
        5,
    )


def test_openai_retries_a_500_then_succeeds(fake_api: FakeOpenAI) -> None:
    fake_api.replies = [(500, {"error": {"message": "overloaded"}}, 0.0), (429, {"error": "slow down"}, 0.0)]
    result = remote(fake_api).generate([ask("hi")])[0]
    assert result.text == "echo: hi"
    assert len(fake_api.seen) == 3


def test_openai_400_surfaces_the_message_without_retry(fake_api: FakeOpenAI) -> None:
    fake_api.replies = [(400, {"error": {"message": "max_tokens is too large"}}, 0.0)]
    with pytest.raises(UsageError, match="max_tokens is too large"):
        remote(fake_api).generate([ask("hi")])
    assert len(fake_api.seen) == 1


def test_openai_timeout_gives_up_in_bounded_time(fake_api: FakeOpenAI) -> None:
    fake_api.default = (200, None, 2.0)
    started = time.perf_counter()
    with pytest.raises(UnavailableError, match="after 2 attempts") as info:
        remote(fake_api, timeout_s=0.5, max_retries=1).generate([ask("hi")])
    assert time.perf_counter() - started < 2.5
    assert "timeout_s" in str(info.value)
    assert len(fake_api.seen) == 2


def test_openai_retry_after_is_honoured_and_capped() -> None:
    from email.utils import formatdate

    from llmops_cli.providers.openai_http import MAX_RETRY_AFTER_S, _retry_after

    assert _retry_after({"Retry-After": "3"}) == 3.0
    assert 8 < (_retry_after({"Retry-After": formatdate(time.time() + 10, usegmt=True)}) or 0) <= 10
    assert _retry_after({"Retry-After": "soon"}) is None and _retry_after({}) is None
    provider = OpenAIProvider(name="h", base_url="http://127.0.0.1:9/v1", model="m", backoff_s=1.0, max_backoff_s=4.0)
    assert provider._delay(0, 2.5) == 2.5
    assert provider._delay(0, 3600.0) == MAX_RETRY_AFTER_S
    assert 0.5 <= provider._delay(0, None) <= 1.0  # jittered exponential backoff, capped
    assert 2.0 <= provider._delay(5, None) <= 4.0


def test_openai_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(
        name="h", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01
    )
    with pytest.raises(UnavailableError, match="cannot connect"):
        provider.generate([ask("hi")])


def test_openai_missing_key_and_bad_url_are_usage_errors(fake_api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOPS_TEST_NO_KEY", raising=False)
    with pytest.raises(UsageError, match="LLMOPS_TEST_NO_KEY"):
        remote(fake_api, api_key_env="LLMOPS_TEST_NO_KEY").generate([ask("hi")])
    assert fake_api.seen == []
    with pytest.raises(UsageError, match="OPENAI_BASE_URL"):
        OpenAIProvider(name="h", base_url="${OPENAI_BASE_URL}", model="m")


def test_openai_from_spec_reads_the_entry(fake_api: FakeOpenAI) -> None:
    raw = {"provider": "openai", "base_url": fake_api.url, "model": "m", "timeout_s": 5, "max_retries": 0}
    spec = ModelSpec.from_dict("hosted", raw)
    provider = OpenAIProvider.from_spec(spec)
    assert (provider.timeout_s, provider.max_retries) == (5.0, 0)
    fake_api.replies = [(503, {"error": "down"}, 0.0)]
    with pytest.raises(UnavailableError, match="503"):
        provider.generate([ask("hi")])


# --- integration: the real embedded SmolLM2 ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["transformers", "llama-cpp"])
def test_smollm2_answers_paris_through_the_provider(tmp_path: Path, runtime: str) -> None:
    from llmops_cli.engines import llama_cpp

    if runtime == "llama-cpp" and not llama_cpp.available():
        pytest.skip(f"llama.cpp engine: {llama_cpp.status().reason}")
    config = make_config(tmp_path, {"base": {"source": "smollm2-135m-instruct", "runtime": runtime}})
    clear_provider_cache()
    provider = get_provider(config, "base")
    assert getattr(provider, "engine", "transformers") == runtime
    # The same Q4_1 weights: transformers computes them in float32, llama.cpp with 8-bit activations,
    # and the first token of this exact question tips to French there ("L'Étoile, ..."); the
    # imperative form is answered right by both.
    question = "What is the capital of France?" if runtime == "transformers" else "Name the capital of France."
    results = provider.generate([ask(question, max_new_tokens=24), ask("Say hello.", max_new_tokens=8)])
    assert "Paris" in results[0].text
    assert results[0].finish_reason == "stop" and results[0].completion_tokens < 24
    assert results[1].finish_reason in ("stop", "length")
    clear_provider_cache()
