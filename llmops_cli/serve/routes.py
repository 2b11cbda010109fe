"""The HTTP endpoints: OpenAI-compatible models, chat and completions, chains, feedback, probes, metrics."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from llmops_cli.errors import LlmopsError
from llmops_cli.generation import GenerationRequest, GenerationResult, Message
from llmops_cli.serve import responses as fmt
from llmops_cli.serve.chains import chain_error, chain_inputs, check_chain, output_text, prompt_names, run_summary
from llmops_cli.serve.errors import ApiError, from_llmops_error
from llmops_cli.serve.metrics import CONTENT_TYPE
from llmops_cli.serve.schemas import ChainInvokeRequest, ChatCompletionRequest, CompletionRequest, FeedbackRequest
from llmops_cli.serve.state import SCOPE_KEY, RequestInfo, ServerState
from llmops_cli.serve.streaming import TextStream

router = APIRouter()
CLIENT_CLOSED = 499  # logged (never sent) for requests the client abandoned
CLIENT_LEFT = "The client closed the connection before the answer was ready; its generation was cancelled."
DISCONNECT_POLL_S = 0.1  # how often a non-streaming request checks that its client is still there
DRAIN_S = 10.0  # at shutdown, how long cancelled requests get to answer and be logged
_GENERATIONS = "llmops_generations"  # app.state attribute: cancel events of generations in flight
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of SSE


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.llmops
    return state


def _info(request: Request) -> RequestInfo:
    info: RequestInfo = request.scope[SCOPE_KEY]
    return info


# --- probes and metrics ------------------------------------------------------------------------


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: 200 while the process serves HTTP at all."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 once the default model is loaded, 503 while loading (or when loading failed).
    A gateway is ready while its upstream answers GET /v1/models. 503 too while the monitor store
    cannot be written (``store_error`` says why)."""
    catalog = _state(request).catalog
    if catalog.upstream is not None:
        await _state(request).run(catalog.check_ready)
    readiness = catalog.readiness
    body: dict[str, Any] = {"status": readiness.state, "model": catalog.default.id, "device": catalog.device}
    if readiness.error:
        body["error"] = readiness.error
    store = _state(request).store
    if not store.healthy:  # requests would go unlogged: take this replica out of the load balancer
        body["status"], body["store_error"] = "store_unavailable", store.last_error
        return JSONResponse(body, status_code=503)
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_state(request).metrics.render(), media_type=CONTENT_TYPE)


