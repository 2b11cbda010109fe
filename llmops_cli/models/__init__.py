"""Models: where weights come from (embedded defaults, HF folders, GGUF, hub cache, remote APIs).

:func:`resolve` is cheap and never imports torch; :func:`materialize` and :func:`load_model` do the
heavy work (dequantizing a GGUF once, loading with transformers), importing torch only when called.
"""

from llmops_cli.models.embedded import EMBEDDED_MODELS, EmbeddedModel
from llmops_cli.models.fingerprint import fingerprint, folder_fingerprint
from llmops_cli.models.materialize import load_model, materialize, materialize_resolved, torch_dtype
from llmops_cli.models.resolver import (
    ModelKind,
    ResolvedModel,
    find_hub_snapshot,
    hf_hub_cache_dir,
    list_models,
    resolve,
)

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "ModelKind",
    "ResolvedModel",
    "find_hub_snapshot",
    "fingerprint",
    "folder_fingerprint",
    "hf_hub_cache_dir",
    "list_models",
    "load_model",
    "materialize",
    "materialize_resolved",
    "resolve",
    "torch_dtype",
]
