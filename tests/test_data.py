"""Datasets: format validation (every bad row, with its line), CSV and renames, stats, snapshots, CLI.

Stats tests plant exact duplicates, near-duplicates (case / punctuation / spacing variants) and
train/eval overlap in small files and check that each is found with its line numbers. Token lengths
use the tiny tokenizer of tests/fixtures/models.py; one integration test uses the real SmolLM2 one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_cli.config.project import ProjectConfig
from llmops_cli.data import check_dataset, dataset_stats, load_rows, normalize_text, snapshot_dataset, to_example
from llmops_cli.data.stats import distribution
from llmops_cli.errors import EXIT_USAGE, ConfigError, UsageError
from llmops_cli.validation import load_config
from llmops_cli.versioning import ArtifactRef, ArtifactRegistry
from tests.helpers import SAMPLE_PROJECT, git

SYSTEM = {"role": "system", "content": "You are a helpful support bot."}


def chat(user: str, answer: str, *, system: bool = True) -> str:
    messages = [SYSTEM] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages})


def make_project(
    root: Path,
    datasets: dict[str, dict[str, Any]],
    files: dict[str, str],
    *,
    models: dict[str, Any] | None = None,
    adapters: dict[str, Any] | None = None,
    commit: bool = True,
) -> ProjectConfig:
    """A minimal project with the given datasets and files, committed in a fresh git repository."""
    root.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"version": 1, "name": "data-test", "datasets": datasets}
    if models:
        doc["models"] = models
    if adapters:
        doc["adapters"] = adapters
    (root / "llmops.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    if commit and not (root / ".git").exists():
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "init")
    return load_config(root)


# --- validation -----------------------------------------------------------------------------------


BAD_CHAT = "\n".join(
    [
        chat("How do I reset it?", "Hold the button for 10 seconds."),  # 1 ok
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}),  # 2
        '{"messages": [{"role": "user", "content": "broken"',  # 3: invalid JSON
        "",  # 4: blank lines are skipped
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # 5: no assistant turn
        json.dumps(["not", "an", "object"]),  # 6
        json.dumps({"conversation": []}),  # 7: missing messages
        json.dumps({"messages": [SYSTEM, {"role": "user", "content": 3.5}, {"content": "x"}]}),  # 8
        json.dumps(  # 9: ends with the user (invalid for training data)
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            }  # fmt: skip
        ),
        chat("Where is the fuse?", ""),  # 10: valid, but the answer is empty (snapshot drops it)
        json.dumps({"messages": [{"role": "user", "content": ["x"]}, {"role": "assistant", "content": "y"}]}),  # 11
    ]
)


def test_validate_reports_every_bad_row_with_line_and_field(tmp_path: Path) -> None:
    cfg = make_project(
        tmp_path / "p",
        {"train": {"path": "data/train.jsonl", "format": "chat"}},
        {"data/train.jsonl": BAD_CHAT + "\n"},
        models={"m": {"source": "smollm2-135m-instruct"}},
        adapters={"lora": {"base": "m", "dataset": "train"}},  # so rows must end with an assistant turn
        commit=False,
    )
    check = check_dataset(cfg, "train")
    assert check.training and not check.ok
    assert check.problems == [
        "data/train.jsonl:2: messages[1].role: 'bot' is not one of system, user, assistant",
        "data/train.jsonl:3: (line): invalid JSON: Expecting ',' delimiter (column 51)",
        "data/train.jsonl:5: messages: has no assistant turn",
        "data/train.jsonl:6: (row): expected a JSON object, got a list",
        "data/train.jsonl:7: messages: missing; the row has: conversation",
        "data/train.jsonl:8: messages[2].role: missing",
        "data/train.jsonl:9: messages[2].role: the last turn is 'user'; training conversations end with an "
        "assistant turn",
        "data/train.jsonl:11: messages[0].content: expected a string, got a list",
    ]
    assert check.invalid_rows == 8
    # Row 8's number content is read as text; rows 1 and 10 are valid, and 10's empty answer is counted.
    assert [r.line for r in check.rows] == [1, 10]
    assert check.empty == {"assistant content": ["data/train.jsonl:10"]}
    with pytest.raises(ConfigError) as caught:
        load_rows(cfg, "train")
    assert caught.value.problems == check.problems and caught.value.exit_code == EXIT_USAGE
    assert "8 problems in 8 rows" in caught.value.message
    # Not training data: a conversation may end with the user.
    assert "data/train.jsonl:9" not in " ".join(check_dataset(cfg, "train", training=False).problems)


def test_instruction_and_qa_rows_and_examples(tmp_path: Path) -> None:
    rows = [
        {"instruction": " Translate to French ", "input": "cat", "output": "chat"},
        {"instruction": "Say hi", "output": "hi"},
        {"instruction": "Count", "input": None, "output": 3},
        {"instruction": "x", "input": {"a": 1}, "output": "y"},
    ]
    qa = [
        {"id": "q1", "question": "What is it?", "answer": "A thermostat.", "source": "docs/a.md"},
        {"question": "Where?", "context": "In the hall.", "answer": "hall"},
        {"question": "Missing answer"},
    ]
    cfg = make_project(
        tmp_path / "p",
        {"ins": {"path": "ins.jsonl", "format": "instruction"}, "qa": {"path": "qa.jsonl", "format": "qa"}},
        {
            "ins.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n",
            "qa.jsonl": "\n".join(json.dumps(r) for r in qa) + "\n",
        },
        commit=False,
    )
    check = check_dataset(cfg, "ins")
    assert check.problems == ["ins.jsonl:4: input: expected a string, got an object"]
    first, second, third = check.rows
    assert first.data == {"instruction": "Translate to French", "input": "cat", "output": "chat"}
    assert third.data["output"] == "3" and third.data["input"] == ""
    assert to_example(first, "instruction")["messages"] == [
        {"role": "user", "content": "Translate to French\n\ncat"},
        {"role": "assistant", "content": "chat"},
    ]
    assert to_example(second, "instruction")["messages"][0]["content"] == "Say hi"
    check = check_dataset(cfg, "qa")
    assert check.problems == ["qa.jsonl:3: answer: missing; the row has: question"]
    one, two = check.rows
    assert one.data == {"question": "What is it?", "answer": "A thermostat.", "id": "q1", "source": "docs/a.md"}
    assert to_example(two, "qa")["messages"][0]["content"] == "Where?\n\nContext:\nIn the hall."
    assert to_example(one, "qa")["messages"][0]["content"] == "What is it?"


def test_csv_with_field_renames(tmp_path: Path) -> None:
    csv_text = (
        "prompt,response,id\n"
        '"How do I pair the sensor?","Open the app, then Devices.",a1\n'
        '"A question\nover two lines","yes",a2\n'  # a quoted cell spanning lines 3-4
        "Too many,values,a3,extra\n"  # line 5
        ",no prompt,a4\n"  # line 6: empty question (valid, counted as empty)
    )
    cfg = make_project(
        tmp_path / "p",
        {
            "faq": {"path": "data/faq.csv", "format": "qa", "fields": {"prompt": "question", "response": "answer"}},
            "nomap": {"path": "data/faq.csv", "format": "qa", "fields": {"prompt": "question"}},
        },
        {"data/faq.csv": csv_text},
        commit=False,
    )
    check = check_dataset(cfg, "faq")
    assert check.problems == ["data/faq.csv:5: (line): 4 values but the header has 3 columns"]
    assert [r.line for r in check.rows] == [2, 3, 6]
    assert check.rows[0].data == {"question": "How do I pair the sensor?", "answer": "Open the app, then Devices.",
                                  "id": "a1"}  # fmt: skip
    assert check.rows[1].data["question"] == "A question\nover two lines"
    assert check.empty == {"question": ["data/faq.csv:6"]}
    # A required field no column provides is reported once, on the header line.
    check = check_dataset(cfg, "nomap")
    assert check.problems[0] == "data/faq.csv:1: answer: missing column; the header has: prompt, response, id"
    assert len([p for p in check.problems if "answer" in p]) == 1


def test_chat_csv_messages_column_and_inner_renames(tmp_path: Path) -> None:
    good = json.dumps([{"from": "user", "value": "hi"}, {"from": "assistant", "value": "hello"}])
    csv_text = "conversation,id\n" + f'"{good.replace(chr(34), chr(34) * 2)}",1\n' + '"[not json",2\n'
    cfg = make_project(
        tmp_path / "p",
        {
            "c": {
                "path": "c.csv",
                "format": "chat",
                "fields": {"conversation": "messages", "from": "role", "value": "content"},
            }
        },  # fmt: skip
        {"c.csv": csv_text},
        commit=False,
    )
    check = check_dataset(cfg, "c")
    assert len(check.problems) == 1 and check.problems[0].startswith("c.csv:3: messages: not valid JSON")
    assert check.rows[0].data == {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "id": "1",
    }


def test_json_list_txt_and_md_files(tmp_path: Path) -> None:
    records = '[\n  {"text": "first"},\n  {"text": "second",\n   "id": 2},\n  {"txt": "third"}\n]\n'
    cfg = make_project(
        tmp_path / "p",
        {
            "j": {"path": "t.json", "format": "text"},
            "lines": {"path": "notes.txt", "format": "text"},
            "pages": {"path": "pages", "format": "text", "file_format": "md"},
            "wrong": {"path": "notes.txt", "format": "qa"},
        },
        {"t.json": records, "notes.txt": "one\n\ntwo\n", "pages/a.md": "# A\n\nbody", "pages/b.md": "# B"},
        commit=False,
    )
    check = check_dataset(cfg, "j")
    assert [r.line for r in check.rows] == [2, 3]
    assert check.problems == ["t.json:5: text: missing; the row has: txt"]
    assert [r.data["text"] for r in load_rows(cfg, "lines")] == ["one", "two"]
    assert [r.line for r in load_rows(cfg, "lines")] == [1, 3]
    pages = load_rows(cfg, "pages")
    assert [(r.file, r.data["text"]) for r in pages] == [("pages/a.md", "# A\n\nbody"), ("pages/b.md", "# B")]
    assert to_example(pages[0], "text") == {"text": "# A\n\nbody"}
    with pytest.raises(UsageError, match="needs records with fields"):
        check_dataset(cfg, "wrong")
    with pytest.raises(UsageError, match="unknown dataset 'line'") as caught:
        check_dataset(cfg, "line")
    assert "Did you mean 'lines'" in (caught.value.hint or "")


# --- stats ----------------------------------------------------------------------------------------

TRAIN = [
    chat("How do I reset the thermostat?", "Hold the button for 10 seconds."),  # 1
    chat("What batteries does the sensor use?", "One CR2032."),  # 2
    chat("How do I reset the thermostat?", "Hold the button for 10 seconds."),  # 3: exact copy of 1
    chat("what batteries does the sensor use", "one CR2032"),  # 4: near copy of 2 (case, punctuation)
    chat("Does it work with Alexa?", "Yes,  with the Hearth skill."),  # 5
    chat("Can I use it offline?", "Yes; the schedule runs without Wi-Fi."),  # 6: leaks into eval (qa)
    chat("DOES it work with ALEXA?", "yes with the hearth skill!"),  # 7: near copy of 5
    chat("Is there a warranty?", "Two years."),  # 8: exact row in the chat eval set
    chat("How long is shipping?", ""),  # 9: empty answer
]
EVAL_QA = [
    {"id": "e1", "question": "can I use it OFFLINE", "answer": "Yes."},  # 1: same prompt as train 6
    {"id": "e2", "question": "What colour is it?", "answer": "White."},  # 2
]
EVAL_CHAT = [chat("What is the app called?", "Hearth."), chat("Is there a warranty?", "Two years.")]


@pytest.fixture
def eda_project(tmp_path: Path) -> ProjectConfig:
    return make_project(
        tmp_path / "eda",
        {
            "train": {"path": "data/train.jsonl", "format": "chat"},
            "eval-qa": {"path": "data/eval.jsonl", "format": "qa"},
            "eval-chat": {"path": "data/eval-chat.jsonl", "format": "chat"},
            "docs": {"path": "docs", "format": "documents"},
        },
        {
            "data/train.jsonl": "\n".join(TRAIN) + "\n",
            "data/eval.jsonl": "\n".join(json.dumps(r) for r in EVAL_QA) + "\n",
            "data/eval-chat.jsonl": "\n".join(EVAL_CHAT) + "\n",
            "docs/a.md": "# Doc\n\ntext",
        },
    )


def test_stats_finds_planted_duplicates_and_overlap(eda_project: ProjectConfig) -> None:
    st = dataset_stats(eda_project, "train", tokens=False)
    assert st.rows == 9 and st.invalid_rows == 0 and st.tokens is None
    assert st.empty == {"user content": 0, "assistant content": 1}
    assert st.exact_duplicates.rows == 1 and st.exact_duplicates.groups == 1
    assert [(p.where, p.other) for p in st.exact_duplicates.examples] == [("data/train.jsonl:3", "data/train.jsonl:1")]
    assert st.near_duplicates.rows == 2 and st.near_duplicates.groups == 2
    assert [(p.where, p.other) for p in st.near_duplicates.examples] == [
        ("data/train.jsonl:4", "data/train.jsonl:2"),
        ("data/train.jsonl:7", "data/train.jsonl:5"),
    ]
    assert st.near_duplicates.examples[0].text == "what batteries does the sensor use"
    overlaps = {o.against: o for o in st.overlaps}
    assert set(overlaps) == {"eval-qa", "eval-chat"}  # documents are not compared
    qa, chat_eval = overlaps["eval-qa"], overlaps["eval-chat"]
    assert (qa.rows, qa.same_prompt, qa.same_row) == (2, 1, 0)
    assert [(p.where, p.other) for p in qa.examples] == [("data/train.jsonl:6", "data/eval.jsonl:1")]
    assert (chat_eval.same_prompt, chat_eval.same_row) == (1, 1)
    assert chat_eval.examples[0].other == "data/eval-chat.jsonl:2"
    # --against picks the comparison explicitly; a documents dataset cannot be one.
    only = dataset_stats(eda_project, "train", tokens=False, against=["eval-qa"])
    assert [o.against for o in only.overlaps] == ["eval-qa"]
    with pytest.raises(UsageError, match="documents"):
        dataset_stats(eda_project, "train", tokens=False, against=["docs"])
    assert json.loads(json.dumps(st.as_dict()))["near_duplicates"]["rows"] == 2


def test_stats_skips_invalid_rows_and_reports_unloadable_others(tmp_path: Path) -> None:
    cfg = make_project(
        tmp_path / "p",
        {"a": {"path": "a.jsonl", "format": "qa"}, "b": {"path": "b.jsonl", "format": "qa"}},
        {"a.jsonl": '{"question": "q", "answer": "a"}\nnot json\n', "b.jsonl": "{}\n"},
        commit=False,
    )
    st = dataset_stats(cfg, "a", tokens=False)
    assert st.rows == 1 and st.invalid_rows == 1
    assert st.overlaps[0].error is not None and "invalid" in st.overlaps[0].error
    with pytest.raises(ConfigError):
        dataset_stats(cfg, "a", tokens=False, against=["b"])


def test_stats_token_lengths_with_tiny_tokenizer(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_tokenizer: Any,
) -> None:
    cfg = make_project(
        tmp_path / "p",
        {"train": {"path": "train.jsonl", "format": "chat"}},
        {"train.jsonl": "\n".join(TRAIN[:4]) + "\n"},
        models={"tiny": {"source": str(tiny_model_dir)}},
        adapters={"lora": {"base": "tiny", "dataset": "train", "training": {"max_seq_len": 40}}},
        commit=False,
    )
    phases: list[tuple[str, int, int]] = []
    st = dataset_stats(cfg, "train", progress=lambda *a: phases.append(a))
    expected = [
        len(tiny_tokenizer(tiny_tokenizer.apply_chat_template(json.loads(r)["messages"], tokenize=False),
                           add_special_tokens=False)["input_ids"])
        for r in TRAIN[:4]
    ]  # fmt: skip
    assert st.model == "tiny" and st.max_seq_len == 40
    assert st.tokens is not None and st.tokens.count == 4
    assert (st.tokens.min, st.tokens.max) == (min(expected), max(expected))
    assert st.over_max_seq_len == sum(n > 40 for n in expected) > 0
    assert sum(n for _, _, n in st.tokens.histogram) == 4
    assert phases[0] == ("tokenizer", 0, 1) and phases[-1] == ("tokens", 4, 4)
    assert dataset_stats(cfg, "train", max_seq_len=10_000).over_max_seq_len == 0


def test_distribution_percentiles_and_histogram() -> None:
    dist = distribution(list(range(1, 101)))
    assert dist is not None
    assert (dist.min, dist.p50, dist.p90, dist.p95, dist.p99, dist.max, dist.mean) == (1, 50, 90, 95, 99, 100, 50.5)
    assert [n for _, _, n in dist.histogram] == [10] * 10
    assert distribution([]) is None
    assert distribution([7, 7]).histogram == [(7, 7, 2)]  # type: ignore[union-attr]


def test_normalize_text() -> None:
    assert normalize_text("  How do I   RESET it?!  ") == "how do i reset it"
    assert normalize_text("Café, «déjà» vu…") == "café déjà vu"
    assert normalize_text("don't") == normalize_text("dont")


# --- snapshots ------------------------------------------------------------------------------------


def _train_lines(n: int, start: int = 0) -> list[str]:
    return [chat(f"Question number {i} about the thermostat?", f"Answer {i}.") for i in range(start, start + n)]


def test_snapshot_is_deterministic_and_versioned(tmp_path: Path) -> None:
    lines = _train_lines(40) + [TRAIN[0], TRAIN[2], TRAIN[4], TRAIN[6], TRAIN[8]]  # 1 exact, 1 near, 1 empty
    root = tmp_path / "p"
    cfg = make_project(root, {"train": {"path": "data/train.jsonl", "format": "chat"}},
                       {"data/train.jsonl": "\n".join(lines) + "\n"})  # fmt: skip
    first = snapshot_dataset(cfg, "train", eval_split=0.2, seed=7)
    assert first.created and first.version == 1 and first.ref == "dataset/train@v1"
    assert first.stats["rows_in"] == 45 and first.stats["rows_out"] == 42
    assert first.stats["dropped_empty"] == {"count": 1, "rows": ["data/train.jsonl:45"]}
    assert first.stats["exact_duplicates_removed"]["pairs"] == [["data/train.jsonl:42", "data/train.jsonl:41"]]
    assert first.stats["near_duplicates_removed"]["pairs"] == [["data/train.jsonl:44", "data/train.jsonl:43"]]
    assert len(first.train) + len(first.eval) == 42 and 0 < len(first.eval) < 20
    assert first.train[0] == to_example(load_rows(cfg, "train")[0], "chat") or first.eval[0] == to_example(
        load_rows(cfg, "train")[0], "chat"
    )
    folder = root / "artifacts/dataset/train"
    assert first.path == folder and (folder / "train.jsonl").is_file() and (folder / "stats.json").is_file()
    manifest = ArtifactRegistry.for_config(cfg).get(ArtifactRef("dataset", "train")).manifest
    assert manifest["params"]["eval_split"] == 0.2 and manifest["params"]["seed"] == 7
    assert manifest["metrics"]["duplicates_removed"] == 2 and manifest["inputs"][0]["ref"] == "data/train.jsonl"

    # Same content and params: the same version comes back, nothing new is committed.
    head = git(root, "rev-parse", "HEAD")
    again = snapshot_dataset(cfg, "train", eval_split=0.2, seed=7)
    assert not again.created and again.version == 1 and again.content_hash == first.content_hash
    assert (again.train, again.eval) == (first.train, first.eval)
    assert git(root, "rev-parse", "HEAD") == head
    # Missing files are checked out again from the registered version.
    shutil.rmtree(folder)
    restored = snapshot_dataset(cfg, "train", eval_split=0.2, seed=7)
    assert not restored.created and restored.train == first.train and (folder / "eval.jsonl").is_file()

    # New rows: v2; every old row stays on its side of the split.
    (root / "data/train.jsonl").write_text("\n".join(lines + _train_lines(30, start=100)) + "\n")
    second = snapshot_dataset(load_config(root), "train", eval_split=0.2, seed=7)
    assert second.created and second.version == 2 and second.content_hash != first.content_hash
    assert all(e in second.train for e in first.train) and all(e in second.eval for e in first.eval)
    assert len(second.train) + len(second.eval) == 72
    # Other params: a new version even with the same content.
    third = snapshot_dataset(load_config(root), "train", eval_split=0.2, seed=8)
    assert third.created and third.version == 3 and third.content_hash == second.content_hash


def test_snapshot_refuses_invalid_or_empty_datasets(tmp_path: Path) -> None:
    cfg = make_project(
        tmp_path / "p",
        {"bad": {"path": "bad.jsonl", "format": "qa"}, "empty": {"path": "empty.jsonl", "format": "qa"}},
        {"bad.jsonl": '{"question": "q"}\n', "empty.jsonl": '{"question": "q", "answer": " "}\n'},
    )
    with pytest.raises(ConfigError, match="invalid"):
        snapshot_dataset(cfg, "bad")
    with pytest.raises(UsageError, match="no rows left"):
        snapshot_dataset(cfg, "empty")
    with pytest.raises(UsageError, match="eval_split"):
        snapshot_dataset(cfg, "empty", eval_split=0.9)


def test_snapshot_of_the_sample_project(tmp_path: Path) -> None:
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(".llmops", "artifacts"))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "sample")
    cfg = load_config(root)
    snap = snapshot_dataset(cfg, "support-train", eval_split=0.1, seed=42)
    assert snap.created and snap.stats["rows_in"] == 300
    assert len(snap.train) + len(snap.eval) == snap.stats["rows_out"]
    assert 15 <= len(snap.eval) <= 45
    assert all(e["messages"][-1]["role"] == "assistant" for e in snap.train + snap.eval)
    assert not snapshot_dataset(cfg, "support-train", eval_split=0.1, seed=42).created
    qa = snapshot_dataset(cfg, "support-eval", eval_split=0.0)
    assert len(qa.train) == 50 and qa.eval == []


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_validate(cli, tmp_path: Path) -> None:
    make_project(tmp_path / "p", {"train": {"path": "data/train.jsonl", "format": "chat"},
                                  "ok": {"path": "data/ok.jsonl", "format": "chat"}},
                 {"data/train.jsonl": BAD_CHAT + "\n", "data/ok.jsonl": "\n".join(TRAIN) + "\n"})  # fmt: skip
    result = cli("data", "validate", "train", cwd=tmp_path / "p")
    assert result.exit_code == EXIT_USAGE
    assert "data/train.jsonl:2: messages[1].role: 'bot' is not one of system, user, assistant" in result.output
    assert "data/train.jsonl:11: messages[0].content" in result.output and "Traceback" not in result.output
    report = json.loads(cli("data", "validate", "train", "--json", cwd=tmp_path / "p").stdout)
    assert report["ok"] is False and report["invalid_rows"] == 7 and report["rows"] == 3
    result = cli("data", "validate", "ok", cwd=tmp_path / "p")
    assert result.exit_code == 0 and "ok: 9 valid rows" in result.output
    assert "1 rows have an empty assistant content" in result.output and "data/ok.jsonl:9" in result.output
    result = cli("data", "validate", cwd=tmp_path / "p")  # every dataset
    assert result.exit_code == EXIT_USAGE and "ok: 9 valid rows" in result.output


def test_cli_stats_and_snapshot(cli, eda_project: ProjectConfig) -> None:
    root = eda_project.root
    result = cli("data", "stats", "train", "--no-tokens", cwd=root)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "train: 9 rows (chat, data/train.jsonl)" in out
    assert "exact duplicates: 1 rows repeat 1 others" in out
    assert "data/train.jsonl:3 repeats data/train.jsonl:1" in out
    assert "data/train.jsonl:7 repeats data/train.jsonl:5" in out
    assert "eval-qa" in out and "data/train.jsonl:6 ~ data/eval.jsonl:1" in out
    assert "skipped (--no-tokens)" in out and "characters per row" in out
    stats = json.loads(cli("data", "stats", "train", "--no-tokens", "--json", "--against", "eval-qa", cwd=root).stdout)
    assert stats["overlaps"][0]["same_prompt"] == 1 and stats["tokens"] is None

    result = cli("data", "snapshot", "train", "--eval-split", "0.5", "--seed", "3", cwd=root)
    assert result.exit_code == 0, result.output
    assert "registered dataset/train@v1" in result.output and "content hash  sha256:" in result.output
    again = json.loads(
        cli("data", "snapshot", "train", "--eval-split", "0.5", "--seed", "3", "--json", cwd=root).stdout
    )
    assert again["created"] is False and again["ref"] == "dataset/train@v1"
    assert again["train"] + again["eval"] == 5 and again["stats"]["near_duplicates_removed"]["count"] == 2
    result = cli("data", "snapshot", "nope", cwd=root)
    assert result.exit_code == EXIT_USAGE and "unknown dataset 'nope'" in result.output


def test_cli_snapshot_defaults_to_the_adapter_split(cli, tmp_path: Path) -> None:
    make_project(
        tmp_path / "p",
        {"train": {"path": "train.jsonl", "format": "chat"}},
        {"train.jsonl": "\n".join(_train_lines(20)) + "\n"},
        models={"m": {"source": "smollm2-135m-instruct"}},
        adapters={"lora": {"base": "m", "dataset": "train", "training": {"eval_split": 0.25, "seed": 5}}},
    )
    snap = json.loads(cli("data", "snapshot", "train", "--json", cwd=tmp_path / "p").stdout)
    assert snap["stats"]["params"]["eval_split"] == 0.25 and snap["stats"]["params"]["seed"] == 5


PROBE = """
import json, sys
import typer
from llmops_cli.cli import data
root = typer.Typer()
root.callback()(lambda: None)
root.add_typer(data.app, name="data")
try:
    root(["data", *json.loads(sys.argv[1])])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "chromadb", "peft"})
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
sys.exit(code or 0)
"""


@pytest.mark.parametrize("args", [["validate"], ["stats", "support-train", "--no-tokens"], ["--help"]])
def test_data_commands_import_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=SAMPLE_PROJECT, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads([x for x in proc.stderr.splitlines() if x.startswith("HEAVY=")][-1][6:])
    assert heavy == []


# --- the real SmolLM2 tokenizer (integration) -----------------------------------------------------


@pytest.mark.integration
def test_stats_on_the_sample_project_with_smollm2() -> None:
    cfg = load_config(SAMPLE_PROJECT)
    started = time.perf_counter()
    st = dataset_stats(cfg, "support-train")
    elapsed = time.perf_counter() - started
    assert st.model == "base" and st.max_seq_len == 256 and st.rows == 300
    assert st.tokens is not None and 80 < st.tokens.p50 < st.tokens.max < 256
    assert st.over_max_seq_len == 0  # the sample's comment promises that every training row fits
    assert st.exact_duplicates.rows == 0 and all(o.same_row == 0 for o in st.overlaps)
    print(f"stats on 300 rows with the SmolLM2 tokenizer: {elapsed:.2f} s ({st.seconds})")
