"""`llmops validate` checks what run time will check (issue 17 item 4), and steps are named one way."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_USAGE
from llmops_cli.validation import validate_project
from tests.helpers import SAMPLE_PROJECT, git


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
    return root


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _rename_question(root: Path) -> None:
    """prompts/answer.yaml: variable `question` becomes `query` (template, declaration, few-shot rows)."""
    prompt = root / "prompts" / "answer.yaml"
    _edit(prompt, "Question: {{ question }}", "Question: {{ query }}")
    _edit(prompt, "\n  question:\n", "\n  query:\n")
    _edit(root / "prompts" / "answer.examples.jsonl", '"question":', '"query":', count=3)


def _problems(root: Path) -> list[str]:
    return [str(p) for p in validate_project(root, env={}).problems]


def test_sample_copy_is_valid(sample: Path) -> None:
    assert _problems(sample) == []


def test_renamed_prompt_variable_fails_validate_naming_step_prompt_and_variable(sample: Path, cli: Any) -> None:
    _rename_question(sample)
    result = cli("validate", cwd=sample)
    assert result.exit_code == EXIT_USAGE, result.output
    out = " ".join(result.output.split())
    # the chain step (by number and id), the prompt and both variables, at the line of `vars:`
    line = next(i for i, text in enumerate((sample / "llmops.yaml").read_text().splitlines(), 1) if "vars:" in text)
    assert f"llmops.yaml:{line}:" in out
    assert (
        "chain 'rag-answer' step 2 (generate): prompt 'answer' (prompts/answer.yaml) requires variable 'query', "
        "which the step does not pass" in out
    )
    assert "has no variable 'question'; declared: query, context" in out
    # the eval suite that calls the prompt directly with the dataset's rows fails the same way
    assert "eval 'support-safety' targets prompt 'answer', which requires variable 'query'" in out
    assert "have no field 'query'" in out
    # --json carries the same problems
    data = cli("validate", "--json", cwd=sample)
    assert data.exit_code == EXIT_USAGE


def test_what_validate_reports_is_what_the_chain_run_refuses(sample: Path) -> None:
    """The same project, run past validation: the prompt step fails on exactly that variable."""
    import yaml

    from llmops_cli.chains import ChainRunner, ChainStepError
    from llmops_cli.chains.runtime import ProjectRuntime
    from llmops_cli.config.project import ProjectConfig

    _rename_question(sample)
    data = yaml.safe_load((sample / "llmops.yaml").read_text())
    cfg = ProjectConfig.from_dict(data, root=sample, path=sample / "llmops.yaml")

    class NoModels(ProjectRuntime):
        def retrieve(self, name: str, query: str, top_k: int | None) -> list[Any]:
            return []

        def adapter_path(self, name: str) -> Path | None:
            return None

    with pytest.raises(ChainStepError) as info:
        ChainRunner(cfg, runtime=NoModels(cfg), save_traces=False).run("rag-answer", {"question": "q"})
    message = info.value.message
    assert "step 2 (generate: prompt answer)" in message
    assert "unknown variable 'question'" in message or "missing required variable 'query'" in message


def test_reference_to_a_later_or_nonexistent_step_output(sample: Path) -> None:
    path = sample / "llmops.yaml"
    _edit(path, 'query: "{{ question }}"', 'query: "{{ question }} {{ answer }}"')
    _edit(path, 'input: "{{ raw_label | lower }}"', 'input: "{{ raw_lable | lower }}"')
    _edit(path, "      - id: extract\n", '      - id: extract\n        when: "labels_on and raw_label is defined"\n')
    problems = _problems(sample)
    text = "\n".join(problems)
    assert "chain 'rag-answer' step 1 (search) query reads 'answer', the output of step 2 (generate)" in text
    assert "has not run yet" in text
    assert (
        "chain 'triage' step 2 (extract) input reads 'raw_lable', which is neither a chain input nor an "
        "earlier step's output (did you mean 'raw_label'?)" in text
    )
    assert "chain 'triage' step 2 (extract) when reads 'labels_on'" in text
    assert not any("when reads 'raw_label'" in p for p in problems)  # `is defined` guards are fine
    assert any("llmops.yaml:" in p and ".steps[0].query:" in p for p in problems)


def test_chain_output_must_name_a_step_output(sample: Path) -> None:
    _edit(sample / "llmops.yaml", "    output: label\n", "    output: labels\n")
    assert any("chain 'triage' output 'labels' is no step's output" in p for p in _problems(sample))


def test_adapter_on_another_base_model(sample: Path) -> None:
    path = sample / "llmops.yaml"
    _edit(
        path,
        "  hosted:\n",
        "  qwen:\n    source: Qwen/Qwen2.5-0.5B-Instruct\n    description: Another model family.\n  hosted:\n",
    )
    _edit(
        path, "        model: base\n        adapter: support-lora", "        model: qwen\n        adapter: support-lora"
    )
    problems = _problems(sample)
    hits = [p for p in problems if "adapter" in p]
    assert len(hits) == 1, problems
    assert ".steps[1].adapter:" in hits[0]
    assert "chain 'rag-answer' step 2 (generate) applies adapter 'support-lora' on model 'qwen'" in hits[0]
    assert "trained on 'base' (smollm2-135m-instruct)" in hits[0]


def test_adapter_on_a_remote_model_and_on_the_same_weights(sample: Path) -> None:
    path = sample / "llmops.yaml"
    _edit(path, "  hosted:\n", "  base-copy:\n    source: smollm2-135m-instruct\n  hosted:\n")
    _edit(
        path,
        "        model: base\n        adapter: support-lora",
        "        model: base-copy\n        adapter: support-lora",
    )
    assert _problems(sample) == []  # another name for the same weights is fine
    _edit(path, "        model: base-copy\n", "        model: hosted\n")
    assert any("'hosted', a remote (openai) model" in p for p in _problems(sample))


def test_eval_target_needs_a_field_the_dataset_lacks(sample: Path) -> None:
    path = sample / "llmops.yaml"
    _edit(
        path,
        "  support-safety:\n",
        "  triage-check:\n    target: {chain: triage}\n    dataset: support-eval\n    metrics: [exact_match]\n"
        "  support-safety:\n",
    )
    problems = _problems(sample)
    hit = [p for p in problems if "triage-check" in p]
    assert len(hit) == 1 and ".target.chain:" in hit[0]
    assert "targets chain 'triage', which needs input 'ticket'" in hit[0]
    assert "dataset 'support-eval' (data/eval.jsonl) have no field 'ticket'" in hit[0]
    # mapping the column with `fields:` fixes it
    _edit(path, "    path: data/eval.jsonl\n", "    path: data/eval.jsonl\n    fields: {source: ticket}\n")
    assert not any("triage-check" in p for p in _problems(sample))


def test_literal_var_of_the_wrong_type(sample: Path) -> None:
    _edit(
        sample / "prompts" / "answer.yaml",
        "  context:\n",
        "  sentences:\n    type: integer\n    required: false\n    default: 3\n  context:\n",
    )
    _edit(sample / "llmops.yaml", '          context: "{{ context }}"\n', '          context: "{{ context }}"\n'
          '          sentences: "three"\n')  # fmt: skip
    problems = _problems(sample)
    assert any(".vars.sentences:" in p and "variable 'sentences': expected an integer" in p for p in problems), problems


# -- one step-numbering convention (issue 17 item 5) -----------------------------------------------


def test_steps_are_numbered_from_one_with_their_id_everywhere(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_cli.chains.analysis import StepUse, step_id
    from llmops_cli.cli import chain as chain_cli
    from llmops_cli.prompts import find_dependents

    # validate: YAML path steps[1] (0-based, it is a path) plus "step 2 (generate)"
    _rename_question(sample)
    assert any("steps[1].vars" in p and "step 2 (generate)" in p for p in _problems(sample))
    # prompt diff / prompt show: the same label
    import yaml

    data = yaml.safe_load((sample / "llmops.yaml").read_text())
    (use,) = find_dependents(data, "answer").steps
    assert isinstance(use, StepUse) and use.label == "chain 'rag-answer' step 2 (generate)"
    assert use.as_dict()["step"] == 2
    # a step without an id is KIND-N, N 1-based
    assert step_id({"prompt": "x"}, 1) == "prompt-2"

    # the chain trace table
    from llmops_cli.chains.engine import ChainRun, StepRecord

    run = ChainRun("rag-answer", "r1", "now", {"question": "q"})
    run.steps = [
        StepRecord(0, "search", "retrieve", "kb", "context"),
        StepRecord(1, "generate", "prompt", "answer", "answer"),
    ]
    printed: list[list[Any]] = []
    monkeypatch.setattr(chain_cli.output, "table", lambda title, columns, rows: printed.extend(rows))
    chain_cli._print_trace(run)
    assert [row[0] for row in printed] == ["1 (search)", "2 (generate)"]


def test_prompt_diff_names_steps_the_same_way(sample: Path, cli: Any) -> None:
    git(sample, "init", "-q", "-b", "main")
    git(sample, "add", "-A")
    git(sample, "commit", "-qm", "sample")
    _rename_question(sample)
    result = cli("prompt", "diff", "answer", "--format", "markdown", cwd=sample)
    out = " ".join(result.output.split())
    assert "chain 'rag-answer' step 2 (generate)" in out
    assert "step 1 (" not in out.replace("step 1 (search)", "")


# -- plurals (issue 17 item 5) -----------------------------------------------------------------------


def test_plural_helper() -> None:
    from llmops_cli.cli.output import plural

    assert [plural(n, "model") for n in (0, 1, 2)] == ["0 models", "1 model", "2 models"]
    assert plural(1, "eval suite") == "1 eval suite" and plural(3, "entry", "entries") == "3 entries"


def test_validate_summary_says_1_model_not_1_models(project: Path, cli: Any) -> None:
    result = cli("validate", cwd=project)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "(1 model, 1 prompt, 3 datasets, 2 chains, 1 adapter, 2 eval suites)" in out
    assert "1 models" not in out and "1 prompts" not in out


def test_eval_markdown_summary_plurals() -> None:
    from llmops_cli.evals.reports.markdown import _suite_section
    from llmops_cli.evals.results import CaseResult, SuiteResult

    result = SuiteResult(
        "s", {"prompt": "p"}, "d", "sha256:0", cases=[CaseResult(case_id="a", inputs={}, prediction="x", error="boom")]
    )
    text = "\n".join(_suite_section(result, heading=True))
    assert "1 case (1 error, 0 from cache)" in text and "❌" in text  # an errored run is not shown as passed
