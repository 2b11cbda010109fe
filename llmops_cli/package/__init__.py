"""Packages: one reproducible, verifiable ``.tar.gz`` that is a servable mini llmops project.

    result = build_package(config, "support-bot")      # llmops package support-bot
    report = verify_package(result.archive)             # llmops package verify FILE
    manifest = read_manifest(result.archive)            # llmops package inspect FILE
    root = unpack(result.archive, Path("app"))          # safe extraction
    prepare_bundle(root)                                # index into the local store, weights ready

Importing this package is cheap: torch, transformers and chromadb load only inside the functions
that need them.
"""

from typing import TYPE_CHECKING

from llmops_cli.lazy import exports

if TYPE_CHECKING:
    from llmops_cli.package.archive import (
        DEFAULT_LIMITS,
        PackageIntegrityError,
        PackageLimitError,
        ReadLimits,
        UnsafeArchiveError,
    )
    from llmops_cli.package.build import PackageResult, build_package
    from llmops_cli.package.bundle import PackagePlan, plan_package
    from llmops_cli.package.prepare import PrepareResult, prepare_bundle
    from llmops_cli.package.unpacking import unpack
    from llmops_cli.package.verify import VerifyReport, read_manifest, verify_package, verify_tree

__all__ = [
    "DEFAULT_LIMITS",
    "PackageLimitError",
    "ReadLimits",
    "PackageIntegrityError",
    "PackagePlan",
    "PackageResult",
    "PrepareResult",
    "UnsafeArchiveError",
    "VerifyReport",
    "build_package",
    "plan_package",
    "prepare_bundle",
    "read_manifest",
    "unpack",
    "verify_package",
    "verify_tree",
]

# Each submodule loads when one of its names is first used (llmops_cli.lazy).
__getattr__, __dir__ = exports(
    __name__,
    {
        "llmops_cli.package.archive": (
            "DEFAULT_LIMITS",
            "PackageIntegrityError",
            "PackageLimitError",
            "ReadLimits",
            "UnsafeArchiveError",
        ),
        "llmops_cli.package.build": ("PackageResult", "build_package"),
        "llmops_cli.package.bundle": ("PackagePlan", "plan_package"),
        "llmops_cli.package.prepare": ("PrepareResult", "prepare_bundle"),
        "llmops_cli.package.unpacking": ("unpack",),
        "llmops_cli.package.verify": ("VerifyReport", "read_manifest", "verify_package", "verify_tree"),
    },
)
