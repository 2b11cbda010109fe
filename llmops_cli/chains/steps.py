"""What each kind of chain step does: prompt, retrieve, transform, call."""

from __future__ import annotations

import importlib
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from llmops_cli.chains import templating
from llmops_cli.config.chains import CallStep, ChainStep, PromptStep, RetrieveStep, TransformStep
from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.chains.engine import StepRecord
    from llmops_cli.chains.runtime import Runtime


def run_step(
    step: ChainStep,
    context: dict[str, Any],
    record: StepRecord,
    *,
    runtime: Runtime,
    allow_code: bool,
    where: str,
) -> None:
    if isinstance(step, PromptStep):
        _prompt(step, context, record, runtime, where)
    elif isinstance(step, RetrieveStep):
        _retrieve(step, context, record, runtime, where)
    elif isinstance(step, TransformStep):
        _transform(step, context, record, where)
    else:
        _call(step, context, record, runtime, allow_code, where)


def _prompt(step: PromptStep, context: dict[str, Any], record: StepRecord, runtime: Runtime, where: str) -> None:
    from llmops_cli.generation import GenerationRequest

    spec = runtime.prompt(step.prompt)
    if step.vars is not None:
        variables = {
            k: templating.render(str(v), context, where=f"step {where} vars.{k}") for k, v in step.vars.items()
        }
    else:  # pass the chain values whose names the prompt declares
        variables = {k: context[k] for k in spec.variables if k in context}
    messages = runtime.render_prompt(spec, variables)
    model = step.model or spec.model
    if not model:
        raise UsageError(f"step {where}: no model: set `model:` on the step or in prompt file {spec.file}")
    adapter = runtime.adapter_path(step.adapter) if step.adapter else None
    params = spec.params.merged(step.params)
    provider = runtime.provider(model, adapter)
    (result,) = provider.generate([GenerationRequest(tuple(messages), params)])
    record.inputs = {"variables": variables}
    record.value = result.text.strip()
    record.tokens = {"prompt": result.prompt_tokens, "completion": result.completion_tokens}
    record.details = {
        "model": model,
        "adapter": step.adapter if adapter else None,
        "adapter_path": str(adapter) if adapter else None,
        "messages": messages,
        "params": params.as_dict(),
        "finish_reason": result.finish_reason,
        "generation_ms": result.latency_ms,
    }
    if step.adapter and adapter is None:
        record.details["adapter_disabled"] = step.adapter


def _retrieve(step: RetrieveStep, context: dict[str, Any], record: StepRecord, runtime: Runtime, where: str) -> None:
    query = templating.render(step.query, context, where=f"step {where} query")
    chunks = runtime.retrieve(step.retrieve, query, step.top_k)
    record.inputs = {"query": query}
    record.value = "\n\n".join(chunk.text.strip() for chunk in chunks)
    record.details = {
        "chunks": [
            {"rank": i + 1, "score": round(float(c.score), 4), "source": c.source, "heading": c.heading, "text": c.text}
            for i, c in enumerate(chunks)
        ]
    }


def _transform(step: TransformStep, context: dict[str, Any], record: StepRecord, where: str) -> None:
    kind = step.transform
    text = templating.render(str(step.source), context, where=f"step {where} input")
    record.inputs = {"input": text}
    if kind == "template":
        record.value = text
    elif kind == "json_parse":
        record.value = _parse_json(text, where)
    elif kind == "regex_extract":
        pattern = step.pattern
        if not pattern:
            raise UsageError(f"step {where}: regex_extract needs `pattern:`")
        try:
            match = re.search(pattern, text)
        except re.error as exc:
            raise UsageError(f"step {where}: invalid pattern {pattern!r}: {exc}") from None
        group = step.group
        record.value = match.group(group) if match else None
        record.details = {"matched": match is not None}
    else:
        raise UsageError(f"step {where}: unknown transform '{kind}' (template, json_parse, regex_extract)")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # Models often wrap JSON in prose or a code fence: take the first {...} or [...] block.
    match = re.search(r"(\{.*\}|\[.*\])", text, flags=re.S)
    if match:
        try:
            return json.loads(match.group(1))
        except json.JSONDecodeError:
            pass
    raise UsageError(f"step {where}: json_parse found no valid JSON in {text[:80]!r}")


def _call(
    step: CallStep, context: dict[str, Any], record: StepRecord, runtime: Runtime, allow_code: bool, where: str
) -> None:
    target = step.call
    if not allow_code:
        raise UsageError(
            f"step {where} calls project code ({target}), which needs an explicit opt-in",
            hint="Rerun with --allow-code if you trust this project's Python code.",
        )
    module_name, _, func_name = target.partition(":")
    root = str(runtime.project_root)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"step {where}: cannot import '{module_name}' from {root}: {exc}") from None
    finally:
        if added:
            sys.path.remove(root)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UsageError(f"step {where}: '{module_name}' has no function '{func_name}'")
    args = {
        k: templating.render(v, context, where=f"step {where} args.{k}") if isinstance(v, str) else v
        for k, v in step.args.items()
    }
    record.inputs = {"args": args}
    record.value = func(dict(context), **args)
