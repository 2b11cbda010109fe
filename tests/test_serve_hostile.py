"""Single hostile requests (issue 12, part 4): each gets a clear 4xx, never hurts the server.

Every case checks the status code, that ``/health`` answers right after, and that the next normal
request is answered and logged in the monitor store. The server is the real one (uvicorn in a
thread, the tiny random Llama of ``tests/fixtures/models.py``); stand-in providers are used where a
case needs a slow or failing model.
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

from llmops_cli.generation import GenerationRequest, GenerationResult
from llmops_cli.serve import ServeOptions, create_app, serve_in_thread
from llmops_cli.validation import load_config
from tests.fixtures.serve import KEY, auth, chat_body, running, stored, wait_ready

SURROGATE = "\ud800"  # valid JSON as an escape, not encodable as UTF-8


def post(url: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    """POST ``body`` as JSON with ASCII escapes (so a lone surrogate travels as ``\\ud800``)."""
    headers = {**auth(), "Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(url + path, content=json.dumps(body), headers=headers, timeout=kwargs.pop("timeout", 60))


def still_serving(url: str, app: Any) -> None:
    """/health answers, and the next normal request is answered and logged."""
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    answer = post(url, "/v1/chat/completions", chat_body("after"))
    assert answer.status_code == 200, answer.text
    store = app.state.llmops.store
    assert store.flush(30)
    assert store.has_request(answer.json()["id"])


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


class Stand:
    """A stand-in model: answers "ok" after ``delay`` s, stops early when a request is cancelled,
    raises for a request whose text contains "poison" (so a whole batch of it would fail)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.name = "stand"
        self.delay = delay
        self.batches: list[int] = []
        self.cancelled = threading.Event()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append(len(requests))
        if any("poison" in m["content"] for r in requests for m in r.messages):
            raise ValueError("this batch holds a poisoned request")
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if all(r.cancelled for r in requests):
                self.cancelled.set()
                break
            time.sleep(0.01)
        return [GenerationResult("ok", 3, 1, 1.0, "stop", self.name) for _ in requests]


# --- 1. text that cannot be encoded ------------------------------------------------------------

