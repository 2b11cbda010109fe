"""Inference engines beside transformers, and the CPU budget every engine shares.

* :mod:`~llmops_cli.engines.cpus`: how many CPUs this process may really use, thread settings;
* :mod:`~llmops_cli.engines.llama_cpp`: whether the llama.cpp engine (``llama-cpp-python``) can run
  here, and the exact command that installs it when it cannot;
* :mod:`~llmops_cli.engines.gguf`: GGUF export (llama.cpp's converter) and quantization
  (llama.cpp's own quantizer);
* :mod:`~llmops_cli.engines.install`: ``python -m llmops_cli.engines.install``, which builds
  ``llama-cpp-python`` with portable CPU flags once and caches the wheel.

Nothing here imports torch or llama_cpp at module level.
"""
