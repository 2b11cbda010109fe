"""The JSON Schemas for llmops.yaml and prompt files: well-formed, documented, and strict."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_FILES = ["llmops.schema.json", "prompt.schema.json"]

VALID_PROJECT = """
version: 1
name: demo-project
description: A project that uses every section.
storage:
  remote: /tmp/llmops-remote
  threshold: 1MB
  artifacts_dir: artifacts
models:
  base:
    source: smollm2-135m-instruct
    dtype: auto
  hosted:
    provider: openai
    base_url: http://localhost:1/v1
    model: m
    api_key_env: OPENAI_API_KEY
    timeout_s: 30
prompts:
  qa:
    file: prompts/qa.yaml
    description: Answers a question from context.
datasets:
  docs: {path: data/docs, format: documents}
  qa-set: {path: data/qa.jsonl, format: qa, file_format: jsonl}
  train:
    path: data/train.csv
    format: instruction
    fields: {prompt: instruction, response: output}
retrievers:
  docs:
    dataset: docs
    chunk: {size: 500, overlap: 50}
    top_k: 3
    store: {type: persistent, path: .llmops/chroma}
chains:
  rag:
    description: Retrieve, then answer.
    inputs: [question]
    steps:
      - id: context
        retrieve: docs
        query: "{{ question }}"
        top_k: 2
      - id: answer
        prompt: qa
        model: base
        when: "context | length > 0"
        params: {temperature: 0, max_new_tokens: 64, stop: ["\\n\\n"]}
        vars: {context: "{{ context }}", question: "{{ question }}"}
    output: answer
adapters:
  support:
    base: base
    dataset: train
    method: qlora
    lora: {r: 8, alpha: 16, dropout: 0.05, target_modules: all-linear, bias: none}
    quantization: {bits: 4, quant_type: nf4, double_quant: true, compute_dtype: bfloat16}
    training:
      epochs: 1
      max_steps: 10
      learning_rate: 2.0e-4
      batch_size: 2
      eval_split: 0.1
      lr_scheduler: cosine
      precision: auto
    launcher: {type: single}
evals:
  smoke:
    target: {chain: rag}
    dataset: qa-set
    metrics:
      - rougeL
      - latency_ms
      - {type: contains, pattern: Paris, name: mentions_paris}
      - {type: json_schema, schema: {type: object}}
    thresholds:
      rougeL: ">= 0.2"
      latency_ms.p95: "<= 2000"
    repeat: 2
    judge: {model: hosted, rubric: "Is the answer correct?"}
    adversarial:
      injection: true
      leakage: {canary: CANARY-123}
      fuzz: [case, typos]
  prompt-only:
    target: {prompt: qa, model: base, adapter: support}
    dataset: qa-set
    metrics: [exact_match]
quantized:
  base-4bit:
    model: base
    bits: 4
    check_with: smoke
    max_quality_drop: 0.05
packages:
  rag-pkg:
    chain: rag
    model: base-4bit
    prompts: [qa]
    retrievers: [docs]
    include: ["data/extra/*.json"]
deployments:
  dev: {target: local, package: rag-pkg, port: 8000}
  prod:
    target: kubernetes
    package: rag-pkg
    replicas: 2
    namespace: llmops
    image: registry.example.com/rag:1.0
    resources: {cpu: 2, memory: 4Gi, gpu: 1}
    runtime: llmops
monitor:
  reference: qa-set
  window: 24h
  drift: [length, oov, embedding]
  sample_rate: 0.5
  continuous_eval: {suite: smoke, sample: 20, every: 1h}
  alerts:
    drift.embedding: "> 0.3"
    latency_ms.p95: "> 2000"
  webhook: http://localhost:9/hook
"""

VALID_PROMPT = """
description: Answer a question from retrieved context.
model: base
system: You answer briefly.
template: |
  Context: {{ context }}
  Question: {{ question }}
