"""Prompt files: parsing, strict sandboxed rendering, variable checks, few-shot turns, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.prompts import (
    coerce,
    find_dependents,
    load_prompt,
    parse_prompt,
    parse_prompt_text,
    render,
    to_prompt_text,
)
from llmops_cli.prompts.variables import CoercionError
from llmops_cli.validation import load_config
from tests.helpers import SAMPLE_PROJECT


def make(data: dict[str, Any], rows: list[dict[str, Any]] | None = None, name: str = "p") -> Any:
    files = {"ex.jsonl": "\n".join(json.dumps(r) for r in rows or [])}
    if rows is not None:
        data = {**data, "examples": "ex.jsonl"}
    return parse_prompt(data, name=name, file=f"prompts/{name}.yaml", read_text=files.get)


QA = {
    "system": "You answer in {{ style }} style.",
    "template": "Q: {{ question }}{% if n is defined %} (x{{ n }}){% endif %}",
    "variables": {
        "question": {"type": "string"},
        "style": {"type": "string", "required": False, "default": "short"},
        "n": {"type": "integer", "required": False},
    },
    "params": {"temperature": 0.2, "stop": "\n"},
}


# -- parsing -------------------------------------------------------------------------------------


def test_load_sample_prompt_is_typed() -> None:
    spec = load_prompt(load_config(SAMPLE_PROJECT), "answer")
    assert spec.name == "answer" and spec.file == "prompts/answer.yaml" and spec.model == "base"
    assert spec.variables["question"].needs_value
    assert not spec.variables["context"].needs_value and spec.variables["context"].default == ""
    assert spec.params.max_new_tokens == 96 and spec.params.stop == ("\n\n", "\nQuestion:", "\nContext:")
    assert spec.examples_file == "prompts/answer.examples.jsonl"
    assert len(spec.examples) == 3 and all("output" in row for row in spec.examples)


def test_examples_are_read_lazily() -> None:
    reads: list[str] = []

    def reader(path: str) -> str | None:
        reads.append(path)
        return json.dumps({"question": "q", "output": "a"})

    spec = parse_prompt({**QA, "examples": "ex.jsonl"}, name="p", file="p.yaml", read_text=reader)
    assert reads == []
    assert spec.examples == [{"question": "q", "output": "a"}]
    assert spec.examples == [{"question": "q", "output": "a"}] and reads == ["ex.jsonl"]


def test_invalid_prompt_reports_every_problem() -> None:
    text = "template: 'Hi {{ name'\nvariables: {name: {type: text}}\nsurprise: 1\n"
    with pytest.raises(ConfigError) as err:
        parse_prompt_text(text, name="bad", file="prompts/bad.yaml")
    problems = "\n".join(err.value.problems)
    assert "prompts/bad.yaml:3:1: surprise: unknown key" in problems
    assert "variables.name.type" in problems


def test_jinja_syntax_error_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_prompt_text("template: 'Hi {{ name'\n", name="bad", file="prompts/bad.yaml")
    assert "template: Jinja syntax error" in err.value.problems[0]


def test_bad_examples_file_names_the_line() -> None:
    spec = parse_prompt({**QA, "examples": "ex.jsonl"}, name="p", file="p.yaml", read_text=lambda _: '{"a": 1}\nnope\n')
    with pytest.raises(ConfigError) as err:
        _ = spec.examples
    assert err.value.problems[0].startswith("ex.jsonl:1:1: missing 'output'")
    assert err.value.problems[1].startswith("ex.jsonl:2:")


def test_variables_are_inferred_without_a_variables_section() -> None:
    spec = parse_prompt({"template": "{% for x in items %}{{ x }}{% endfor %} {{ who }}"}, name="p", file="p.yaml")
    assert not spec.variables_declared
    assert sorted(spec.variables) == ["items", "who"] and spec.variables["who"].needs_value


def test_unknown_prompt_suggests_a_name() -> None:
    with pytest.raises(UsageError, match="did you mean 'answer'"):
        load_prompt(load_config(SAMPLE_PROJECT), "anwser")


# -- rendering -----------------------------------------------------------------------------------


def test_render_system_first_with_defaults() -> None:
    messages = render(make(QA), {"question": "why?"})
    assert messages == [
        {"role": "system", "content": "You answer in short style."},
        {"role": "user", "content": "Q: why?"},
    ]


def test_render_coerces_cli_strings() -> None:
    messages = render(make(QA), {"question": "why?", "n": "3", "style": "long"})
    assert messages[-1]["content"] == "Q: why? (x3)"
    assert messages[0]["content"] == "You answer in long style."


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("3", "integer", 3),
        (4.0, "integer", 4),
        ("2.5", "number", 2.5),
        ("7", "number", 7),
        ("yes", "boolean", True),
        ("false", "boolean", False),
        ('["a", "b"]', "list", ["a", "b"]),
        ('{"k": 1}', "object", {"k": 1}),
        (5, "string", "5"),
        (True, "string", "true"),
    ],
)
def test_coerce(value: Any, type_: str, expected: Any) -> None:
    assert coerce(value, type_) == expected


@pytest.mark.parametrize(
    ("value", "type_"),
    [("three", "integer"), (True, "integer"), ("maybe", "boolean"), ("a,b", "list"), ([1], "string")],
)
def test_coerce_refuses(value: Any, type_: str) -> None:
    with pytest.raises(CoercionError):
        coerce(value, type_)


def test_type_error_names_prompt_and_variable() -> None:
    with pytest.raises(UsageError, match=r"prompt 'p': variable 'n': expected an integer, got string 'lots'"):
        render(make(QA), {"question": "q", "n": "lots"})


def test_missing_and_unknown_variables_list_the_declared_ones() -> None:
    with pytest.raises(UsageError, match=r"missing required variable 'question'; declared: question \(string, req"):
        render(make(QA), {})
    with pytest.raises(UsageError, match=r"unknown variable 'qestion'; declared: question"):
        render(make(QA), {"qestion": "x"})


def test_strict_undefined_names_prompt_variable_and_declared() -> None:
    spec = make(
        {"template": "{{ question }} {{ contxt }}", "variables": {"question": {}, "context": {"required": False}}}
    )
    with pytest.raises(UsageError) as err:
        render(spec, {"question": "q"})
    assert "prompt 'p' template: variable 'contxt' is undefined; declared variables: question, context" in str(
        err.value
    )


def test_optional_variable_without_default_stays_undefined() -> None:
    spec = make(
        {
            "template": "{{ question }}{{ context | default('') }}",
            "variables": {"question": {}, "context": {"required": False}},
        }
    )
    assert render(spec, {"question": "q"})[-1]["content"] == "q"


def test_sandbox_refuses_unsafe_templates() -> None:
    spec = make({"template": "{{ question.__class__.__mro__[1].__subclasses__() }}", "variables": {"question": {}}})
    with pytest.raises(UsageError, match="unsafe template operation refused"):
        render(spec, {"question": "q"})
    huge = make({"template": "{% for i in range(10**9) %}{% endfor %}", "variables": {}})
    with pytest.raises(UsageError, match="rendering failed: OverflowError"):
        render(huge, {})


def test_few_shot_examples_become_turns() -> None:
    rows = [{"question": "2+2?", "output": "4"}, {"question": "3+3?", "n": "2", "output": "6"}]
    spec = make(QA, rows)
    messages = render(spec, {"question": "1+1?"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "Q: 2+2?" and messages[2]["content"] == "4"
    assert messages[3]["content"] == "Q: 3+3? (x2)"
    assert messages[-1]["content"] == "Q: 1+1?"
    assert len(render(spec, {"question": "1+1?"}, include_examples=False)) == 2


def test_bad_example_row_names_the_row() -> None:
    with pytest.raises(UsageError, match=r"ex.jsonl row 1"):
        render(make(QA, [{"output": "no question"}]), {"question": "q"})


def test_messages_form_with_examples() -> None:
    data = {
        "messages": [
            {"role": "system", "content": "Be {{ tone }}."},
            {"role": "user", "content": "Translate: {{ text }}"},
        ],
        "variables": {"tone": {"default": "brief"}, "text": {}},
    }
    messages = render(make(data, [{"text": "chat", "output": "cat"}]), {"text": "chien"})
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate: chat"},
        {"role": "assistant", "content": "cat"},
        {"role": "user", "content": "Translate: chien"},
    ]


def test_to_prompt_text_plain_transcript() -> None:
    text = to_prompt_text([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "System: S\n\nUser: U\n\nAssistant:"


def test_to_prompt_text_uses_the_chat_template(tiny_tokenizer: Any) -> None:
    text = to_prompt_text([{"role": "user", "content": "hi"}], tiny_tokenizer)
    assert text == "<s>user\nhi</s>\n<s>assistant\n"


# -- dependents ----------------------------------------------------------------------------------


def test_dependents_of_sample_prompts() -> None:
    cfg = load_config(SAMPLE_PROJECT)
    deps = find_dependents(cfg.data, "answer")
    assert deps.chains == ("rag-answer",)
    assert set(deps.evals) == {"support-quality", "support-safety"} and deps.direct_evals == ("support-safety",)
    assert deps.adapters == ("support-lora",) and deps.packages == ("support-bot",)
    (step,) = deps.steps
    assert step.explicit_vars == ("question", "context") and step.available == ("question", "context")
    triage = find_dependents(cfg.data, "classify").steps[0]
    assert triage.explicit_vars is None and triage.passes("ticket") and not triage.passes("label")


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_list_and_show(cli: Any) -> None:
    result = cli("prompt", "list", "--json", cwd=SAMPLE_PROJECT)
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["classify"]["variables"] == [
        {
            "name": "ticket",
            "type": "string",
            "required": True,
            "description": "Text of the customer's ticket or chat message.",
        }
    ]
    assert rows["answer"]["model"] == "base"
    result = cli("prompt", "show", "answer", cwd=SAMPLE_PROJECT)
    assert result.exit_code == 0, result.output
    assert "question" in result.stdout and "max_new_tokens" in result.stdout
    assert "chains rag-answer" in result.stdout and "packages support-bot" in result.stdout


def test_cli_render(cli: Any, tmp_path: Path) -> None:
    vars_file = tmp_path / "v.json"
    vars_file.write_text(json.dumps({"question": "from file", "context": "C"}))
    result = cli("prompt", "render", "answer", "--vars", str(vars_file), "--var", "question=Why?", "--json",
                  "--no-examples", cwd=SAMPLE_PROJECT)  # fmt: skip
    assert result.exit_code == 0, result.output
    messages = json.loads(result.stdout)["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Question: Why?" in messages[1]["content"] and "Context:\nC" in messages[1]["content"]
    result = cli("prompt", "render", "classify", "--var", "ticket=refund please", cwd=SAMPLE_PROJECT)
    assert result.exit_code == 0 and "Ticket: refund please" in result.stdout
    result = cli("prompt", "render", "classify", "--var", "tikcet=x", cwd=SAMPLE_PROJECT)
    assert result.exit_code == 2 and "unknown variable 'tikcet'" in result.stderr


def test_cli_render_chat_template(cli: Any, project: Path, tiny_model_dir: Path) -> None:
    cfg = yaml.safe_load((project / "llmops.yaml").read_text())
    cfg["models"]["tiny"] = {"source": str(tiny_model_dir)}
    (project / "llmops.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = cli("prompt", "render", "answer", "--var", "question=hi", "--chat-template", "--model", "tiny",
                  cwd=project)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<s>system\nYou are a concise assistant.")
    assert "<s>user\nQuestion: Which command lists versioned artifacts?" in result.stdout  # a few-shot turn
    assert result.stdout.endswith(
        'Answer the question "hi" in one sentence, using the context above.</s>\n<s>assistant\n'
    )
