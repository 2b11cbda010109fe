"""End to end on the sample project: index the documents, run the RAG chain with SmolLM2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_PROJECT, git


@pytest.mark.integration
def test_sample_rag_chain_answers_from_its_documents(cli, tmp_path: Path) -> None:
    project = tmp_path / "hearth"
    shutil.copytree(SAMPLE_PROJECT, project, ignore=shutil.ignore_patterns(".llmops"))
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "sample")

    result = cli("index", "kb", cwd=project)
    assert result.exit_code == 0, result.output
    assert git(project, "tag", "--list", "index/kb/*").split() == ["index/kb/v1"]

    question = "What Wi-Fi band does the thermostat support?"
    result = cli("chain", "run", "rag-answer", "--var", f"question={question}", "--no-adapters", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert "2.4" in run["result"]
    retrieve, generate = run["steps"]
    sources = [chunk["source"] for chunk in retrieve["details"]["chunks"]]
    assert "docs/wifi-setup.md" in sources
    grounding = [c["text"] for c in retrieve["details"]["chunks"] if "2.4 GHz" in c["text"]]
    assert grounding, "no retrieved chunk contains the fact the answer states"
    assert generate["details"]["model"] == "base" and generate["details"]["adapter_disabled"] == "support-lora"
    assert generate["tokens"]["completion"] > 0

    # Without --no-adapters the untrained adapter is a clear usage error naming the step.
    result = cli("chain", "run", "rag-answer", "--var", f"question={question}", cwd=project)
    assert result.exit_code == 2 and "llmops tune support-lora" in result.output

    # The sample's eval suite end to end on the same project: real chain, real SmolLM2, all reports.
    result = cli("eval", "support-quality", "--limit", "3", "--no-adapters", "-o", "out", cwd=project)
    assert result.exit_code in (0, 5), result.output  # 5: a gate failed, which is the model's business
    doc = json.loads((project / "out" / "results.json").read_text())
    suite = doc["suites"][0]
    assert [c["case_id"] for c in suite["cases"]] == ["eval-001", "eval-002", "eval-003"]
    assert all(c["prediction"] and c["details"]["sources"] for c in suite["cases"])
    assert suite["aggregates"]["rougeL"]["n"] == 3 and suite["versions"]["models"]["base"].startswith("sha256:")
    assert (project / "out" / "report.html").stat().st_size > 10_000  # plots embedded
    assert git(project, "tag", "--list", "eval/*").split() == ["eval/support-quality/v1"]
    again = cli("eval", "support-quality", "--limit", "3", "--no-adapters", "--no-save", "--json", cwd=project)
    assert all(c["cached"] for c in json.loads(again.stdout)["suites"][0]["cases"])
