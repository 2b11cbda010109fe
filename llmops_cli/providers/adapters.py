"""LoRA adapters on a loaded model: the one place providers, quantize and tune check and attach them.

:func:`check_adapter_folder` fails early (before any weights load) with what to do when a folder is
not a loadable PEFT adapter; :func:`with_adapter` wraps a loaded transformers model with one.
peft is imported inside :func:`with_adapter` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops_cli.errors import UnavailableError, UsageError, require
from llmops_cli.filenames import ADAPTER_CONFIG, ADAPTER_WEIGHTS_PREFIX


def check_adapter_folder(path: Path) -> None:
    """Fail early, with what to do, when ``path`` is not a loadable PEFT adapter folder."""
    if not path.is_dir():
        raise UsageError(f"No adapter folder at {path}.", hint="Point the adapter at a folder made by 'llmops tune'.")
    if not (path / ADAPTER_CONFIG).is_file():
        raise UsageError(
            f"{path} has no {ADAPTER_CONFIG}, so it is not a PEFT (LoRA) adapter folder.",
            hint="Use the folder 'llmops tune' or peft's save_pretrained() wrote.",
        )
    weights = [p for p in path.iterdir() if p.name.startswith(ADAPTER_WEIGHTS_PREFIX)]
    if weights and all(p.suffix == ".ptr" for p in weights):
        raise UnavailableError(
            f"The adapter weights in {path} are in the content store, not in the work tree.",
            hint="Run 'llmops pull' (or 'llmops checkout') to fetch them.",
        )


def with_adapter(model: Any, adapter_path: Path) -> Any:
    """``model`` wrapped with the LoRA adapter in ``adapter_path`` (not merged, in eval mode)."""
    require("peft", extra="tune", purpose="Loading a LoRA adapter")
    from llmops_cli.models.quiet import quiet_libraries

    quiet_libraries()  # before peft imports bitsandbytes, which logs at import time
    from peft import PeftModel

    try:
        wrapped = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=False)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        raise UsageError(
            f"Cannot load the adapter in {adapter_path} onto this model: {error}",
            hint="Was the adapter trained on this base model? Check 'base:' of the adapter entry.",
        ) from error
    wrapped.eval()
    return wrapped