variables:
  question: {type: string, description: The user's question.}
  context: {type: string, required: false, default: ""}
params: {temperature: 0.2, max_new_tokens: 128, top_p: 0.9, stop: "###"}
examples: prompts/qa.examples.jsonl
"""


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8"))


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def errors_of(name: str, document: Any) -> list[jsonschema.ValidationError]:
    return list(validator(name).iter_errors(document))


def describe(errors: list[jsonschema.ValidationError]) -> str:
    return "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def project() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(VALID_PROJECT))


# --- walking schemas ---------------------------------------------------------------------------

_SCHEMA_MAPS = ("properties", "$defs", "patternProperties", "dependentSchemas")
_SCHEMA_ONE = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


def walk(schema: Any, path: str = "#"):
    """Yield (keyword, property name, subschema, path) for every subschema under a schema mapping."""
    if not isinstance(schema, dict):
        return
    for keyword in _SCHEMA_MAPS:
        for key, sub in (schema.get(keyword) or {}).items():
            sub_path = f"{path}/{keyword}/{key}"
            yield keyword, key, sub, sub_path
            yield from walk(sub, sub_path)
    for keyword in _SCHEMA_ONE:
        if isinstance(schema.get(keyword), dict):
            yield from walk(schema[keyword], f"{path}/{keyword}")
    for keyword in _SCHEMA_LISTS:
        for i, sub in enumerate(schema.get(keyword) or []):
            yield from walk(sub, f"{path}/{keyword}/{i}")


# --- the schemas themselves --------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_is_valid_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(name)
    assert schema.get("title") and schema.get("description")
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_property_has_a_description(name):
    schema = load_schema(name)
    missing = [
        path
        for keyword, _key, sub, path in walk(schema)
        if keyword == "properties"
        and not (isinstance(sub, dict) and isinstance(sub.get("description"), str) and sub["description"].strip())
    ]
    assert not missing, "properties without a description:\n" + "\n".join(missing)
    assert any(keyword == "properties" for keyword, *_ in walk(schema))


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_def_has_a_description(name):
    schema = load_schema(name)
    missing = [
        path
        for keyword, _key, sub, path in walk(schema)
        if keyword == "$defs" and not (isinstance(sub, dict) and str(sub.get("description", "")).strip())
    ]
    assert not missing, "$defs without a description:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_fixed_key_objects_are_closed(name):
    """Every schema that lists `properties` (other than if-conditions) rejects unknown keys."""
    schema = load_schema(name)
    open_objects = []

    def visit(node: Any, path: str, in_condition: bool) -> None:
        if not isinstance(node, dict):
            return
        if "properties" in node and not in_condition and "additionalProperties" not in node:
            open_objects.append(path)
        for keyword in _SCHEMA_MAPS:
            for key, sub in (node.get(keyword) or {}).items():
                visit(sub, f"{path}/{keyword}/{key}", in_condition)
        for keyword in _SCHEMA_ONE:
            visit(node.get(keyword), f"{path}/{keyword}", in_condition or keyword in ("if", "not"))
        for keyword in _SCHEMA_LISTS:
            for i, sub in enumerate(node.get(keyword) or []):
                visit(sub, f"{path}/{keyword}/{i}", in_condition)

    visit(schema, "#", False)
    assert not open_objects, "objects without additionalProperties:\n" + "\n".join(open_objects)


# --- llmops.yaml --------------------------------------------------------------------------------


def test_valid_project_passes():
    errors = errors_of("llmops.schema.json", project())
    assert not errors, describe(errors)


def _set_unknown_top(doc):
    doc["bogus"] = 1


def _set_unknown_model(doc):
    doc["models"]["base"]["bogus"] = 1


def _set_unknown_remote_model(doc):
    doc["models"]["hosted"]["bogus"] = 1


def _set_unknown_step(doc):
    doc["chains"]["rag"]["steps"][1]["bogus"] = 1


def _set_unknown_training(doc):
    doc["adapters"]["support"]["training"]["bogus"] = 1


def _set_unknown_eval_target(doc):
    doc["evals"]["smoke"]["target"]["bogus"] = 1


@pytest.mark.parametrize(
    "mutate",
    [
        _set_unknown_top,
        _set_unknown_model,
        _set_unknown_remote_model,
        _set_unknown_step,
        _set_unknown_training,
        _set_unknown_eval_target,
    ],
)
def test_unknown_keys_are_reported(mutate):
    doc = project()
    mutate(doc)
    errors = errors_of("llmops.schema.json", doc)
    closed = [e for e in errors if e.validator in ("additionalProperties", "unevaluatedProperties")]
    assert closed, "no unknown-key error among:\n" + describe(errors)
    assert any("bogus" in e.message for e in closed)


def test_model_cannot_mix_source_and_provider():
    doc = project()
    doc["models"]["mixed"] = {
        "source": "smollm2-135m-instruct",
        "provider": "openai",
        "base_url": "http://localhost:1/v1",
        "model": "m",
    }
    errors = errors_of("llmops.schema.json", doc)
    assert errors
    assert any("source" in e.message for e in errors), describe(errors)


def test_model_needs_source_or_provider():
    doc = project()
    doc["models"]["empty"] = {"dtype": "auto"}
    errors = errors_of("llmops.schema.json", doc)
    assert any(e.validator == "required" and "source" in e.message for e in errors), describe(errors)


def test_remote_model_requires_base_url_and_model():
    doc = project()
    doc["models"]["hosted"] = {"provider": "openai"}
    messages = describe(errors_of("llmops.schema.json", doc))
    assert "base_url" in messages and "'model'" in messages


def test_step_with_two_kinds_is_rejected():
    doc = project()
    doc["chains"]["rag"]["steps"][1]["retrieve"] = "docs"
    errors = errors_of("llmops.schema.json", doc)
    assert errors
    assert any(e.validator == "oneOf" for e in errors), describe(errors)


def test_step_without_kind_is_rejected():
    doc = project()
    doc["chains"]["rag"]["steps"].append({"id": "nothing"})
    assert errors_of("llmops.schema.json", doc)


def test_chain_needs_steps():
    doc = project()
    doc["chains"]["rag"]["steps"] = []
    assert errors_of("llmops.schema.json", doc)


def test_other_step_kinds_validate():
    doc = project()
    doc["chains"]["rag"]["steps"] += [
        {
            "id": "clean",
            "transform": "regex_extract",
            "input": "{{ answer }}",
            "pattern": "A: (.*)",
            "group": 1,
        },
        {"id": "shaped", "transform": "template", "template": "{{ clean | upper }}"},
        {"id": "post", "call": "myproject.steps:postprocess", "args": {"limit": 3}},
    ]
    errors = errors_of("llmops.schema.json", doc)
    assert not errors, describe(errors)
    doc["chains"]["rag"]["steps"][-1]["call"] = "not a function"
    assert errors_of("llmops.schema.json", doc)


@pytest.mark.parametrize("value", [">= abc", "0.3", "=> 0.3", ">=", "~ 1"])
def test_bad_threshold_is_rejected(value):
    doc = project()
    doc["evals"]["smoke"]["thresholds"]["rougeL"] = value
    assert errors_of("llmops.schema.json", doc)
    doc = project()
    doc["monitor"]["alerts"]["error_rate"] = value
    assert errors_of("llmops.schema.json", doc)


@pytest.mark.parametrize("value", [">= 0.3", "<=1500", " == 1 ", "> -2", "< 1e-3"])
def test_good_threshold_is_accepted(value):
    doc = project()
    doc["evals"]["smoke"]["thresholds"]["rougeL"] = value
    errors = errors_of("llmops.schema.json", doc)
    assert not errors, describe(errors)


def test_eval_target_needs_exactly_one_kind():
    doc = project()
    doc["evals"]["smoke"]["target"] = {"chain": "rag", "quantized": "base-4bit"}
    assert errors_of("llmops.schema.json", doc)
    doc["evals"]["smoke"]["target"] = {}
    assert errors_of("llmops.schema.json", doc)
    doc["evals"]["smoke"]["target"] = {"model": "base", "adapter": "support"}
    assert not errors_of("llmops.schema.json", doc)


def test_package_needs_chain_or_model():
    doc = project()
    doc["packages"]["rag-pkg"] = {"prompts": ["qa"]}
    assert errors_of("llmops.schema.json", doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), 2),
        (("name",), "Bad Name"),
        (("deployments", "dev", "port"), 70000),
        (("adapters", "support", "lora", "dropout"), 1.5),
        (("adapters", "support", "training", "eval_split"), 0.6),
        (("monitor", "sample_rate"), 2),
        (("storage", "threshold"), "lots"),
        (("models", "base", "dtype"), "int3"),
    ],
)
def test_out_of_range_values_are_rejected(path, value):
    doc = project()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert errors_of("llmops.schema.json", doc)


def test_bad_entry_name_is_rejected():
    doc = project()
    doc["models"]["-bad name"] = {"source": "smollm2-135m-instruct"}
    assert errors_of("llmops.schema.json", doc)


# --- prompt files ------------------------------------------------------------------------------


def test_valid_prompt_passes():
    errors = errors_of("prompt.schema.json", yaml.safe_load(VALID_PROMPT))
    assert not errors, describe(errors)


def test_messages_prompt_passes():
    doc = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "{{ question }}"},
        ],
        "variables": {"question": {}},
    }
    errors = errors_of("prompt.schema.json", doc)
    assert not errors, describe(errors)


def test_prompt_needs_template_or_messages():
    doc = yaml.safe_load(VALID_PROMPT)
    del doc["template"]
    errors = errors_of("prompt.schema.json", doc)
    assert errors
    doc["template"] = "x"
    doc["messages"] = [{"role": "user", "content": "y"}]
    assert errors_of("prompt.schema.json", doc)


def test_prompt_rejects_unknown_keys_and_bad_params():
    doc = yaml.safe_load(VALID_PROMPT)
    doc["bogus"] = 1
    errors = errors_of("prompt.schema.json", doc)
    assert any(e.validator == "additionalProperties" for e in errors), describe(errors)
    doc = yaml.safe_load(VALID_PROMPT)
    doc["params"]["top_p"] = 1.5
    assert errors_of("prompt.schema.json", doc)
    doc = yaml.safe_load(VALID_PROMPT)
    doc["params"]["temprature"] = 0.5
    assert errors_of("prompt.schema.json", doc)