UNENCODABLE = [
    ("/v1/chat/completions", chat_body("a" + SURROGATE), "messages.0.content"),
    (
        "/v1/chat/completions",
        {"model": "base", "messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
        "messages.0.content.0.text",
    ),
    ("/v1/chat/completions", chat_body(stop=["x", "y" + SURROGATE]), "stop.1"),
    ("/v1/chat/completions", chat_body(user=SURROGATE), "user"),
    ("/v1/chat/completions", chat_body(model=SURROGATE), "model"),
    ("/v1/completions", {"model": "base", "prompt": ["fine", SURROGATE], "max_tokens": 2}, "prompt.1"),
    ("/v1/chains/ask/invoke", {"inputs": {"question": ["x", SURROGATE]}}, "inputs"),
    ("/v1/feedback", {"request_id": "req-1", "comment": SURROGATE}, "comment"),
]


@pytest.mark.parametrize(("path", "body", "param"), UNENCODABLE, ids=[c[2] for c in UNENCODABLE])
def test_unencodable_text_is_400_naming_the_field(served: Path, path: str, body: Any, param: str) -> None:
    with running(served) as (url, app):
        answer = post(url, path, body)
        assert answer.status_code == 400, answer.text
        error = error_of(answer)
        assert error["param"] == param and error["code"] == "invalid_text"
        assert "UTF-8" in error["message"]
        still_serving(url, app)
        assert app.state.llmops.store.write_errors == 0
    rows = stored(app).requests_between()
    assert [r.status for r in rows if r.status == 400] == [400]  # the refusal itself is logged, once


def test_unencodable_text_never_fails_a_batch_mate(served: Path) -> None:
    with running(served, max_wait_ms=300) as (url, app):
        answers: dict[str, int] = {}

        def ask(name: str, text: str) -> None:
            answers[name] = post(url, "/v1/chat/completions", chat_body(text)).status_code

        threads = [threading.Thread(target=ask, args=(f"good{i}", f"q{i}")) for i in range(3)]
        threads.append(threading.Thread(target=ask, args=("bad", "x" + SURROGATE)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == {"good0": 200, "good1": 200, "good2": 200, "bad": 400}
        still_serving(url, app)


# --- 2. stop strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "status"),
    [
        (["a", "b", "c", "d", "e"], 422),  # more than 4
        ("x" * 200_000, 422),  # the 200 KB stop string of the issue
        (["ok", "y" * 65], 422),  # one over 64 characters
        ([""], 422),
        (["z" * 64, "\n", "Question:", "</s>"], 200),  # at the limits
    ],
    ids=["five", "200KB", "65-chars", "empty", "at-limits"],
)
def test_stop_strings_are_capped(served: Path, stop: Any, status: int) -> None:
    with running(served) as (url, app):
        started = time.monotonic()
        answer = post(url, "/v1/chat/completions", chat_body(stop=stop))
        assert answer.status_code == status, answer.text
        assert time.monotonic() - started < 20
        if status != 200:
            assert error_of(answer)["param"] == "stop"
        streamed = post(url, "/v1/completions", {"model": "base", "prompt": "hi", "stop": stop, "stream": True})
        assert streamed.status_code == status
        still_serving(url, app)


# --- 3. sampling values and seeds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"temperature": 1e-300}, 422, "temperature"),
        ({"temperature": 0.005}, 422, "temperature"),
        ({"temperature": 2.5}, 422, "temperature"),
        ({"top_p": 0}, 422, "top_p"),
        ({"top_p": 1e-320}, 200, None),  # tiny but positive keeps the most likely token: finite
        ({"top_k": 10**12}, 422, "top_k"),
        ({"repetition_penalty": 1e-300}, 422, "repetition_penalty"),
        ({"repetition_penalty": 1e300}, 422, "repetition_penalty"),
        ({"seed": 2**80, "temperature": 0.7}, 422, "seed"),
        ({"seed": -1, "temperature": 0.7}, 422, "seed"),
        ({"logit_bias": {"5": 1e300}}, 400, "logit_bias"),
        ({"presence_penalty": 1.5}, 400, "presence_penalty"),
        ({"frequency_penalty": 9}, 422, "frequency_penalty"),
        ({"max_tokens": 10**30}, 400, "max_tokens"),
        ({"n": 10**6}, 422, "n"),
        # The extremes that are allowed really run: seed at the top (n=2 wraps seed+1), coldest temperature.
        ({"seed": 2**63 - 1, "temperature": 0.01, "n": 2}, 200, None),
        ({"temperature": 2.0, "top_p": 1.0, "top_k": 100_000, "repetition_penalty": 10.0}, 200, None),
        ({"temperature": 0.01, "repetition_penalty": 0.01, "seed": 7}, 200, None),
    ],
)
def test_sampling_values_out_of_range_are_refused(
    served: Path, extra: dict[str, Any], status: int, param: str | None
) -> None:
    with running(served) as (url, app):
        answer = post(url, "/v1/chat/completions", chat_body(**extra))
        assert answer.status_code == status, answer.text
        if param is not None:
            assert error_of(answer)["param"] == param
        still_serving(url, app)


def test_non_finite_numbers_are_refused(served: Path) -> None:
    """Python's JSON parser takes NaN and Infinity; no field may hold them."""
    with running(served) as (url, app):
        for raw in (
            '{"model": "base", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
            '{"model": "base", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
        ):
            answer = httpx.post(
                url + "/v1/chat/completions", content=raw, headers={**auth(), "Content-Type": "application/json"}
            )
            assert answer.status_code in (400, 422), answer.text
        logged = post(url, "/v1/chat/completions", chat_body())
        feedback = post(url, "/v1/feedback", {"request_id": logged.json()["id"], "score": float("nan")})
        assert feedback.status_code in (400, 422), feedback.text
        still_serving(url, app)


# --- 4. the context window ---------------------------------------------------------------------


