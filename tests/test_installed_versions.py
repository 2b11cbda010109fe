"""llmops_cli.versioning.installed answers exactly as importlib.metadata.version, without importing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from llmops_cli.versioning import installed
from llmops_cli.versioning.artifacts import _DISTRIBUTIONS, TRACKED_LIBRARIES, library_versions


def test_every_installed_distribution_has_importlibs_version() -> None:
    names = {dist.metadata["Name"] for dist in metadata.distributions()}
    assert len(names) > 20
    for name in sorted(names):
        for spelling in (name, name.upper(), name.replace("-", "_"), name.replace("_", ".")):
            assert installed.version(spelling) == metadata.version(spelling), spelling
    assert installed.installed_versions(sorted(names)) == {n: metadata.version(n) for n in sorted(names)}


def test_a_missing_name_raises_importlibs_error_and_is_left_out() -> None:
    missing = "llmops-surely-not-installed"
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version(missing)
    with pytest.raises(metadata.PackageNotFoundError) as raised:
        installed.version(missing)
    assert str(raised.value) == str(metadata.PackageNotFoundError(missing))
    assert installed.installed_versions([missing, "pytest"]) == {"pytest": metadata.version("pytest")}
    assert installed._lookup(missing) is None  # known to be missing without asking importlib.metadata
    assert "llmops" in library_versions(("llmops", "llmops-surely-not-installed"))


def _dist_info(folder: Path, name: str, text: str) -> Path:
    info = folder / name
    info.mkdir(parents=True)
    (info / "METADATA").write_text(text, encoding="utf-8")
    return info


def test_a_folder_put_on_sys_path_is_found_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dist_info(tmp_path, "Fake_Dist-2.0.dist-info", "Metadata-Version: 2.1\nName: fake-dist\nVersion: 2.0.post1\n")
    _dist_info(tmp_path, "pytest-0.0.1.dist-info", "Metadata-Version: 2.1\nName: pytest\nVersion: 0.0.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("fake-dist", "FAKE.dist", "fake__dist", "pytest"):
        assert installed.version(name) == metadata.version(name)
    assert installed.version("fake-dist") == "2.0.post1"  # from METADATA, not the folder's name
    assert installed.version("pytest") == "0.0.1"  # the first sys.path entry wins
    _dist_info(tmp_path, "later-3.dist-info", "Name: later\nVersion: 3\n")
    mtime = tmp_path.stat().st_mtime_ns + 2_000_000_000  # past the clock tick both caches might share
    os.utime(tmp_path, ns=(mtime, mtime))  # the folder changed: listed again
    assert installed.version("later") == metadata.version("later") == "3"


@pytest.mark.parametrize(
    "text",
    [
        "Name: odd\nVersion:   1.0 \nSummary: trailing blanks are kept\n",
        "Name: odd\nVersion: 1.0\n  folded\n",
        "Name: odd\n\nVersion: 1.0\n",
        "Name: odd\nSummary: no version\n",
        "From someone\nVersion: 1.0\n",
        "Bad Name: x\nVersion: 1.0\n",
        "version: 1.0\nVersion: 2.0\n",
        "\ufeffMetadata-Version: 2.1\nVersion: 1.0\n",
        "Name: odd\r\nVersion: 1.0\r\n",
        "",
    ],
)
def test_unusual_metadata_gets_importlibs_answer(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = _dist_info(tmp_path, "odd-1.0.dist-info", text)
    if not text:
        (info / "PKG-INFO").write_text("Name: odd\nVersion: 4.0\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed.version("odd") == metadata.version("odd")


def test_egg_info_folder_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eggy.egg-info").mkdir()
    (tmp_path / "eggy.egg-info" / "PKG-INFO").write_text("Name: eggy\nVersion: 0.3\n", encoding="utf-8")
    (tmp_path / "old-1.0-py3.11.egg-info").write_text("Name: old\nVersion: 1.0\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed.version("eggy") == metadata.version("eggy") == "0.3"
    assert installed.version("old") == metadata.version("old") == "1.0"


def test_library_versions_matches_importlib() -> None:
    expected = {}
    for name in TRACKED_LIBRARIES:
        try:
            expected[name] = metadata.version(_DISTRIBUTIONS.get(name, name))
        except metadata.PackageNotFoundError:
            continue
    assert library_versions() == expected


def test_library_versions_does_not_import_importlib_metadata() -> None:
    script = (
        "import json, sys\n"
        "from llmops_cli.versioning.artifacts import TRACKED_LIBRARIES, _DISTRIBUTIONS, library_versions\n"
        "from llmops_cli.versioning.installed import _lookup\n"
        "found = {n: _lookup(_DISTRIBUTIONS.get(n, n)) for n in TRACKED_LIBRARIES}\n"
        "exact = all(v is None or isinstance(v, str) for v in found.values())\n"
        "versions = library_versions()\n"
        "print(json.dumps([exact, 'importlib.metadata' in sys.modules, versions]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    exact, imported, versions = json.loads(out)
    assert exact, "every tracked library should be answered by the scan"
    assert not imported
    assert versions == library_versions()
