"""Model providers: one interface for text generation, used by chains, eval and serving.

``get_provider(config, "base")`` gives a :class:`~llmops_cli.generation.Provider` for a ``models:``
entry: :class:`LocalProvider` (transformers, batched, optional LoRA adapter) for local sources,
:class:`OpenAIProvider` (stdlib HTTP) for ``provider: openai``. Importing this package is cheap:
torch and transformers load on the first local ``generate``.
"""

from llmops_cli.providers.adapters import check_adapter_folder, with_adapter
from llmops_cli.providers.common import ProgressCallback, cut_at_stop, plan_batches, transcript
from llmops_cli.providers.factory import clear_provider_cache, get_provider
from llmops_cli.providers.local import LocalProvider
from llmops_cli.providers.openai_http import OpenAIProvider

__all__ = [
    "LocalProvider",
    "OpenAIProvider",
    "ProgressCallback",
    "check_adapter_folder",
    "clear_provider_cache",
    "cut_at_stop",
    "get_provider",
    "plan_batches",
    "transcript",
    "with_adapter",
]