def test_prompt_longer_than_the_context_is_400_with_both_numbers(served: Path) -> None:
    long_text = " ".join(f"word{i}" for i in range(1500))
    with running(served) as (url, app):
        for path, body in (
            ("/v1/chat/completions", chat_body(long_text)),
            ("/v1/chat/completions", chat_body(long_text, stream=True)),
            ("/v1/completions", {"model": "base", "prompt": ["short", long_text], "max_tokens": 2}),
        ):
            answer = post(url, path, body)
            assert answer.status_code == 400, answer.text
            message = error_of(answer)["message"]
            assert "2048-token context window" in message and "The prompt is " in message
            tokens = int(message.split("The prompt is ")[1].split()[0])
            assert tokens > 2048
        # Truncation only when asked: the last N tokens, or (-1) as many as leave room for max_tokens.
        kept = post(url, "/v1/chat/completions", chat_body(long_text, truncate_prompt_tokens=40))
        assert kept.status_code == 200, kept.text
        assert kept.json()["usage"]["prompt_tokens"] == 40
        fitted = post(url, "/v1/chat/completions", chat_body(long_text, truncate_prompt_tokens=-1))
        assert fitted.status_code == 200, fitted.text
        assert fitted.json()["usage"]["prompt_tokens"] == 2048 - 4
        streamed = post(url, "/v1/completions", {"prompt": long_text, "truncate_prompt_tokens": -1, "stream": True})
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        zero = post(url, "/v1/chat/completions", chat_body(truncate_prompt_tokens=0))
        assert zero.status_code == 422 and error_of(zero)["param"] == "truncate_prompt_tokens"
        still_serving(url, app)


# --- 5. one bad request in a batch -------------------------------------------------------------


