"""Remembered results of pure checks (llmops_cli/memo.py): the schema check and Jinja parses."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmops_cli.memo import Memo, canonical


def test_canonical_spells_only_what_json_spells_exactly() -> None:
    assert canonical({"b": [1, 2.5, True, None], "a": ["x"]}) == '{"a":["x"],"b":[1,2.5,true,null]}'
    assert canonical({"b": 1, "a": 2}, ordered=True) == '{"b":1,"a":2}'
    assert canonical({"a": 1}) != canonical({"a": 1.0}) != canonical({"a": True})
    for value in ({1: "x"}, {"d": datetime.date(2024, 1, 1)}, [float("nan")], {"s": {1, 2}}, b"x", ("t",)):
        assert canonical(value) is None


def test_a_memo_persists_and_its_key_follows_code_and_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    code = tmp_path / "check.py"
    code.write_text("v1")
    memo = Memo("t", code=[str(code)])
    key = memo.key({"doc": 1})
    memo.put(key, True)
    assert Memo("t", code=[str(code)]).get(key) is True  # another process reads it back
    assert memo.key({"doc": 2}) != key
    assert memo.key({1: "x"}) is None and memo.get(None) is None
    code.write_text("v2 and longer")  # edited code: another stamp, another key
    assert Memo("t", code=[str(code)]).key({"doc": 1}) != key
    assert Memo("t", code=[str(code)], libraries=["json"]).key({"doc": 1}) != key


def test_a_corrupt_or_unwritable_memo_is_only_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    memo = Memo("t", code=[])
    memo.path().parent.mkdir(parents=True)
    memo.path().write_text("{not json")
    key = memo.key("x")
    assert memo.get(key) is None
    memo.put(key, True)
    assert json.loads(memo.path().read_text()) == {key: True}
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("LLMOPS_HOME", str(blocked / "under-a-file"))
    other = Memo("t", code=[])
    other.put(other.key("y"), True)  # cannot be written: no error
    assert other.get(other.key("y")) is True  # still known to this process


def _run(code: str, home: Path, cwd: Path) -> list[str]:
    env = {**os.environ, "LLMOPS_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         cwd=cwd, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()


VALIDATE = """
    import sys
    from pathlib import Path
    from llmops_cli.validation import validate_project
    result = validate_project(Path("."), env={})
    print([str(p) for p in result.problems])
    print("jsonschema" in sys.modules, "jinja2" in sys.modules)
"""

PROMPT = """\
template: |
  Answer {{ question }}{% if context %} using {{ context }}{% endif %}
variables:
  question: {type: string}
  context: {type: string, required: false}
"""


def _project(root: Path, *, prompt: str = PROMPT, extra: str = "") -> None:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "prompts" / "answer.yaml").write_text(prompt)
    (root / "llmops.yaml").write_text(
        "name: memo\nversion: 1\nmodels:\n  m: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: x}\n"
        "prompts:\n  answer: {file: prompts/answer.yaml}\n"
        "chains:\n  qa:\n    inputs: [q]\n    steps:\n      - prompt: answer\n        model: m\n"
        "        vars: {question: '{{ q }}'}\n" + extra
    )


def test_a_valid_project_validates_again_without_jsonschema_or_jinja(tmp_path: Path) -> None:
    _project(tmp_path / "p")
    home = tmp_path / "home"
    first = _run(VALIDATE, home, tmp_path / "p")
    assert first == ["[]", "True True"]
    assert _run(VALIDATE, home, tmp_path / "p") == ["[]", "False False"]


def test_problems_are_found_every_time_and_after_a_valid_version(tmp_path: Path) -> None:
    root, home = tmp_path / "p", tmp_path / "home"
    _project(root)
    assert _run(VALIDATE, home, root)[0] == "[]"
    _project(root, extra="surprise: 1\n", prompt=PROMPT.replace("{% endif %}", ""))  # both now broken
    runs = [_run(VALIDATE, home, root) for _ in range(2)]
    assert runs[0] == runs[1]
    assert "unknown key 'surprise'" in runs[0][0]
    assert "prompts/answer.yaml:1:11: template: Jinja syntax error" in runs[0][0]
    _project(root)  # fixed again: the remembered answers hold
    assert _run(VALIDATE, home, root) == ["[]", "False False"]


def test_remembered_step_variables_are_the_computed_ones(tmp_path: Path) -> None:
    root, home = tmp_path / "p", tmp_path / "home"
    _project(root)
    code = """
        from llmops_cli.chains import analysis
        print(sorted(analysis._names("{{ a }} {% if b is defined %}{{ b }}{% endif %} {{ c.d }}")))
        print(sorted(analysis._names("x > 1 and y", expression=True)), sorted(analysis._names("{{ broken")))
    """
    assert _run(code, home, root) == _run(code, home, root) == ["['a', 'c']", "['x', 'y'] []"]


def test_the_bundle_yaml_is_the_dump_of_its_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from llmops_cli.package import generated

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(generated, "_DUMPED", Memo("bundle-yaml", code=[], ordered=True))

    class Plan:
        name = "p"
        config = type("C", (), {"name": "proj"})()
        bundle_config: dict[str, object] = {"b": [1, {"x": "é"}], "a": "text " * 30}

    plan = Plan()
    first = generated.llmops_yaml(plan)  # type: ignore[arg-type]
    assert first == generated.llmops_yaml(plan)  # type: ignore[arg-type]
    body = first.decode().split("\n", 2)[2]
    assert body == yaml.safe_dump(plan.bundle_config, sort_keys=False, allow_unicode=True, width=100)
    plan.bundle_config = {"a": "text " * 30, "b": [1, {"x": "é"}]}  # same content, other order
    assert generated.llmops_yaml(plan).decode().split("\n", 2)[2].startswith("a: ")  # type: ignore[arg-type]
