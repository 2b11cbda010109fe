"""Well-known file names inside model, adapter and tokenizer folders (Hugging Face and PEFT layouts).

One place for the names many modules look for, so a check like "is this an adapter folder" reads
the same everywhere. Artifact manifests (``artifact.json``) belong to :mod:`llmops_cli.versioning`
(``versioning.artifacts.MANIFEST``).
"""

from __future__ import annotations

MODEL_CONFIG = "config.json"  # a Hugging Face model folder's architecture and sizes
TOKENIZER_CONFIG = "tokenizer_config.json"
ADAPTER_CONFIG = "adapter_config.json"  # what makes a folder a PEFT (LoRA) adapter
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # the adapter weights llmops writes
ADAPTER_WEIGHTS_PREFIX = "adapter_model."  # adapter weights in any serialization (.safetensors, .bin)
