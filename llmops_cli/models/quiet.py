"""Library chatter that is not the user's concern, silenced once per process."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Silence library chatter that is not the user's concern in a CLI run.

    bitsandbytes warns on CPUs with AVX512-BF16 that the optional ``kernels`` package (which would
    download a kernel from the Hub) is missing, and falls back to its built-in kernel: that is what we
    want offline. peft reads a transformers attribute that transformers 5 deprecated.
    """
    import logging
    import warnings

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
