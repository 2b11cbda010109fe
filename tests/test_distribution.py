"""The distribution is llmops-cli ("llmops" on PyPI is an unrelated project), and nothing we ship says otherwise."""

from __future__ import annotations

import re
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.helpers import REPO_ROOT, venv_with_wheel

DIST = "llmops-cli"
# A line that tells a user to install the squatted name: `pip install llmops`, "llmops[all]",
# llmops==0.1. llmops-cli, llmops_cli and `pip install ... ` lines that mention llmops only as the
# command are fine.
SQUATTED = re.compile(
    r"""pip3? install[^\n]*?(?<![\w./-])llmops(?![\w-])(?!\s*(?:validate|eval|prompt|init|serve|--help))"""
    r"""|(?<![\w-])llmops\[[\w,-]+\]|(?<![\w-])llmops(?:==|>=|~=)\d"""
)
SHIPPED = [
    "README.md",
    "action.yml",
    ".pre-commit-hooks.yaml",
    "Makefile",
    "pyproject.toml",
    "templates/**/*",
    "templates/**/.*",
    "sample-project/**/*",
    "llmops_cli/**/*.py",
    "scripts/*",
    "schemas/*.json",
]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_pyproject_names_llmops_cli_and_its_extras_refer_to_it() -> None:
    project = _pyproject()["project"]
    assert project["name"] == DIST
    assert project["scripts"] == {"llmops": "llmops_cli.__main__:main"}  # the command keeps its name
    self_refs = [r for reqs in project["optional-dependencies"].values() for r in reqs if r.startswith("llmops")]
    assert self_refs and all(r.startswith(f"{DIST}[") for r in self_refs)


def test_code_uses_the_installed_distribution_name() -> None:
    from importlib import metadata

    from llmops_cli.errors import MissingDependencyError
    from llmops_cli.package.requirements import DIST_NAME
    from llmops_cli.versioning.artifacts import library_versions

    assert DIST_NAME == DIST and metadata.version(DIST)
    assert library_versions()["llmops"] == metadata.version(DIST)  # recorded under the key it always had
    hint = MissingDependencyError("chromadb", extra="rag", purpose="Retrieval").hint or ""
    assert "pip install 'llmops-cli[rag]'" in hint


@pytest.mark.parametrize(
    "text",
    [
        'pip install "llmops[all]"',
        "pip install llmops",
        "pip install -U llmops\n",
        "  - llmops==0.1.0",
        "'llmops[rag]'",
    ],
)
def test_the_scan_catches_the_squatted_name(text: str) -> None:
    assert SQUATTED.search(text)


@pytest.mark.parametrize(
    "text",
    [
        'pip install "llmops-cli[all]"',
        "pip install llmops_cli-0.1.0-py3-none-any.whl",
        "llmops validate",
        "llmops-dev/llmops@v0",
    ],
)
def test_the_scan_lets_the_right_name_through(text: str) -> None:
    assert not SQUATTED.search(text)


def test_no_shipped_text_installs_the_squatted_name() -> None:
    found = []
    seen: set[Path] = set()
    for pattern in SHIPPED:
        for path in sorted(REPO_ROOT.glob(pattern)):
            if not path.is_file() or path in seen or "__pycache__" in path.parts:
                continue
            seen.add(path)
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for lineno, line in enumerate(text.splitlines(), 1):
                if SQUATTED.search(line):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()}")
    assert len(seen) > 50  # the globs did find the files
    assert not found, "these tell users to install the unrelated 'llmops' distribution:\n" + "\n".join(found)


def test_generated_bundle_files_install_the_bundled_wheel() -> None:
    from llmops_cli.package.requirements import llmops_wheel, requirements_text

    name, data = llmops_wheel()
    assert name.startswith("llmops_cli-") and name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as wheel:
        (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        assert meta.startswith("llmops_cli-")
        assert "\nName: llmops-cli\n" in wheel.read(meta).decode()
    text = requirements_text({"llmops-cli": "0.1.0", "pyyaml": "6.0.2"}, name)
    assert f"./wheels/{name}" in text and "llmops-cli==" not in text and not SQUATTED.search(text)


def test_init_template_readme_names_the_distribution(project: Path) -> None:
    readme = (project / "README.md").read_text()
    assert 'pip install "llmops-cli[all]"' in readme


@pytest.mark.slow
def test_built_wheel_installs_a_working_llmops_in_a_fresh_venv(tmp_path: Path, built_wheel: Path) -> None:
    wheel = built_wheel
    assert wheel.name.startswith("llmops_cli-")
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata_text = archive.read(meta).decode()
    assert "\nName: llmops-cli\n" in metadata_text
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata_text, flags=re.M)
    # hatchling inlines the self-referencing extras (llmops-cli[models]): nothing may name the squatted llmops
    assert "torch>=2.4; extra == 'all'" in requires
    assert not any(re.match(r"llmops(?![-_])", r) for r in requires)

    python = venv_with_wheel(tmp_path / "venv", wheel)
    # The core dependencies come from this environment (no network in tests); llmops itself from the wheel.
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(fresh_site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    llmops = python.with_name("llmops")
    version = subprocess.run([str(llmops), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("llmops "), version.stdout + version.stderr
    probe = "import importlib.metadata as m, llmops_cli as c; print(c.__file__, m.version('llmops-cli'))"
    where = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert where.returncode == 0 and where.stdout.startswith(fresh_site), where.stdout + where.stderr
    init = subprocess.run([str(llmops), "init", "proj"], capture_output=True, text=True, cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    workflow = (tmp_path / "proj" / ".github" / "workflows" / "llmops.yml").read_text()
    assert 'pip install "llmops-cli[all]"' in workflow
    for command in (["validate"], ["prompt", "lint"]):
        done = subprocess.run([str(llmops), *command], capture_output=True, text=True, cwd=tmp_path / "proj")
        assert done.returncode == 0, done.stdout + done.stderr
