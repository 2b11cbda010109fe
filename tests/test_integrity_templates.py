"""Template rendering has bounds: time, size, number size; on every path (CLI, chains, threads)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.errors import EXIT_USAGE, UsageError
from llmops_cli.prompts import sandbox

LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done"


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_TEMPLATE_TIMEOUT_S", "0.5")


def _set_template(project: Path, template: str) -> None:
    path = project / "prompts" / "answer.yaml"
    lines = path.read_text().split("template: |\n", 1)
    rest = lines[1].split("variables:", 1)[1]
    path.write_text(lines[0] + f"template: {template!r}\nvariables:" + rest)


def test_defaults_are_sane() -> None:
    assert 1 <= sandbox.TIMEOUT_S <= 30
    assert 100_000 <= sandbox.MAX_CHARS <= 100_000_000


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (LOOPS, "ran for more than 0.5 s"),
        ("{{ 'a' * 10**10 }}", "more than the 1,000,000 characters"),
        ("{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}", "more than the 1,000,000 characters"),
        ("{{ (10**1000)**1000 }}", "too large for a prompt"),
        ("{{ ['a'] * 10**9 }}", "1,000,000,000 items"),
    ],
)
def test_cli_render_is_bounded(project: Path, cli: Any, template: str, message: str) -> None:
    _set_template(project, template)
    started = time.monotonic()
    result = cli("prompt", "render", "answer", "--var", "question=q", cwd=project)
    assert time.monotonic() - started < 10
    assert result.exit_code == EXIT_USAGE, result.output
    flat = " ".join(result.output.split())
    assert "prompt 'answer' template" in flat and "rendering stopped" in flat and message in flat
    assert "limit:" in flat and "internal error" not in flat.lower()


def test_chain_fields_and_conditions_are_bounded() -> None:
    from llmops_cli.chains import templating

    with pytest.raises(UsageError, match=r"step 1 query: rendering stopped: the template ran for more than 0.5 s"):
        templating.render(LOOPS, {}, where="step 1 query")
    with pytest.raises(UsageError, match="more than the 1,000,000 characters"):
        templating.render("{{ q * 10**8 }}", {"q": "abc"}, where="step 1 vars.x")
    with pytest.raises(UsageError, match="condition .* rendering stopped"):
        templating.evaluate("'a' * 10**10 == ''", {}, where="step 2 when")
    assert templating.render("{{ q }}!", {"q": "ok"}, where="w") == "ok!"


def test_bounds_hold_in_worker_threads_and_leave_the_thread_usable(project: Path) -> None:
    """Eval workers and the server render outside the main thread."""
    from llmops_cli.prompts import load_prompt, render
    from llmops_cli.validation import load_config

    _set_template(project, LOOPS)
    spec = load_prompt(load_config(project), "answer")

    def work() -> str:
        try:
            render(spec, {"question": "q"})
        except UsageError as error:
            first = error.message
        time.sleep(0.8)  # past the old deadline: nothing stray may land here
        return first + " | " + sandbox.render_bounded(sandbox.environment().from_string("{{ 1 + 1 }}"), {})

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: work(), range(2)))
    assert all("ran for more than 0.5 s" in r and r.endswith("| 2") for r in results)


def test_quick_renders_are_not_slowed_or_interrupted() -> None:
    template = sandbox.environment().from_string("Hello {{ name }}, {% for i in range(3) %}{{ i }}{% endfor %}")
    started = time.monotonic()
    for _ in range(2000):
        assert sandbox.render_bounded(template, {"name": "x"}) == "Hello x, 012"
    assert time.monotonic() - started < 5
    time.sleep(0.6)  # deadlines of all those renders pass: none may fire
