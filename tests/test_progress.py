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
