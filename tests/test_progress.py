"""Progress in a piped log: plain lines at a steady interval, with counts, ETA and a closing line."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest

from llmops_cli.cli import output
from llmops_cli.cli.progress import clock, live_progress, live_status


@pytest.fixture
def piped(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a file (not a terminal), with plain lines every 0.2 s."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    monkeypatch.setattr(output, "err_console", lambda: console)
    monkeypatch.setenv("LLMOPS_PROGRESS_INTERVAL", "0.2")
    return buffer


def test_clock_formats() -> None:
    assert clock(5) == "0:05"
    assert clock(65.4) == "1:05"
    assert clock(3723) == "1:02:03"
    assert clock(None) == "?"


def test_piped_progress_prints_lines_with_eta_and_a_closing_line(piped: io.StringIO) -> None:
    from rich.progress import BarColumn, TextColumn

    with live_progress(TextColumn("{task.description}"), BarColumn()) as bar:
        task = bar.add_task("eval suite", total=10)
        for done in range(1, 6):
            bar.update(task, completed=done)
            time.sleep(0.1)
        time.sleep(0.3)
        bar.update(task, completed=10)
    lines = [line for line in piped.getvalue().splitlines() if line.strip()]
    ticks = [line for line in lines if re.match(r"eval suite: \d+/10 \(\d+%\), elapsed \d+:\d\d, ETA \d+:\d\d$", line)]
    assert len(ticks) >= 2, lines
    assert lines[-1].startswith("eval suite: 10/10 (100%), elapsed "), lines
    assert not any("━" in line for line in lines), "no rich bar drawn into a log"


def test_piped_progress_reports_a_task_that_has_no_total_yet(piped: io.StringIO) -> None:
    from rich.progress import TextColumn

    with live_progress(TextColumn("{task.description}")) as bar:
        bar.add_task("loading the model", total=None)
        time.sleep(0.5)
    assert re.search(r"^loading the model: elapsed 0:00", piped.getvalue(), flags=re.MULTILINE)


def test_disabled_progress_prints_nothing(piped: io.StringIO) -> None:
    from rich.progress import TextColumn

    with live_progress(TextColumn("{task.description}"), enabled=False) as bar:
        bar.add_task("quiet", total=3)
        time.sleep(0.4)
    assert piped.getvalue() == ""


def test_piped_status_prints_each_change_and_ticks(piped: io.StringIO) -> None:
    with live_status("quantize q4: starting") as status:
        status.update("quantize q4: converting \\[f16]")  # rich markup, escaped as callers do
        time.sleep(0.5)
        status.update("quantize q4: checking")
    text: Any = piped.getvalue()
    assert "quantize q4: starting, elapsed 0:00" in text
    assert text.count("quantize q4: converting [f16], elapsed") >= 2  # the change, then ticks
    assert "quantize q4: checking, elapsed" in text


@pytest.mark.parametrize(
    ("style", "calls", "interleaved"),
    [
        ("bytes", [], False),
        ("bytes", [("plan", 0, 0), ("hash", 500, 1000), ("hash", 1000, 1000)], False),
        ("bar", [("", 3, 0)], False),
        ("phases", [("plan", 0, 0), ("hash", 5, 10), ("write", 1, 4), ("ready", 0, 0)], False),
        ("phases", [("hash", 5, 10), ("write", 1, 4), ("hash", 7, 10)], True),
    ],
)
def test_quick_work_draws_no_bar_and_closes_a_log_as_the_bars_would(
    piped: io.StringIO, monkeypatch: pytest.MonkeyPatch, style: Any, calls: list[tuple[str, int, int]],
    interleaved: bool,
) -> None:  # fmt: skip
    import sys

    def run() -> str:
        piped.seek(0)
        piped.truncate()
        with output.progress("pkg x", enabled=True, style=style, interleaved=interleaved, relabel=("ready",)) as r:
            for call in calls:
                r(*call)
        return piped.getvalue()

    monkeypatch.setattr(output, "PROGRESS_DELAY_S", 0.0)  # the bars start at once, as for long work
    drawn = run()
    monkeypatch.setattr(output, "PROGRESS_DELAY_S", 60.0)
    sys.modules.pop("rich.progress", None)
    quick = run()
    assert quick.strip() == drawn.strip() != ""  # rich's live display adds a blank line
    assert "rich.progress" not in sys.modules


def test_slow_work_starts_the_bars_from_the_timer(piped: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "PROGRESS_DELAY_S", 0.1)
    with output.progress("pkg y", enabled=True, style="bytes") as report:
        report("hash", 10, 100)
        time.sleep(0.6)  # no report for a while: the timer shows the bar (and, in a log, its lines)
        assert "pkg y: hashing: 10/100 (10%)" in piped.getvalue()
        report("hash", 100, 100)
    assert re.search(r"pkg y: hashing: 100/100 \(100%\), elapsed 0:0[01]\s*$", piped.getvalue())


def test_an_error_inside_quick_work_prints_no_closing_line(piped: io.StringIO) -> None:
    with pytest.raises(RuntimeError), output.progress("pkg z", enabled=True, style="bar") as report:
        report("hash", 1, 2)
        raise RuntimeError("boom")
    assert piped.getvalue() == ""