def test_a_failing_batch_is_retried_one_by_one(served: Path) -> None:
    stand = Stand()
    with running(served, factory=lambda model, adapter: stand, max_wait_ms=300) as (url, app):
        answers: dict[str, int] = {}

        def ask(text: str) -> None:
            answers[text] = post(url, "/v1/chat/completions", chat_body(text)).status_code

        threads = [threading.Thread(target=ask, args=(text,)) for text in ("one", "poison", "two", "three")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == {"one": 200, "two": 200, "three": 200, "poison": 500}
        assert stand.batches[0] == 4  # they did share a batch, and only the poisoned one failed
        still_serving(url, app)


def test_a_too_long_prompt_never_fails_its_batch_mates(served: Path) -> None:
    with running(served, max_wait_ms=300) as (url, app):
        answers: dict[str, int] = {}

        def ask(name: str, text: str) -> None:
            answers[name] = post(url, "/v1/chat/completions", chat_body(text)).status_code

        long_text = " ".join(f"w{i}" for i in range(2000))
        threads = [threading.Thread(target=ask, args=(f"q{i}", f"q{i}")) for i in range(3)]
        threads.append(threading.Thread(target=ask, args=("long", long_text)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == {"q0": 200, "q1": 200, "q2": 200, "long": 400}
        still_serving(url, app)


# --- 6. requests that can never fit ------------------------------------------------------------


def test_more_generations_than_the_limit_is_400_not_429(served: Path) -> None:
    stand = Stand()
    with running(served, factory=lambda model, adapter: stand, max_concurrency=4) as (url, app):
        many = post(url, "/v1/completions", {"model": "base", "prompt": [f"p{i}" for i in range(5)], "max_tokens": 2})
        assert many.status_code == 400, many.text
        assert "at most 4" in error_of(many)["message"] and error_of(many)["param"] == "prompt"
        choices = post(url, "/v1/completions", {"model": "base", "prompt": ["a", "b"], "n": 3})  # 2 x 3 = 6
        assert choices.status_code == 400 and "6 generations" in error_of(choices)["message"]
        chat = post(url, "/v1/chat/completions", chat_body(n=5))
        assert chat.status_code == 400 and error_of(chat)["param"] == "n"
        assert post(url, "/v1/completions", {"model": "base", "prompt": ["a", "b"], "n": 2}).status_code == 200
        assert not stand.batches[:-1]  # nothing of the refused requests reached the model
        still_serving(url, app)


# --- 7. clients that leave, and shutdown -------------------------------------------------------


def test_a_client_that_leaves_cancels_its_generation_and_is_logged_499(served: Path) -> None:
    stand = Stand(delay=30)
    with running(served, factory=lambda model, adapter: stand) as (url, app):
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            post(url, "/v1/chat/completions", chat_body("long job"), timeout=1.0)
        assert stand.cancelled.wait(10), "the generation was not cancelled"
        assert time.monotonic() - started < 10
        stand.delay = 0
        still_serving(url, app)
    rows = [r for r in stored(app).requests_between() if r.input == "long job"]
    assert len(rows) == 1 and rows[0].status == 499
    assert rows[0].error and "closed the connection" in rows[0].error


def test_the_local_model_stops_a_cancelled_row_and_finishes_the_others(served: Path) -> None:
    from llmops_cli.generation import GenerationParams

    with running(served) as (_, app):
        provider = app.state.llmops.catalog.batched("base", None).inner
        params = GenerationParams(max_new_tokens=40)
        gone, stays = threading.Event(), threading.Event()
        gone.set()
        results = provider.generate(
            [
                GenerationRequest(({"role": "user", "content": "hi"},), params, gone),
                GenerationRequest(({"role": "user", "content": "hi"},), params, stays),
            ]
        )
        # The cancelled row ends after its first token (then padding: the pad token is EOS here).
        assert results[0].completion_tokens <= 2 < results[1].completion_tokens


def test_shutdown_cancels_what_runs_and_logs_each_request_once(served: Path, caplog: pytest.LogCaptureFixture) -> None:
    stand = Stand(delay=60)
    app = create_app(load_config(served), options=ServeOptions(api_keys=(KEY,)), provider_factory=lambda m, a: stand)
    answers: list[Any] = []
    with caplog.at_level(logging.INFO):
        with serve_in_thread(app, graceful_s=1) as url:
            wait_ready(url)
            done = post(url, "/v1/chat/completions", chat_body("before"))
            assert done.status_code == 200

            def ask() -> None:
                try:
                    answers.append(post(url, "/v1/chat/completions", chat_body("in flight"), timeout=30).status_code)
                except httpx.HTTPError as error:
                    answers.append(type(error).__name__)

            client = threading.Thread(target=ask)
            client.start()
            time.sleep(0.5)
            started = time.monotonic()
        assert time.monotonic() - started < 15  # cancelled after the 1 s grace, not after the 60 s job
        client.join(10)
    assert stand.cancelled.is_set()
    assert answers == [503]
    rows = {r.input: r for r in stored(app).requests_between()}
    assert len(rows) == 2 and rows["before"].status == 200
    assert rows["in flight"].status == 503 and "shut down" in (rows["in flight"].error or "")
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


# --- 8. metric labels --------------------------------------------------------------------------


def test_random_paths_leave_metrics_bounded_and_the_log_clean(served: Path) -> None:
    stand = Stand()
    with running(served, factory=lambda model, adapter: stand) as (url, app):
        with httpx.Client(base_url=url, timeout=30) as http:
            before = len(http.get("/metrics", headers=auth()).text.splitlines())
            statuses: set[int] = set()
            for i in range(3000):
                path = (f"/v1/models/m{i}x", f"/v1/unknown{i}", f"/nowhere/{i}")[i % 3]
                statuses.add(http.get(path, headers=auth() if i % 2 else {}).status_code)
            text = http.get("/metrics", headers=auth()).text
        assert statuses == {401, 404}
        lines = text.splitlines()
        assert len(lines) - before < 60, len(lines)  # the issue measured 320 -> 54,000
        labels = {line.split("endpoint=")[1].split('"')[1] for line in lines if "endpoint=" in line}
        assert labels <= {"/v1/models/{model_id}", "unmatched", "/metrics", "/health", "/ready"}, labels
        still_serving(url, app)
    rows = stored(app).requests_between()
    assert {r.endpoint for r in rows} == {"/v1/models/{model_id}", "/v1/chat/completions"}
    assert sum(r.endpoint == "/v1/models/{model_id}" for r in rows) == 1000  # one row a request, no path kept
