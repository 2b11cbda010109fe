"""Start-up stays light: the everyday commands never import heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import HEAVY, SAMPLE_PROJECT

PROBE = """
import json, sys
sys.argv = ["llmops", *json.loads(sys.argv[1])]
from llmops_cli.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
sys.exit(code or 0)
"""


def _run(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    code = PROBE % (list(HEAVY),)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, proc.stderr
    return proc.returncode, json.loads(line[-1][6:]), proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate"],
        ["schema"],
        ["models", "list"],
        ["log"],
        ["init", "--help"],
        ["prompt", "list"],
        ["index", "--help"],
        ["chain", "list"],
        ["eval", "--help"],
        ["quantize", "--help"],
        ["package", "--help"],
        ["serve", "--help"],
        ["deploy", "--help"],
        ["monitor", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_command_imports_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    cwd = SAMPLE_PROJECT if args[0] != "log" else tmp_path
    if args == ["log"]:
        from llmops_cli.scaffold import init_project

        init_project(tmp_path, name="p")
    code, heavy, out = _run(args, cwd)
    assert code == 0, out
    assert heavy == [], f"'llmops {' '.join(args)}' imported {heavy}"


def test_core_modules_import_no_typer_or_rich() -> None:
    code = (
        "import sys, llmops_cli.config, llmops_cli.versioning, llmops_cli.scaffold, llmops_cli.models,"
        " llmops_cli.evals, llmops_cli.evals.runner, llmops_cli.package, llmops_cli.quantize, llmops_cli.deploy,"
        " llmops_cli.monitor, llmops_cli.serve;"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'torch', 'transformers'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lazy_package_facades_give_the_same_objects_as_their_submodules() -> None:
    import importlib
    import pkgutil

    for name in ("prompts", "retrieval", "data", "package", "chains"):
        package = importlib.import_module(f"llmops_cli.{name}")
        submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        for public in package.__all__:
            value = getattr(package, public)
            assert not isinstance(value, type(package)), f"llmops_cli.{name}.{public} is a module"
            assert public in dir(package)
        # every submodule imported, then the names again: still the functions, not the modules
        for sub in submodules:
            importlib.import_module(f"llmops_cli.{name}.{sub}")
        for public in package.__all__:
            assert not isinstance(getattr(package, public), type(package)), f"llmops_cli.{name}.{public}"
