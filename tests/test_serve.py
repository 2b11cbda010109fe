"""The server (``llmops serve``) and the monitor store it writes.

A real uvicorn server runs in a thread on a loopback ephemeral port, over a project whose ``base``
model is the tiny random Llama from ``tests/fixtures/models.py``; clients are the official ``openai``
package and httpx. Slow or failing models are stand-ins passed as ``provider_factory``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops_cli.errors import UsageError
from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult
from llmops_cli.monitor import MonitorStore, RequestRecord, open_store
from llmops_cli.providers import clear_provider_cache
from llmops_cli.serve import create_app, load_api_keys, resolve_options, serve_in_thread
from llmops_cli.serve.redact import Redactor
from llmops_cli.serve.streaming import TextStream
from llmops_cli.validation import load_config
from tests.fixtures.serve import KEY, SlowProvider, auth, chat_body, running, stored, wait_ready
from tests.helpers import git

# --- helpers ------------------------------------------------------------------------------------


def client(url: str, key: str = KEY) -> Any:
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


# --- OpenAI client: chat, streaming, completions, models ------------------------------------------


def test_openai_client_chats_streams_and_lists_models(served: Path) -> None:
    with running(served) as (url, app):
        api = client(url)
        raw = api.chat.completions.with_raw_response.create(
            model="base", messages=[{"role": "user", "content": "what is the capital of france?"}], max_tokens=6
        )
        answer = raw.parse()
        assert raw.headers["x-request-id"] == answer.id
        assert answer.object == "chat.completion" and answer.model == "base"
        text = answer.choices[0].message.content
        assert isinstance(text, str) and answer.choices[0].finish_reason in ("stop", "length")
        assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 6

        chunks = list(
            api.chat.completions.create(
                model="base",
                messages=[{"role": "user", "content": "what is the capital of france?"}],
                max_tokens=6,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(pieces) == text  # real token streaming gives the same greedy answer
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == answer.choices[0].finish_reason
        assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
        assert len({c.id for c in chunks}) == 1

        models = {m.id: m for m in api.models.list()}
        assert {"base", "chain:ask", "chain:rag-answer", "proj"} <= set(models)
        assert api.models.retrieve("base").id == "base"

    store = stored(app)
    assert store.count(endpoint="/v1/chat/completions") == 2
    streamed = [r for r in store.requests_between() if r.meta.get("stream")]
    assert streamed[0].output == text and streamed[0].meta["incremental"] is True


def test_completions_and_several_choices(served: Path) -> None:
    with running(served) as (url, _):
        api = client(url)
        done = api.completions.create(model="base", prompt=["hello", "what?"], max_tokens=3)
        assert [c.index for c in done.choices] == [0, 1] and done.object == "text_completion"
        streamed = "".join(
            c.choices[0].text
            for c in api.completions.create(model="base", prompt="hello", max_tokens=3, stream=True)
            if c.choices
        )
        assert streamed == done.choices[0].text
        many = api.chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=3, n=3
        )
        assert len(many.choices) == 3 and len({c.message.content for c in many.choices}) == 1  # greedy


def test_requests_are_batched_and_logged_with_versions(served: Path) -> None:
    with running(served, max_wait_ms=200) as (url, app):

        def ask(i: int) -> int:
            return httpx.post(
                url + "/v1/chat/completions", json=chat_body(f"q{i}"), headers=auth(), timeout=60
            ).status_code

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        batcher = app.state.llmops.catalog.batched("base", None)
        assert batcher.batches < 6  # the six concurrent requests shared generate calls
    store = stored(app)
    records = store.requests_between(endpoint="/v1/chat/completions")
    assert len(records) == 6 and {r.status for r in records} == {200}
    record = records[0]
    assert record.model.startswith("base@sha256:") and record.git_sha and len(record.git_sha) == 40
    assert record.input.startswith("q") and record.prompt_tokens > 0 and record.latency_ms > 0
    assert record.meta["params"]["max_new_tokens"] == 4


def test_adapter_is_listed_and_served(served: Path, tiny_model_dir: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = served / "artifacts" / "adapter" / "answer-lora"
    get_peft_model(base, config).save_pretrained(folder)
    (folder / "artifact.json").write_text(json.dumps({"version": 3}))
    with running(served) as (url, app):
        api = client(url)
        card = api.models.retrieve("answer-lora")
        assert card.model_extra["parent"] == "base"
        tuned = api.chat.completions.create(
            model="answer-lora", messages=[{"role": "user", "content": "hello"}], max_tokens=6
        )
        explicit = api.chat.completions.create(
            model="base+answer-lora", messages=[{"role": "user", "content": "hello"}], max_tokens=6
        )
        assert tuned.choices[0].message.content == explicit.choices[0].message.content
    record = stored(app).get(tuned.id)
    assert record is not None and record.adapter == "answer-lora@v3"


# --- chains --------------------------------------------------------------------------------------


def test_chain_invoke_and_chain_as_chat_model(served: Path) -> None:
    with running(served) as (url, app):
        answer = httpx.post(url + "/v1/chains/ask/invoke", json={"inputs": {"question": "hello"}}, headers=auth())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["object"] == "chain.run" and isinstance(body["output"], str)
        assert body["steps"][0]["kind"] == "prompt" and body["usage"]["prompt_tokens"] > 0
        assert answer.headers["x-request-id"] == body["id"]

        chat = client(url).chat.completions.create(model="chain:ask", messages=[{"role": "user", "content": "hello"}])
        assert chat.choices[0].message.content == body["output"]

        missing = httpx.post(url + "/v1/chains/ask/invoke", json={"inputs": {}}, headers=auth())
        assert missing.status_code == 400 and "question" in missing.json()["error"]["message"]
        unknown = httpx.post(url + "/v1/chains/nope/invoke", json={"inputs": {}}, headers=auth())
        assert unknown.status_code == 404
    record = stored(app).get(body["id"])
    assert record is not None and record.prompt.startswith("answer@sha256:") and record.input == "hello"
    assert record.meta["run"]["steps"][0]["kind"] == "prompt" and record.model.startswith("base@")


# --- errors, limits, auth ------------------------------------------------------------------------


def test_api_keys_are_required_except_on_probes(served: Path) -> None:
    import openai

    with running(served) as (url, app):
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        assert httpx.get(url + "/ready").status_code == 200
        for headers in ({}, auth("wrong-key"), {"Authorization": KEY}):
            refused = httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/v1/models").status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client(url, key="nope").models.list()
    record = stored(app).requests_between()[0]
    assert record.status == 401 and record.input is None


def test_no_keys_means_open_and_public_metrics(served: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running(served, api_keys=(), public_metrics=True) as (url, _):
        assert httpx.post(url + "/v1/chat/completions", json=chat_body()).status_code == 200
        assert httpx.get(url + "/metrics").status_code == 200
    assert any("API keys are OFF" in r.getMessage() for r in caplog.records)


def test_metrics_parse_as_prometheus_text(served: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with running(served) as (url, _):
        httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth())
        httpx.post(url + "/v1/chat/completions", json={"bad": 1}, headers=auth())
        text = httpx.get(url + "/metrics", headers=auth()).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["endpoint"], s.labels["status"]): s.value for s in families["llmops_requests"].samples}
    assert requests[("/v1/chat/completions", "200")] == 1 and requests[("/v1/chat/completions", "422")] == 1
    latency = families["llmops_request_latency_seconds"]
    assert latency.type == "histogram"
    counts = [
        s for s in latency.samples if s.name.endswith("_count") and s.labels["endpoint"] == "/v1/chat/completions"
    ]
    assert counts[0].value == 2
    tokens = {s.labels["kind"]: s.value for s in families["llmops_tokens"].samples}
    assert tokens["prompt"] > 0 and tokens["completion"] > 0
    assert families["llmops_requests_in_flight"].samples[0].value == 1  # the scrape itself
    assert families["llmops_model_ready"].samples[0].value == 1


def test_malformed_bodies_get_openai_style_errors(served: Path) -> None:
    with running(served) as (url, _):
        post = lambda body, **kw: httpx.post(url + "/v1/chat/completions", headers=auth(), **{"json": body, **kw})  # noqa: E731
        not_json = httpx.post(
            url + "/v1/chat/completions", content=b"{nope", headers={**auth(), "content-type": "application/json"}
        )
        assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
        assert post([1, 2]).status_code == 400
        shape = post({"model": "base"})
        assert shape.status_code == 422 and shape.json()["error"]["param"] == "messages"
        assert post(chat_body(temperature=5)).status_code == 422
        assert post({**chat_body(), "messages": [{"role": "wizard", "content": "x"}]}).status_code == 422
        unknown = post(chat_body(model="gpt-9"))
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        assert post(chat_body(logprobs=True)).status_code == 400
        assert post(chat_body(max_tokens=10**6)).status_code == 400
        image = [{"type": "image_url", "image_url": {"url": "x"}}]
        assert post({**chat_body(), "messages": [{"role": "user", "content": image}]}).status_code == 400
        assert httpx.get(url + "/v1/nothing", headers=auth()).status_code == 404
        assert httpx.get(url + "/v1/nothing", headers=auth()).json()["error"]["type"] == "not_found_error"
        # The server is still fine.
        assert post(chat_body()).status_code == 200


def test_oversize_bodies_get_413(served: Path) -> None:
    with running(served, max_body_bytes=4096) as (url, app):
        big = chat_body("x" * 10_000)
        declared = httpx.post(url + "/v1/chat/completions", json=big, headers=auth())
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts bytes as they arrive
            data = json.dumps(big).encode()
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        streamed = httpx.post(
            url + "/v1/chat/completions", content=chunks(), headers={**auth(), "content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth()).status_code == 200
    assert {r.status for r in stored(app).requests_between()} == {413, 200}


def test_overload_answers_429_with_retry_after(served: Path) -> None:
    slow = SlowProvider(delay=0.5)
    with running(served, factory=lambda model, adapter: slow, max_concurrency=2) as (url, app):
        results: list[httpx.Response] = []

        def ask() -> None:
            results.append(httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth(), timeout=30))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) >= 2 and 429 in codes and set(codes) <= {200, 429}
        busy = next(r for r in results if r.status_code == 429)
        assert busy.headers["retry-after"] == "1" and busy.json()["error"]["type"] == "rate_limit_error"
        assert httpx.get(url + "/health").status_code == 200


def test_batcher_overload_and_model_errors_map_to_status(served: Path) -> None:
    from llmops_cli.errors import UnavailableError
    from llmops_cli.providers.batching import Overloaded

    path = served / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["hosted"] = dict(data["models"]["base"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    providers = {
        "base": SlowProvider(error=Overloaded("queue full")),
        "hosted": SlowProvider(error=UnavailableError("down")),
    }
    with running(served, factory=lambda model, adapter: providers[model]) as (url, _):
        assert httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth()).status_code == 429
        down = httpx.post(url + "/v1/chat/completions", json=chat_body(model="hosted"), headers=auth())
        assert down.status_code == 503
        streamed = httpx.post(url + "/v1/chat/completions", json=chat_body(stream=True), headers=auth())
        assert streamed.status_code == 429  # failed before the first token: a plain HTTP error


def test_ready_is_503_until_the_model_is_loaded(served: Path) -> None:
    gate = threading.Event()
    slow = SlowProvider(gate=gate)
    with running(served, factory=lambda model, adapter: slow, wait=False) as (url, _):
        loading = httpx.get(url + "/ready")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert httpx.get(url + "/health").status_code == 200
        gate.set()
        wait_ready(url)


def test_ready_reports_a_model_that_failed_to_load(served: Path) -> None:
    path = served / "llmops.yaml"
    path.write_text(
        path.read_text().replace("source: " + str(load_config(served).models["base"].source), "source: ./missing")
    )
    with running(served, wait=False) as (url, _):
        deadline = time.monotonic() + 30
        while (answer := httpx.get(url + "/ready")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer.status_code == 503 and answer.json()["status"] == "error" and "missing" in answer.json()["error"]


# --- feedback and the request log ------------------------------------------------------------------


def test_feedback_is_stored_for_a_logged_request(served: Path) -> None:
    with running(served) as (url, app):
        answer = httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth()).json()
        given = httpx.post(
            url + "/v1/feedback",
            headers=auth(),
            json={"request_id": answer["id"], "score": -1, "label": "wrong", "comment": "bad"},
        )
        assert given.status_code == 200 and given.json()["request_id"] == answer["id"]
        unknown = httpx.post(url + "/v1/feedback", json={"request_id": "req-nope", "score": 1}, headers=auth())
        assert unknown.status_code == 404
        assert httpx.post(url + "/v1/feedback", json={"request_id": answer["id"]}, headers=auth()).status_code == 400
    (feedback,) = stored(app).feedback_for(answer["id"])
    assert (feedback.score, feedback.label, feedback.comment) == (-1.0, "wrong", "bad")


def test_redaction_masks_emails_and_secrets_in_the_log(served: Path) -> None:
    secret = "mail bob@example.com, key sk-abcdefghijklmnopqrstuv, Bearer abcdefghijklmnop, password=hunter22 " + KEY
    with running(served, redact=True) as (url, app):
        answer = httpx.post(url + "/v1/chat/completions", json=chat_body(secret), headers=auth()).json()
    record = stored(app).get(answer["id"])
    assert record is not None
    logged = record.input + json.dumps(record.meta)
    for leaked in ("bob@example.com", "sk-abcdefghijklmnopqrstuv", "abcdefghijklmnop", "hunter22", KEY):
        assert leaked not in logged
    assert "[EMAIL]" in record.input and "[SECRET]" in record.input


def test_redactor_patterns() -> None:
    redact = Redactor(["my-server-key-1"]).text
    assert redact("write to a.b+c@mail.example.org now") == "write to [EMAIL] now"
    assert redact("Authorization: Bearer eyJhbGciOi.abc") == "Authorization: Bearer [SECRET]"
    assert redact("token ghp_" + "a" * 36) == "token [SECRET]"
    assert redact("AKIAABCDEFGHIJKLMNOP and hf_" + "x" * 30) == "[SECRET] and [SECRET]"
    assert redact('{"api_key": "abcd1234"}') == '{"api_key": "[SECRET]"}'
    assert redact("uses my-server-key-1 here") == "uses [SECRET] here"
    assert redact("nothing secret in 2024, ok?") == "nothing secret in 2024, ok?"
    assert Redactor().value({"a": ["x@y.io", 3]}) == {"a": ["[EMAIL]", 3]}


# --- streaming internals -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["transformers", "llama-cpp"])
def test_smollm2_streams_word_by_word_and_stops_when_closed(project: Path, runtime: str) -> None:
    from llmops_cli.engines import llama_cpp
    from llmops_cli.providers import get_provider

    if runtime == "llama-cpp" and not llama_cpp.available():
        pytest.skip(f"llama.cpp engine: {llama_cpp.status().reason}")
    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["base"]["runtime"] = runtime
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    provider: Any = get_provider(load_config(project), "base")
    ask = ({"role": "user", "content": "What is the capital of France?"},)
    short = GenerationRequest(ask, GenerationParams(max_new_tokens=8))
    stream = TextStream(provider, short)
    pieces = list(stream)
    assert stream.incremental and len(pieces) > 2
    whole = provider.generate([short])[0]
    assert "".join(pieces) == whole.text and stream.completion_tokens == whole.completion_tokens

    long = TextStream(provider, GenerationRequest(ask, GenerationParams(max_new_tokens=200)))
    next(long)
    long.close()
    assert long.finish_reason == "cancelled" and 0 < long.completion_tokens < 60
    if runtime == "transformers":
        assert provider._loaded.lock.acquire(blocking=False)  # the worker let go of the model
        provider._loaded.lock.release()
    else:
        assert len(provider._free) == provider.parallel  # the slot went back
    clear_provider_cache()


@pytest.mark.integration
def test_a_local_stream_that_fails_still_counts_its_prompt(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.providers import get_provider
    from llmops_cli.providers import local as local_mod

    path = project / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["base"]["runtime"] = "transformers"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    provider: Any = get_provider(load_config(project), "base")
    request = GenerationRequest(({"role": "user", "content": "Hello?"},), GenerationParams(max_new_tokens=4))

    def out_of_memory(*_a: object, **_k: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(local_mod, "seeded_generate", out_of_memory)
    stream = TextStream(provider, request)
    with pytest.raises(RuntimeError, match="out of memory"):
        list(stream)
    assert stream.prompt_tokens == len(provider.encode(request)) > 0  # what the request log records
    clear_provider_cache()


def test_a_client_leaving_mid_stream_is_logged_as_499(served: Path) -> None:
    class Chatty(SlowProvider):
        def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
            return [GenerationResult("word " * 200_000, 3, 200_000, 1.0, "length", "chatty") for _ in requests]

    with running(served, factory=lambda model, adapter: Chatty()) as (url, app):
        with httpx.stream("POST", url + "/v1/chat/completions", json=chat_body(stream=True), headers=auth()) as answer:
            request_id = answer.headers["x-request-id"]
            next(answer.iter_lines())
        deadline = time.monotonic() + 30
        while app.state.llmops.admitted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth()).status_code == 200
    record = stored(app).get(request_id)
    assert record is not None and record.status == 499 and record.meta["finish_reason"] == "cancelled"


def test_stop_strings_are_never_streamed(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.providers.local_stream import HoldBackStops

    pieces = list(HoldBackStops(("STOP",)).pieces(iter(["hello S", "TO", "P and more"])))
    assert "".join(pieces) == "hello " and all("S" not in p for p in pieces)
    assert "".join(HoldBackStops(("STOP",)).pieces(iter(["ST", "ay ", "calm"]))) == "STay calm"


# --- options and keys ----------------------------------------------------------------------------------


def test_api_keys_from_the_environment() -> None:
    assert load_api_keys("K", {}) == ()
    assert load_api_keys("K", {"K": " a1, b2 ,a1,"}) == ("a1", "b2")
    with pytest.raises(UsageError, match="holds no API key"):
        load_api_keys("K", {"K": " , "})


def test_options_come_from_the_deployment_then_flags(served: Path) -> None:
    path = served / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["packages"] = {"bot": {"model": "base"}}
    data["deployments"] = {
        "dev": {
            "target": "local",
            "package": "bot",
            "port": 9001,
            "api_keys_env": "MY_KEYS",
            "redact": True,
            "max_concurrency": 3,
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(served)
    options = resolve_options(config, deployment="dev", environ={"MY_KEYS": "k1,k2"}, port=9002)
    assert (options.port, options.redact, options.max_concurrency, options.package) == (9002, True, 3, "bot")
    assert options.api_keys == ("k1", "k2")
    assert resolve_options(config, environ={}).api_keys == ()
    with pytest.raises(UsageError, match="No deployment named"):
        resolve_options(config, deployment="nope", environ={})


# --- the monitor store ---------------------------------------------------------------------------------


def record(i: int, ts: float, **extra: Any) -> RequestRecord:
    return RequestRecord(id=f"r{i}", ts=ts, endpoint="/v1/chat/completions", status=200, input=f"in {i}", **extra)


def test_monitor_store_lives_in_the_ignored_state_folder(project: Path) -> None:

    with open_store(load_config(project)) as store:
        store.log_request(record(1, time.time()))
    assert (project / ".llmops" / "monitor.db").is_file()
    assert git(project, "status", "--porcelain") == ""


# --- CLI ---------------------------------------------------------------------------------------------------


def test_serve_cli_runs_in_the_foreground_and_stops_on_ctrl_c(served: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LLMOPS_API_KEYS": KEY, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_cli", "-C", str(served), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/ready").status_code == 200:
                    break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        answer = httpx.post(url + "/v1/chat/completions", json=chat_body(), headers=auth(), timeout=60)
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "serving proj at" in err and "server stopped" in err
    with MonitorStore(served / ".llmops" / "monitor.db") as store:
        assert store.get(answer.json()["id"]) is not None


def test_serve_package_without_package_support_is_a_clear_error(
    served: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llmops_cli.package" else real(name, *a)
    )
    archive = served / "bot.tar.gz"
    archive.write_bytes(b"not really")
    result = cli("serve", "--package", str(archive))
    assert result.exit_code == 2
    assert "tar xzf" in result.output


def test_a_package_archive_is_unpacked_and_served(served: Path, tmp_path: Path) -> None:
    from llmops_cli.cli.serve import _unpacked
    from llmops_cli.package import build_package

    path = served / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["packages"] = {"bot": {"model": "base", "chain": "ask"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(served, "commit", "-qam", "package bot")
    built = build_package(load_config(served), "bot")
    root = _unpacked(built.archive, tmp_path / "app")
    assert _unpacked(built.archive, tmp_path / "app") == root  # a second run reuses the folder
    config = load_config(root)
    options = resolve_options(config, environ={})
    assert options.package == "bot"
    app = create_app(config, options=options)
    with serve_in_thread(app) as url:
        wait_ready(url)
        assert {m.id for m in client(url).models.list()} >= {"base", "chain:ask", "proj"}
        chat = client(url).chat.completions.create(model="proj", messages=[{"role": "user", "content": "hello"}])
    record = stored(app).get(chat.id)
    assert record is not None and record.package == "bot@v1"
    manifest = json.loads((root / "manifest.json").read_text())
    assert record.git_sha == manifest["git_sha"] and len(record.git_sha) == 40 and record.meta["chain"] == "ask"


def test_bounded_load_200_requests_16_concurrent_all_in_llmops_monitor(served: Path, cli: Any) -> None:
    """The issue's load test on the tiny model: 200 chats from 16 threads, no 5xx, all 200 in `llmops monitor`."""
    from concurrent.futures import ThreadPoolExecutor

    with running(served, max_batch=8) as (url, _app), httpx.Client(timeout=120) as http:

        def one(i: int) -> int:
            return http.post(url + "/v1/chat/completions", json=chat_body(f"question {i}"), headers=auth()).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(200)))
    assert statuses.count(200) == 200, sorted(set(statuses))
    result = cli("monitor", "--json", "--no-drift", "--no-eval", "--endpoint", "/v1/chat/completions", cwd=served)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["requests"] == 200
    assert report["metrics"]["error_rate"] == 0
