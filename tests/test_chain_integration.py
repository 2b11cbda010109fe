"""End to end on the sample project: index the documents, run the RAG chain with SmolLM2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import SAMPLE_PROJECT, git


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
