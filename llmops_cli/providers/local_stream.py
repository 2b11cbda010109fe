"""Token streaming from a :class:`~llmops_cli.providers.local.LocalProvider` (``LocalProvider.stream``).

``model.generate`` runs in a worker thread with a ``TextIteratorStreamer``, alone (a batch of one)
under the model's lock, and the generator hands out the decoded text as it arrives, holding back the
last few characters while they could still turn into a stop string. Setting ``cancel`` stops the
generation at the next token; the generator's return value is the
:class:`~llmops_cli.generation.GenerationResult` with the exact token counts.
torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from llmops_cli.generation import GenerationParams, GenerationRequest, GenerationResult
from llmops_cli.providers.common import find_stop

if TYPE_CHECKING:
    from llmops_cli.providers.local import LocalProvider

STREAM_TIMEOUT_S = 600.0  # longest wait for the next piece (includes waiting for the model's lock)


def stream_local(
    provider: LocalProvider, request: GenerationRequest, cancel: threading.Event | None = None
) -> Generator[str, None, GenerationResult]:
    """Text pieces of ``request`` as ``provider``'s model produces them; returns the full result."""
    import torch
    from transformers import TextIteratorStreamer

    cancel = cancel if cancel is not None else threading.Event()
    tokenizer = provider.tokenizer()
    ids = provider.encode(request)  # cut as asked, or a UsageError when it does not fit the window
    encoded = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    params = request.params
    window = provider.window  # loaded by tokenizer() above
    if window is not None and len(ids) + params.max_new_tokens > window:
        params = params.merged({"max_new_tokens": window - len(ids)})
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TIMEOUT_S)
    outcome: dict[str, Any] = {}
    started = time.perf_counter()
    worker = threading.Thread(
        target=_generate, args=(provider, encoded, params, streamer, cancel, outcome), daemon=True
    )
    worker.start()
    held = HoldBackStops(params.stop)
    try:
        yield from held.pieces(streamer, cancel)
    finally:  # also when the consumer closes us early: stop the model before anything else
        cancel.set()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    completion, finish = _count(provider, outcome["output"][0, len(ids) :].tolist(), params, held.stopped_by_string)
    return GenerationResult(
        text=held.text,
        prompt_tokens=len(ids),
        completion_tokens=completion,
        latency_ms=(time.perf_counter() - started) * 1000,
        finish_reason=finish,
        model=provider.name,
    )


class HoldBackStops:
    """Text pieces from a streamer, never emitting a stop string or a prefix of one.

    The last few characters are held back while they could still turn into a stop string; once one
    appears, the text is cut before it and ``cancel`` (if given) is set to stop the model.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = stops
        self.text = ""  # everything handed out so far
        self.stopped_by_string = False

    def pieces(self, streamer: Iterable[str], cancel: threading.Event | None = None) -> Generator[str, None, None]:
        hold = max((len(s) for s in self.stops), default=1) - 1
        produced, emitted = "", 0
        for piece in streamer:
            produced += piece
            cut = find_stop(produced, self.stops)
            if cut is not None:
                self.stopped_by_string = True
                produced = produced[:cut]
                if cancel is not None:
                    cancel.set()
                break
            safe = len(produced) - hold
            if safe > emitted:
                self.text = produced[:safe]
                yield produced[emitted:safe]
                emitted = safe
        if len(produced) > emitted:
            self.text = produced
            yield produced[emitted:]


def _count(
    provider: LocalProvider, generated: list[int], params: GenerationParams, stopped_by_string: bool
) -> tuple[int, str]:
    """(completion tokens, finish reason) of the streamed row."""
    eos_ids = provider._loaded.eos_ids  # this module is LocalProvider's own streaming half
    end = next((i for i, token in enumerate(generated) if token in eos_ids), None)
    # Generation stops at the token that completes a stop string, so the count is exact.
    completion = len(generated) if end is None else end + 1
    at_length = end is None and completion >= params.max_new_tokens
    return completion, "length" if at_length and not stopped_by_string else "stop"


def _generate(
    provider: LocalProvider,
    encoded: Any,
    params: GenerationParams,
    streamer: Any,
    cancel: threading.Event,
    out: dict[str, Any],
) -> None:
    """Run ``generate`` with ``streamer`` under the model's lock (the worker thread's body)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from llmops_cli.providers.local import seeded_generate

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    loaded = provider._loaded  # this module is LocalProvider's own streaming half
    try:
        with loaded.lock, torch.inference_mode():
            model = loaded.model
            kwargs: dict[str, Any] = {
                **{k: v.to(model.device) for k, v in encoded.items()},
                "generation_config": provider._generation_config(params),
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([Cancelled()]),
            }
            if params.stop:
                kwargs["tokenizer"] = loaded.tokenizer  # transformers needs it for stop_strings
            out["output"] = seeded_generate(model, params, **kwargs)
    except BaseException as error:
        out["error"] = error
        streamer.end()  # wake the consumer; it re-raises the error
