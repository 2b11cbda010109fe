"""``llmops serve --package ARCHIVE``: the archive unpacked once per content, checked and prepared."""

from __future__ import annotations

from pathlib import Path


def default_unpack_dir(archive: Path) -> Path:
    """A folder per archive content under ``LLMOPS_HOME/packages``, so a re-run reuses it."""
    from llmops_cli.models.hashing import file_sha256
    from llmops_cli.paths import llmops_home

    return llmops_home() / "packages" / f"{archive.name.split('.')[0]}-{file_sha256(archive)[:16]}"


def is_unpacked(folder: Path) -> bool:
    return (folder / "llmops.yaml").is_file()


def unpack_for_serving(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` (every file checked against the manifest as it is written), or,
    when it is already there, check the folder against its manifest; then load the vector indexes into
    the local store and make the model weights ready to load. Returns the folder."""
    from llmops_cli.package.prepare import prepare_bundle
    from llmops_cli.package.unpacking import unpack

    verify = is_unpacked(dest)
    if not verify:
        dest = Path(unpack(archive, dest))
    prepare_bundle(dest, verify=verify)
    return dest