# --- models ------------------------------------------------------------------------------------


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {"object": "list", "data": [t.card(state.started) for t in state.catalog.targets()]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    for target in state.catalog.targets():
        if target.id == model_id:
            return target.card(state.started)
    return state.catalog.resolve(model_id).card(state.started)  # an unlisted MODEL+ADAPTER, or the 404


# --- generation --------------------------------------------------------------------------------


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    state, info = _state(request), _info(request)
    target = state.catalog.resolve(body.model)
    model = body.model or target.id
    info.set_target(target, state.provenance)
    if target.chain is not None:
        return await _chat_with_chain(state, info, body, target.chain, model)
    requests = body.to_requests(limit=state.options.max_tokens_limit)
    _describe(info, requests[0].messages, requests[0], body.n, body.stream, body.user)
    provider = state.catalog.provider(target)
    if body.stream:
        stream = TextStream(provider, requests[0])
        return await _stream(state, info, stream, "chat", model, body.include_usage)
    results = await _generate(state, request, provider, requests, param="n")
    _account(info, results, prompts=1)
    return JSONResponse(fmt.chat_completion(info.id, model, int(time.time()), results))


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    """Each prompt is sent to the model as one user message (chat template applied): the served
    models are instruct models, and providers take chat messages."""
    state, info = _state(request), _info(request)
    target = state.catalog.resolve(body.model)
    model = body.model or target.id
    if target.chain is not None:
        raise ApiError(400, f"'{model}' is a chain: use /v1/chat/completions or /v1/chains/{{name}}/invoke.")
    info.set_target(target, state.provenance)
    requests = body.to_requests(limit=state.options.max_tokens_limit)
    prompts = body.prompts
    _describe(info, ({"role": "user", "content": prompts[0]},), requests[0], body.n, body.stream, body.user)
    if len(prompts) > 1:
        info.input = json.dumps(prompts, ensure_ascii=False)
    provider = state.catalog.provider(target)
    if body.stream:
        stream = TextStream(provider, requests[0])
        return await _stream(state, info, stream, "text", model, body.include_usage)
    results = await _generate(state, request, provider, requests, param="prompt")
    _account(info, results, prompts=len(prompts))
    return JSONResponse(fmt.text_completion(info.id, model, int(time.time()), results, len(prompts)))


async def _generate(
    state: ServerState, request: Request, provider: Any, requests: list[GenerationRequest], *, param: str
) -> list[GenerationResult]:
    """``provider.generate(requests)`` in a worker thread, cancelled when the client goes away.

    The generation runs under one cancel event: set when the client disconnects (polled every
    ``DISCONNECT_POLL_S``; then a 499 is logged), when this task is cancelled, or at shutdown
    (:func:`stop_generations`). Providers stop a cancelled request at its next token.
    """
    import anyio

    limit = state.options.max_concurrency
    if len(requests) > limit:  # could never be admitted: 400, not a 429 that no retry can cure
        raise ApiError(
            400,
            f"This request asks for {len(requests)} generations (prompts x n); this server runs at most "
            f"{limit} at once (--max-concurrency). Split it into smaller requests.",
            param=param,
            code="too_many_generations",
        )
    cancel = threading.Event()
    requests = [dataclasses.replace(r, cancel=cancel) for r in requests]
    left = False

    async def watch() -> None:
        nonlocal left
        try:
            while not await request.is_disconnected():
                await anyio.sleep(DISCONNECT_POLL_S)
            left = True
        finally:
            cancel.set()  # also when cancelled itself: the generation must not outlive its request

    results: list[GenerationResult] = []
    failure: Exception | None = None
    running = _generations(request)
    running.add(cancel)
    try:
        async with state.admitted_slot(), anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                results = await state.run(provider.generate, requests)
            except Exception as error:  # raised below, outside the task group (which would wrap it)
                failure = error
            finally:
                group.cancel_scope.cancel()
    finally:
        running.discard(cancel)
    if left:
        raise ApiError(CLIENT_CLOSED, CLIENT_LEFT, type="client_closed", code="client_closed")
    if failure is not None:
        raise failure
    return results


def _generations(request: Request) -> set[threading.Event]:
    """The cancel events of this app's generations in flight (what shutdown cancels)."""
    app_state = request.app.state
    running: set[threading.Event] | None = getattr(app_state, _GENERATIONS, None)
    if running is None:
        running = set()
        setattr(app_state, _GENERATIONS, running)
    return running


async def stop_generations(app: Any, state: ServerState, timeout_s: float = DRAIN_S) -> None:
    """At shutdown: cancel the generations still running and wait (at most ``timeout_s``) until
    their requests have answered and been logged, so the store is closed after their rows."""
    import anyio

    for cancel in list(getattr(app.state, _GENERATIONS, ())):
        cancel.set()
    deadline = time.monotonic() + timeout_s
    while state.metrics.in_flight > 0 and time.monotonic() < deadline:
        await anyio.sleep(0.02)


def _describe(
    info: RequestInfo,
    messages: Sequence[Message],
    request: GenerationRequest,
    n: int,
    stream: bool,
    user: str | None,
) -> None:
    """What the log keeps of a generation request: the last user text as ``input``, details in meta."""
    info.input = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    info.meta.update(messages=list(messages), params=request.params.as_dict(), n=n, stream=stream)
    if user:
        info.meta["user"] = user  # OpenAI's end-user id, for per-user monitoring


def _account(info: RequestInfo, results: Sequence[GenerationResult], *, prompts: int) -> None:
    use = fmt.results_usage(results, prompts)
    info.prompt_tokens, info.completion_tokens = use["prompt_tokens"], use["completion_tokens"]
    info.output = results[0].text if len(results) == 1 else json.dumps([r.text for r in results], ensure_ascii=False)
    info.meta["finish_reason"] = [r.finish_reason for r in results] if len(results) > 1 else results[0].finish_reason
    # The model's own time (its batch's), so the monitor can tell queueing from generating.
    info.meta["generation_ms"] = round(max(r.latency_ms for r in results), 3)


async def _stream(
    state: ServerState, info: RequestInfo, stream: TextStream, kind: str, model: str, include_usage: bool
) -> StreamingResponse:
    """An SSE answer from ``stream``. Errors before the first piece are ordinary HTTP errors."""
    state.admit()
    try:
        first = await state.run(_next_piece, stream)
    except BaseException:
        state.release()
        await _shielded(state, stream.close)
        raise
    created = int(time.time())
    chunk = functools.partial(fmt.chat_chunk if kind == "chat" else fmt.text_chunk, info.id, model, created)

    def piece_chunk(text: str) -> dict[str, Any]:
        return chunk({"content": text}) if kind == "chat" else chunk(text)

    async def events() -> AsyncIterator[str]:
        finished = False
        try:
            if kind == "chat":
                yield fmt.sse(chunk({"role": "assistant", "content": ""}))
            piece = first
            while piece is not None:
                yield fmt.sse(piece_chunk(piece))
                piece = await state.run(_next_piece, stream)
            yield fmt.sse(chunk({} if kind == "chat" else "", stream.finish_reason))
            use = fmt.usage(stream.prompt_tokens, stream.completion_tokens)
            if include_usage:
                yield fmt.sse(chunk(None, None, use))
            yield fmt.SSE_DONE
            finished = True
        except LlmopsError as error:  # headers are gone: the error travels as an event, as OpenAI's does
            answer = from_llmops_error(error)
            info.error, info.status = answer.message, answer.status
            yield fmt.sse(answer.body())
            yield fmt.SSE_DONE
            finished = True
        finally:
            await _shielded(state, stream.close)
            state.release()
            if not finished:  # the client went away mid-stream; 499 as nginx logs it
                info.status, info.error = CLIENT_CLOSED, "the client closed the connection before the end"
            info.output = stream.text
            info.prompt_tokens, info.completion_tokens = stream.prompt_tokens, stream.completion_tokens
            info.meta["finish_reason"] = stream.finish_reason
            info.meta["incremental"] = stream.incremental

    return StreamingResponse(events(), media_type="text/event-stream", headers=_STREAM_HEADERS)


def _next_piece(stream: TextStream) -> str | None:
    return next(stream, None)


async def _shielded(state: ServerState, fn: Callable[[], Any]) -> None:
    """Run ``fn`` in a thread even while this task is being cancelled (client gone)."""
    import anyio

    with anyio.CancelScope(shield=True):
        await state.run(fn)


# --- chains ------------------------------------------------------------------------------------


@router.post("/v1/chains/{name}/invoke")
async def invoke_chain(name: str, body: ChainInvokeRequest, request: Request) -> JSONResponse:
    state, info = _state(request), _info(request)
    run = await _run_chain(state, info, name, body.inputs)
    summary = run_summary(run)
    payload = {
        "id": info.id,
        "object": "chain.run",
        "created": int(time.time()),
        "output": _json_safe(run.result),
        **summary,
        "usage": fmt.usage(info.prompt_tokens, info.completion_tokens),
    }
    return JSONResponse(payload)


async def _chat_with_chain(
    state: ServerState, info: RequestInfo, body: ChatCompletionRequest, chain: str, model: str
) -> JSONResponse | StreamingResponse:
    """A chain as a chat model: its one input is the last user message, its output the reply."""
    if body.n > 1:
        raise ApiError(400, "A chain answers once; n must be 1.", param="n")
    names = chain_inputs(state.config, chain)
    text = body.last_user_text()
    run = await _run_chain(state, info, chain, {names[0]: text} if names else {})
    result = GenerationResult(
        text=info.output or "",
        prompt_tokens=info.prompt_tokens,
        completion_tokens=info.completion_tokens,
        latency_ms=run.latency_ms,
        finish_reason="stop",
        model=model,
    )
    if body.stream:
        request = GenerationRequest(({"role": "user", "content": text},))
        return await _stream(state, info, TextStream(_Finished(result), request), "chat", model, body.include_usage)
    return JSONResponse(fmt.chat_completion(info.id, model, int(time.time()), [result]))


async def _run_chain(state: ServerState, info: RequestInfo, name: str, inputs: dict[str, Any]) -> Any:
    from llmops_cli.chains import ChainStepError

    check_chain(state.config, name)
    names = chain_inputs(state.config, name)
    info.meta["chain"] = name
    info.prompt = state.provenance.prompts(prompt_names(state.config, name))
    single = inputs.get(names[0]) if len(names) == 1 else None
    info.input = single if isinstance(single, str) else json.dumps(inputs, ensure_ascii=False, default=str)
    async with state.admitted_slot():
        try:
            run = await state.run(state.chains.run, name, inputs)
        except ChainStepError as error:
            info.meta["run"] = run_summary(error.run)
            raise chain_error(error) from error
        except LlmopsError as error:
            raise chain_error(error) from error
    info.meta["run"] = run_summary(run)
    tokens = run.tokens
    info.prompt_tokens, info.completion_tokens = tokens.get("prompt", 0), tokens.get("completion", 0)
    info.output = output_text(run.result)
    _chain_models(state, info, run)
    return run


def _chain_models(state: ServerState, info: RequestInfo, run: Any) -> None:
    """The models and adapters a chain run used, ``NAME@VERSION`` joined by commas."""
    models, adapters = [], []
    for step in run.steps:
        model, adapter = step.details.get("model"), step.details.get("adapter")
        if model and (versioned := state.provenance.model(model)) not in models:
            models.append(versioned)
        if adapter and (versioned := state.provenance.adapter(adapter)) not in adapters:
            adapters.append(versioned)
    info.model = ",".join(m for m in models if m) or None
    info.adapter = ",".join(a for a in adapters if a) or None


class _Finished:
    """A provider that already has its answer (a chain's output streamed like a model's)."""

    def __init__(self, result: GenerationResult) -> None:
        self.name = result.model
        self._result = result

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return [self._result for _ in requests]


# --- feedback ----------------------------------------------------------------------------------


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    """Score, label or comment on an earlier answer, by its request id."""
    state, info = _state(request), _info(request)
    body.check()
    info.meta["feedback_for"] = body.request_id
    from llmops_cli.monitor.store import StoreError

    try:
        known = await state.run(_known_request, state, body.request_id)
        if known:
            comment = state.redactor.text(body.comment) if state.redactor else body.comment
            add = functools.partial(state.store.add_feedback, body.request_id, score=body.score, label=body.label)
            feedback_id = await state.run(functools.partial(add, comment=comment))
    except StoreError as error:  # the store is down: say so now rather than hang or answer 500
        raise ApiError(
            503, f"Feedback cannot be recorded now: {error}", type="server_error", code="store_unavailable"
        ) from error
    if not known:
        raise ApiError(
            404, f"No request with id '{body.request_id}' was logged here.", type="not_found_error", code="not_found"
        )
    return {"id": feedback_id, "object": "feedback", "request_id": body.request_id, "created": int(time.time())}


def _known_request(state: ServerState, request_id: str) -> bool:
    state.store.flush(10)  # the request may still sit in the writer's queue (bounded: a broken store answers 503)
    return state.store.has_request(request_id)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
