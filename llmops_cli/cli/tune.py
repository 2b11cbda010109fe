"""``llmops tune``: train LoRA/QLoRA adapters, and merge them into their base model.

``llmops tune ADAPTER`` is short for ``llmops tune run ADAPTER``: the group inserts ``run`` when the
first word is not one of its commands, so ``llmops tune merge ADAPTER`` and ``llmops tune ADAPTER``
both read the way people type them (an adapter named ``merge`` or ``run`` needs the explicit form).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from llmops_cli.cli import output, render_tune
from llmops_cli.cli.base import LlmopsTyper, default_command_group
from llmops_cli.cli.options import AllowModelCodeOpt, JsonOpt, consent_to_code
from llmops_cli.cli.state import STATE

app = LlmopsTyper(
    cls=default_command_group("run"),
    help="Train LoRA/QLoRA adapters (`llmops tune ADAPTER` is short for `llmops tune run ADAPTER`) "
    "and merge them into their base model.",
)


class Launcher(str, Enum):
    single = "single"
    accelerate = "accelerate"


@app.command("run")
def run(
    adapter: Annotated[str, typer.Argument(help="Adapter entry (under adapters: in llmops.yaml) to train.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last unfinished run from its last checkpoint.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (parameters, tokens, steps, memory) and stop.")
    ] = False,
    launcher: Annotated[
        Launcher | None,
        typer.Option("--launcher", help="single: this process; accelerate: `accelerate launch` (default: yaml)."),
    ] = None,
    num_processes: Annotated[
        int | None,
        typer.Option(
            "--num-processes", min=1, help="Processes for --launcher accelerate: one per GPU, or CPU processes."
        ),
    ] = None,
    accelerate_config: Annotated[
        Path | None, typer.Option("--accelerate-config", help="An `accelerate config` file (FSDP, DeepSpeed...).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Override training.max_steps.")] = None,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train an adapter and register it as adapter/NAME/vN (Ctrl-C saves a checkpoint; --resume continues)."""
    from llmops_cli.tune import choose_launch, launch_tune, parse_tune_config, plan_tune, run_tune

    consent_to_code(allow_code)
    cfg = STATE.config()
    tune = parse_tune_config(cfg, adapter)
    launch = choose_launch(
        cfg, tune, launcher=launcher.value if launcher else None, num_processes=num_processes,
        config_file=accelerate_config,
    )  # fmt: skip
    if dry_run:
        plan = plan_tune(
            cfg, tune, max_steps=max_steps, num_processes=launch.num_processes or 1, launcher=launch.kind,
            config_file=launch.config_file,
        )  # fmt: skip
        output.print_json(plan.as_dict()) if json_out else render_tune.print_plan(plan)
        return
    if launch.kind == "accelerate":
        result = launch_tune(
            cfg, tune, resume=resume, max_steps=max_steps, num_processes=launch.num_processes,
            config_file=launch.config_file, echo=output.info,
        )  # fmt: skip
    else:
        with render_tune.train_progress(adapter, enabled=not (json_out or STATE.quiet)) as report:
            result = run_tune(cfg, tune, resume=resume, max_steps=max_steps, progress=report)
    if json_out:
        output.print_json(result.as_dict())
        return
    render_tune.print_result(result)


@app.command("merge")
def merge(
    adapter: Annotated[str, typer.Argument(help="Adapter whose checked-out version is merged.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write (default: .llmops/merged/ADAPTER).")
    ] = None,
    dequantize: Annotated[
        bool, typer.Option("--dequantize", help="For a QLoRA adapter: merge into the full-precision base.")
    ] = False,
    allow_code: AllowModelCodeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Merge an adapter into its base model and save the result as a safetensors Hugging Face folder."""
    from llmops_cli.tune import merge_adapter

    consent_to_code(allow_code)
    cfg = STATE.config()
    if dequantize:
        output.info(f"{adapter}: loading the base model in full precision and merging there (--dequantize)")
    result = merge_adapter(cfg, adapter, output=output_dir.resolve() if output_dir else None, dequantize=dequantize)
    if json_out:
        output.print_json(result.as_dict())
        return
    what = f"{result.version or adapter} + {result.base}"
    output.success(f"merged {what} ({result.dtype}) into {result.output} in {result.seconds:.1f} s")
