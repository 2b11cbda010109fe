"""The pydantic-free parameter coercion (llmops_cli/cli/coercion.py) gives what typer's gives."""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer import _coercion
from typer._click.exceptions import BadParameter
from typer.core import _TyperParameter

from llmops_cli.cli import coercion
from llmops_cli.cli.app import app

SAMPLES: dict[str, list[Any]] = {
    "str": ["x", "", "a b", "ünï"],
    "int": ["0", "3", "-2", "007", " 5", "abc", "1.5", "99999", 4],
    "float": ["0", "0.5", "-1.25", "1e3", "abc", 2, 0.1],
    "bool": [True, False, "true", "0", "maybe"],
    "path": ["a", "./b/c", "/tmp", "-", "", Path("p"), b"x"],
}


def _params() -> list[tuple[str, _TyperParameter]]:
    found: list[tuple[str, _TyperParameter]] = []

    def walk(command: Any, prefix: str) -> None:
        for param in command.params:
            if isinstance(param, _TyperParameter):
                found.append((f"{prefix} {param.name}".strip(), param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{prefix} {name}")

    walk(typer.main.get_command(app), "")
    return found


def _outcome(runtime: Any, param: _TyperParameter, value: Any) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=None)
    except BadParameter as exc:
        return "error", exc.format_message()
    return type(result).__name__, result


def _samples(param: _TyperParameter) -> list[Any]:
    desc = param.type_descriptor
    leaf = desc.annotation.__args__[0] if desc.is_list else desc.annotation
    if isinstance(leaf, type) and issubclass(leaf, Enum):
        values: list[Any] = [m.value for m in leaf] + [next(iter(leaf)), "no-such-choice"]
    elif isinstance(leaf, type) and issubclass(leaf, Path):
        values = list(SAMPLES["path"])
    else:
        values = list(SAMPLES.get(getattr(leaf, "__name__", ""), []))
    if desc.is_list:
        values = [[v] for v in values] + [[*values[:2]], []]
    return [param.default, None, *values]


def test_the_fast_path_is_installed_on_this_typer() -> None:
    # False would mean typer's internals changed: every command would import pydantic again.
    assert coercion.install()


def test_every_parameter_of_every_command_coerces_as_typer_does() -> None:
    params = _params()
    assert len(params) > 150
    fast_count = 0
    for where, param in params:
        fast = coercion.fast_param(param.type_descriptor)
        if fast is None:
            continue
        fast_count += 1
        slow = _coercion.build_runtime_param(param.type_descriptor)
        for value in _samples(param):
            assert _outcome(fast, param, value) == _outcome(slow, param, value), (where, value)
    # str, bool, int, float, Path, enums and their lists: every parameter llmops declares
    assert fast_count == len(params)


def test_bounds_and_bad_numbers_keep_typers_messages(cli: Any, tmp_path: Path) -> None:
    result = cli("package", "build", "x", "--compress-level", "0")
    assert result.exit_code == 2
    assert "--compress-level" in result.output and "greater than or equal to 1" in result.output
    result = cli("package", "build", "x", "--compress-level", "abc")
    assert result.exit_code == 2 and "--compress-level" in result.output


def test_a_command_does_not_import_pydantic(tmp_path: Path) -> None:
    (tmp_path / "llmops.yaml").write_text("name: p\nversion: 1\nmodels: {}\n")
    code = (
        "import sys\n"
        "from llmops_cli.cli.app import app\n"
        "try:\n"
        "    app(['-C', sys.argv[1], 'schema', '--help'], prog_name='llmops')\n"
        "except SystemExit:\n"
        "    pass\n"
        "try:\n"
        "    app(['-C', sys.argv[1], '-v', 'log'], prog_name='llmops')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


@pytest.mark.parametrize("value", ["3", "-1"])
def test_list_and_scalar_defaults_go_through(value: str) -> None:
    params = [p for _w, p in _params() if p.type_descriptor.annotation is int]
    assert params
    fast = coercion.fast_param(params[0].type_descriptor)
    assert fast is not None
    assert fast.coerce(value, param=params[0], ctx=None) == int(value)
