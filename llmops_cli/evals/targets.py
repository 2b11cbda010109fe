"""What an eval suite runs, one class per target kind: a chain, a prompt, a bare (or quantized)
model, or a deployed endpoint. Each runs one case exactly as ``llmops chain run`` would."""

from __future__ import annotations

import json
from typing import Any

from llmops_cli.config import ProjectConfig
from llmops_cli.config.evals import EvalTarget
from llmops_cli.errors import UsageError
from llmops_cli.evals.cases import EvalCase
from llmops_cli.evals.runtime import CaseOutput, EvalRuntime
from llmops_cli.generation import GenerationRequest, GenerationResult, Provider

ENDPOINT_KEY_ENV = "LLMOPS_API_KEY"


class Target:
    """Runs one case; subclasses know a chain, a prompt, a model or an endpoint."""

    workers: int | None = None  # cases run at once (default: the batch size)

    def __init__(self, runtime: EvalRuntime, spec: EvalTarget) -> None:
        self.runtime = runtime
        self.target = spec

    def run(self, case: EvalCase) -> CaseOutput:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        out = self.target.as_dict()
        if self.runtime.options.override is not None:
            out["override"] = self.runtime.options.override.label
        return out


class ChainTarget(Target):
    def __init__(self, runtime: EvalRuntime, spec: EvalTarget, chain: str) -> None:
        super().__init__(runtime, spec)
        from llmops_cli.chains import ChainRunner

        self.chain = chain
        self.runner = ChainRunner(
            runtime.config, runtime=runtime, allow_code=runtime.options.allow_code, save_traces=False
        )
        self.inputs = list(runtime.config.chains[chain].inputs)

    def run(self, case: EvalCase) -> CaseOutput:
        inputs = (
            {k: case.variables[k] for k in self.inputs if k in case.variables} if self.inputs else dict(case.variables)
        )
        run = self.runner.run(self.chain, inputs)
        latency = 0.0
        sources: list[str] = []
        for step in run.steps:
            if step.kind == "prompt":
                latency += float(step.details.get("generation_ms") or 0.0)  # the model's time, batch or cache
            elif not step.skipped:
                latency += step.latency_ms
            for chunk in step.details.get("chunks", []) if step.kind == "retrieve" else []:
                sources.append(str(chunk.get("source")))
        return CaseOutput(run.result, latency, run.tokens, details={"sources": sources} if sources else {})


class PromptTarget(Target):
    def __init__(self, runtime: EvalRuntime, spec: EvalTarget) -> None:
        super().__init__(runtime, spec)
        self.spec = runtime.prompt(str(spec.prompt))
        self.model = spec.model or self.spec.model
        if not self.model:
            raise UsageError(f"eval target prompt '{spec.prompt}' has no model", hint="Set target.model in the suite.")
        self.adapter = runtime.adapter_path(spec.adapter) if spec.adapter else None

    def run(self, case: EvalCase) -> CaseOutput:
        variables = {k: case.variables[k] for k in self.spec.variables if k in case.variables}
        messages = self.runtime.render_prompt(self.spec, variables)
        provider = self.runtime.provider(self.model, self.adapter)
        (result,) = provider.generate([GenerationRequest(tuple(messages), self.spec.params)])
        return _generation_output(result)


class ModelTarget(Target):
    """A bare model (or quantized model, or endpoint): the case's conversation, no prompt file."""

    def __init__(self, runtime: EvalRuntime, spec: EvalTarget, provider: Provider | None = None) -> None:
        super().__init__(runtime, spec)
        self.model = spec.model or spec.quantized
        self.adapter = runtime.adapter_path(spec.adapter) if spec.adapter else None
        self.fixed = provider

    def run(self, case: EvalCase) -> CaseOutput:
        from llmops_cli.generation import GenerationParams

        provider = self.fixed or self.runtime.provider(str(self.model), self.adapter)
        messages = self.runtime.with_canary(list(case.messages))
        (result,) = provider.generate([GenerationRequest(tuple(messages), GenerationParams())])
        return _generation_output(result)


def _generation_output(result: GenerationResult) -> CaseOutput:
    tokens = {"prompt": result.prompt_tokens, "completion": result.completion_tokens}
    return CaseOutput(result.text.strip(), result.latency_ms, tokens)


ENDPOINT_TIMEOUT_S = 60.0
ENDPOINT_CONCURRENCY = 4


def _endpoint_provider(url: str, *, timeout_s: float = ENDPOINT_TIMEOUT_S) -> Provider:
    """An OpenAI-compatible client for a deployed endpoint (``http://host:port``, with or without /v1).

    ``timeout_s`` bounds each connect and read of one request (the target's ``timeout_s:``)."""
    import urllib.request

    from llmops_cli.providers import OpenAIProvider

    base = url.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    model = "default"
    try:  # the first model the server lists; servers that do not list models take "default"
        request = urllib.request.Request(base + "/models")
        import os

        if os.environ.get(ENDPOINT_KEY_ENV):
            request.add_header("Authorization", f"Bearer {os.environ[ENDPOINT_KEY_ENV]}")
        with urllib.request.urlopen(request, timeout=min(10.0, timeout_s)) as response:  # noqa: S310 - user's URL
            listed = json.loads(response.read().decode("utf-8")).get("data") or []
            model = str(listed[0]["id"]) if listed else model
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return OpenAIProvider(
        name=url, base_url=base, model=model, api_key_env=ENDPOINT_KEY_ENV, timeout_s=timeout_s, max_concurrency=1
    )


def build_target(runtime: EvalRuntime, spec: EvalTarget) -> Target:
    if spec.chain is not None:
        return ChainTarget(runtime, spec, spec.chain)
    if spec.prompt is not None:
        return PromptTarget(runtime, spec)
    if spec.endpoint is not None:
        runtime.cache = None  # what runs behind a URL can change without us knowing: never cached
        timeout_s = spec.timeout_s if spec.timeout_s is not None else ENDPOINT_TIMEOUT_S
        target = ModelTarget(runtime, spec, provider=_endpoint_provider(spec.endpoint, timeout_s=timeout_s))
        # Each eval worker holds one request at a time: `concurrency` workers = that many requests in flight.
        target.workers = max(1, spec.concurrency if spec.concurrency is not None else ENDPOINT_CONCURRENCY)
        return target
    if spec.model is not None or spec.quantized is not None:
        return ModelTarget(runtime, spec)
    raise UsageError(f"eval target {spec.as_dict()!r} names none of chain, prompt, model, quantized, endpoint")


def target_for_name(config: ProjectConfig, name: str) -> EvalTarget:
    """A target from a bare name (pairwise `against:`): a chain, prompt, model or quantized entry."""
    for section, key in ((config.chains, "chain"), (config.prompts, "prompt"), (config.models, "model")):
        if name in section:
            return EvalTarget.from_dict({key: name})
    if name in config.quantized:
        return EvalTarget.from_dict({"quantized": name})
    raise UsageError(
        f"'{name}' is not a chain, prompt, model or quantized entry", hint="Check `against:` in the suite."
    )
