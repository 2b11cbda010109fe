"""``llmops serve --upstream`` (a gateway in front of an OpenAI-compatible server) and ``--device``.

The main test runs two real ``llmops serve`` processes: the upstream serves the tiny random Llama
of ``tests/fixtures/models.py``; the gateway in front has its own API key and its own monitor store and
is driven with the official ``openai`` client. Timing (chunks passed on as they arrive) and
failures (upstream down, too slow) use a small SSE server written here as the upstream, so the
test controls when each piece leaves.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops_cli.serve import ServeOptions, create_app, serve_in_thread
from llmops_cli.validation import load_config

GATEWAY_KEY = "gateway-key-0123456789"
UPSTREAM_KEY = "upstream-key-9876543210"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_process(root: Path, *args: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """``llmops -C root serve --port P ARGS`` as a real process, until /ready; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "llmops_cli", "-C", str(root), "serve", "--port", str(port)]
    command += ["--log-level", "warning", *args]
    with log.open("w") as sink:
        proc = subprocess.Popen(command, env={**os.environ, "NO_COLOR": "1", **env}, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/ready", timeout=10).status_code == 200:
                    break
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "never ready: " + log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def openai_client(url: str, key: str = GATEWAY_KEY) -> Any:
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_gateway_in_front_of_a_real_llmops_server(served: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    upstream_store, gateway_store = tmp_path / "upstream.db", tmp_path / "gateway.db"
    up_env = {"LLMOPS_API_KEYS": UPSTREAM_KEY}
    gw_env = {"LLMOPS_API_KEYS": GATEWAY_KEY, "UPSTREAM_KEY": UPSTREAM_KEY}
    with (
        serve_process(served, "--store", str(upstream_store), env=up_env, log=tmp_path / "up.log") as upstream,
        serve_process(
            served,
            *("--upstream", upstream, "--upstream-key-env", "UPSTREAM_KEY", "--store", str(gateway_store)),
            env=gw_env,
            log=tmp_path / "gw.log",
        ) as gateway,
    ):
        ready = httpx.get(gateway + "/ready").json()
        assert ready["status"] == "ready" and ready["device"] == "upstream"
        client = openai_client(gateway)
        listed = [m.id for m in client.models.list().data]
        upstream_listed = httpx.get(upstream + "/v1/models", headers={"Authorization": f"Bearer {UPSTREAM_KEY}"})
        assert listed == [m["id"] for m in upstream_listed.json()["data"]] and "base" in listed

        answer = client.chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hello"}], max_tokens=6
        )
        assert answer.choices[0].message.content and answer.usage.completion_tokens > 0

        pieces = []
        stream = client.chat.completions.create(
            model="base",
            messages=[{"role": "user", "content": "tell me more"}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        stream_id, usage = None, None
        for chunk in stream:
            stream_id = chunk.id
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        assert len(pieces) > 1, pieces  # passed on piece by piece, not as one block
        assert usage is not None and usage.completion_tokens > 0

        # No key: 401 at the gateway, and the upstream never hears of it (its log is checked below).
        refused = httpx.post(
            gateway + "/v1/chat/completions",
            json={"model": "base", "messages": [{"role": "user", "content": "no key"}], "max_tokens": 2},
        )
        assert refused.status_code == 401

        feedback = httpx.post(
            gateway + "/v1/feedback",
            json={"request_id": answer.id, "score": 1},
            headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert feedback.status_code == 200, feedback.text
        metrics = httpx.get(gateway + "/metrics", headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        assert families["llmops_requests"].samples  # parsed by Prometheus' own parser
        served_ok = [s for s in families["llmops_requests"].samples if s.labels.get("status") == "200" and s.value > 0]
        assert served_ok, families["llmops_requests"].samples

    rows = {row["id"]: row for row in _rows(gateway_store)}
    plain, streamed = rows[answer.id], rows[stream_id]
    for row in (plain, streamed):
        assert row["model"] == "base" and row["status"] == 200 and row["completion_tokens"] > 0
        assert row["git_sha"]  # the gateway's provenance, as every llmops server logs it
    assert plain["output"] == answer.choices[0].message.content
    assert streamed["output"] == "".join(pieces)
    assert json.loads(streamed["meta"])["incremental"] is True
    assert any(row["status"] == 401 for row in rows.values())
    generated = [r for r in _rows(upstream_store) if r["endpoint"] == "/v1/chat/completions"]
    assert len(generated) == 2 and {r["status"] for r in generated} == {200}
    assert "no key" not in {r["input"] for r in generated}


def _rows(path: Path) -> list[dict[str, Any]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY ts")]


# --- a scripted upstream: timing and failures ---------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    """A test upstream whose clients (the gateway under test) may hang up mid-answer on purpose (the
    504 test): socketserver would print that as a traceback into whatever captures stderr then."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class ScriptedUpstream:
    """An OpenAI-style server whose stream sends one piece, then waits for ``release`` before the rest."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.release = threading.Event()
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                upstream.requests.append(body)
                time.sleep(upstream.delay_s)
                if not body.get("stream"):
                    choice = {"message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}
                    usage = {"prompt_tokens": 3, "completion_tokens": 1}
                    self._json(200, {"model": "scripted", "choices": [choice], "usage": usage})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._event({"choices": [{"index": 0, "delta": {"content": "first"}}]})
                upstream.release.wait(10)
                self._event({"choices": [{"index": 0, "delta": {"content": " second"}, "finish_reason": "stop"}]})
                self._event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _event(self, data: dict[str, Any]) -> None:
                self._chunk(f"data: {json.dumps({'model': 'scripted', **data})}\n\n".encode())

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def gateway(root: Path, upstream: str, tmp_path: Path, **options: Any) -> Iterator[tuple[str, Any]]:
    settings = {"api_keys": (GATEWAY_KEY,), "upstream": upstream, "store_path": tmp_path / "gw.db", **options}
    app = create_app(load_config(root), options=ServeOptions(**settings))
    with serve_in_thread(app) as url:
        yield url, app


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {GATEWAY_KEY}"}


def test_stream_pieces_leave_the_gateway_as_they_arrive(project: Path, tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    try:
        with gateway(project, upstream.url, tmp_path) as (url, _app):
            body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers(), timeout=20) as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                seen = ""
                while "first" not in seen:  # arrives while the upstream still holds " second"
                    seen += next(lines)
                assert not upstream.release.is_set()
                upstream.release.set()
                rest = "".join(lines)
            assert " second" in rest and rest.rstrip().endswith("[DONE]")
        assert upstream.requests[0]["stream"] is True and upstream.requests[0]["model"] == "scripted"
    finally:
        upstream.close()


def test_upstream_down_gives_502_and_unready(project: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway(project, dead, tmp_path) as (url, app):
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 503 and "upstream not ready" in ready.json()["error"]
        body = {"messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            answer = httpx.post(url + "/v1/chat/completions", json={**body, "stream": stream}, headers=headers())
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["type"] == "upstream_error"
        listed = httpx.get(url + "/v1/models", headers=headers())
        assert listed.status_code == 502
        assert httpx.get(url + "/health").status_code == 200
    rows = [r for r in _rows(tmp_path / "gw.db") if r["endpoint"] == "/v1/chat/completions"]
    assert [r["status"] for r in rows] == [502, 502]
    assert all("cannot be reached" in r["error"] or "failed" in r["error"] for r in rows), rows


def test_a_slow_upstream_gives_504_and_a_known_model_is_checked(project: Path, tmp_path: Path) -> None:
    upstream = ScriptedUpstream(delay_s=1.5)
    try:
        with gateway(project, upstream.url + "/v1/", tmp_path, upstream_timeout_s=0.5) as (url, _app):
            assert httpx.get(url + "/ready").json()["status"] == "ready"
            body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(url + "/v1/chat/completions", json=body, headers=headers(), timeout=20)
            assert answer.status_code == 504, answer.text
            unknown = httpx.post(url + "/v1/chat/completions", json={**body, "model": "nope"}, headers=headers())
            assert unknown.status_code == 404
            assert len(upstream.requests) == 1  # the unknown model never reached the upstream
    finally:
        upstream.close()


def test_gateway_options_are_checked(project: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = cli("serve", "--upstream", "ftp://example", cwd=project)
    assert bad.exit_code == 2 and "not an http(s) URL" in bad.output
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    missing = cli("serve", "--upstream", "http://127.0.0.1:1", "--upstream-key-env", "NO_SUCH_KEY_VAR", cwd=project)
    assert missing.exit_code == 2 and "NO_SUCH_KEY_VAR" in missing.output


# --- --device -------------------------------------------------------------------------------------------------


def test_bad_devices_exit_2_with_a_clear_message(project: Path, cli: Any) -> None:
    import torch

    bad = cli("serve", "--device", "tpu", cwd=project)
    assert bad.exit_code == 2 and "--device 'tpu'" in bad.output and "cuda:N" in bad.output
    if not torch.cuda.is_available():
        no_gpu = cli("serve", "--device", "cuda", cwd=project)
        assert no_gpu.exit_code == 2 and "no CUDA GPU" in no_gpu.output
        assert "Traceback" not in no_gpu.output


def test_auto_device_is_reported_by_ready_and_reaches_the_provider(
    served: Path,
    tmp_path: Path,
) -> None:
    import torch

    from llmops_cli.serve import resolve_options

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    options = resolve_options(load_config(served), api_keys=(GATEWAY_KEY,), store_path=tmp_path / "m.db")
    assert options.device == "auto"
    app = create_app(load_config(served), options=options)
    with serve_in_thread(app) as url:
        deadline = time.monotonic() + 60
        while (ready := httpx.get(url + "/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.json()["device"] == expected
        inner = app.state.llmops.catalog.provider(app.state.llmops.catalog.default).inner
        assert inner.device == expected


def test_deployment_serve_device_is_read(served: Path) -> None:
    from llmops_cli.serve import resolve_options

    path = served / "llmops.yaml"
    data = yaml.safe_load(path.read_text())
    data["packages"] = {"bot": {"model": "base"}}
    data["deployments"] = {"gpu": {"target": "local", "package": "bot", "serve": {"device": "cpu"}}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    options = resolve_options(load_config(served), deployment="gpu", api_keys=())
    assert options.device == "cpu"
    assert resolve_options(load_config(served), deployment="gpu", api_keys=(), device="auto").device == "auto"


gpu = pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
def test_serve_on_a_cuda_device_generates(served: Path, tmp_path: Path) -> None:
    env = {"LLMOPS_API_KEYS": GATEWAY_KEY}
    with serve_process(served, "--device", "cuda", env=env, log=tmp_path / "gpu.log") as url:
        ready = httpx.get(url + "/ready").json()
        assert ready["device"] == "cuda"
        answer = openai_client(url).chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hello"}], max_tokens=6
        )
        assert answer.usage.completion_tokens > 0
        stream = openai_client(url).chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hello"}], max_tokens=6, stream=True
        )
        assert any(c.choices and c.choices[0].delta.content for c in stream)
