"""``llmops prompt``: list, show, render and diff the project's prompt files."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from llmops_cli.cli import output, prompt_diff
from llmops_cli.cli.base import LlmopsTyper
from llmops_cli.cli.options import JsonOpt, VarOpt, VarsFileOpt, parse_vars
from llmops_cli.cli.state import STATE

app = LlmopsTyper(help="Prompts as code: list, show, render, lint and diff prompt files.")

NameArg = Annotated[str, typer.Argument(help="Prompt name (under `prompts:` in llmops.yaml).", show_default=False)]


def _variables_summary(spec: Any) -> str:
    parts = []
    for v in spec.variables.values():
        parts.append(f"{v.name}{'*' if v.needs_value else ''}: {v.type}")
    return ", ".join(parts)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Show each prompt: file, variables (* = required), default model and description."""
    from llmops_cli.prompts import load_prompt

    cfg = STATE.config()
    rows = []
    for name, ref in cfg.prompts.items():
        spec = load_prompt(cfg, name)
        rows.append(
            {
                "name": name,
                "file": ref.file,
                "variables": [{"name": v.name, **v.as_dict()} for v in spec.variables.values()],
                "model": spec.model,
                "description": ref.description or spec.description or "",
                "_summary": _variables_summary(spec),
            }
        )
    if json_out:
        output.print_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return
    if not rows:
        output.info("no prompts declared (add them under `prompts:` in llmops.yaml)")
        return
    table = [[r["name"], r["file"], r["_summary"], r["model"] or "—", r["description"]] for r in rows]
    output.table(None, ["prompt", "file", "variables", "model", "description"], table)


@app.command()
def show(name: NameArg, json_out: JsonOpt = False) -> None:
    """Show a prompt file with its variables, params and what depends on it."""
    from llmops_cli.cli import prompt_view
    from llmops_cli.prompts import find_dependents, load_prompt

    cfg = STATE.config()
    spec = load_prompt(cfg, name)
    deps = find_dependents(cfg.data, name)
    if json_out:
        output.print_json(
            {
                "name": spec.name,
                "file": spec.file,
                "description": spec.description,
                "model": spec.model,
                "variables": [{"name": v.name, **v.as_dict()} for v in spec.variables.values()],
                "params": spec.declared_params,
                "examples": spec.examples_file,
                "dependents": deps.as_dict(),
            }
        )
        return
    text = cfg.resolve_path(spec.file).read_text(encoding="utf-8")
    prompt_view.show_prompt(spec, text, deps)


def _tokenizer(cfg: Any, model: str) -> Any:
    """The tokenizer of a local model (a quantized variant uses its base model's)."""
    from llmops_cli.errors import UsageError, require

    if model in cfg.quantized:
        model = cfg.quantized[model].model
    if model not in cfg.models:
        raise UsageError(f"unknown model '{model}'; declared: {', '.join(cfg.models) or 'none'}")
    spec = cfg.models[model]
    if spec.is_remote:
        raise UsageError(
            f"model '{model}' is remote ({spec.provider}); its chat template is applied by the server",
            hint="Use --model with a local model (one with 'source:') to see the exact text.",
        )
    require("transformers", extra="models", purpose="--chat-template")
    from llmops_cli.data.tokens import load_tokenizer

    with output.err_console().status(f"loading the tokenizer of {model}"):
        return load_tokenizer(cfg, model)  # offline, with llmops.yaml's chat_template as the model uses it


@app.command("render")
def render_(
    name: NameArg,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    json_out: JsonOpt = False,
    chat_template: Annotated[
        bool,
        typer.Option("--chat-template", help="Print the exact text the model sees (applies its chat template)."),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model whose chat template to use (default: the prompt's).")
    ] = None,
    no_examples: Annotated[bool, typer.Option("--no-examples", help="Leave out the few-shot examples.")] = False,
) -> None:
    """Render a prompt with variables and print the messages (or, with --chat-template, the text)."""
    from llmops_cli.errors import UsageError
    from llmops_cli.prompts import load_prompt, render, to_prompt_text

    cfg = STATE.config()
    spec = load_prompt(cfg, name)
    messages = render(spec, parse_vars(var, vars_file), include_examples=not no_examples)
    text = None
    if chat_template:
        model_name = model or spec.model
        if not model_name:
            raise UsageError(f"prompt '{name}' names no model", hint="Pass --model NAME.")
        text = to_prompt_text(messages, _tokenizer(cfg, model_name))
    if json_out:
        output.print_json({"prompt": name, "messages": messages, **({"text": text} if text is not None else {})})
        return
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from rich.markup import escape
    from rich.rule import Rule

    con = output.console()
    for message in messages:
        con.print(Rule(f"[bold]{message['role']}[/bold]", align="left"))
        con.print(escape(message["content"]))


@app.command()
def lint(
    names: Annotated[
        list[str] | None, typer.Argument(help="Prompts to lint (default: every prompt).", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Render every prompt with its declared examples and variable types, no model needed; exit 2 on a failure.

    Each prompt is rendered with only its required variables, with all of them, and with each
    few-shot example row; values come from defaults, then examples, then a sample of the declared
    type. Also warns about declared variables no template uses. The pre-commit hook llmops-prompt-lint.
    """
    from llmops_cli.errors import ConfigError
    from llmops_cli.prompts.lint import lint_prompts
    from llmops_cli.text import plural

    results = lint_prompts(STATE.config(), names or None)
    failed = [r for r in results if not r.ok]
    if json_out:
        output.print_json([r.as_dict() for r in results])
    else:
        for r in results:
            for warning in r.warnings:
                output.warn(f"{r.name} ({r.file}): {warning}")
            if r.ok:
                output.success(f"{r.name} ({r.file}): renders ({plural(r.renders, 'render')})")
        if not results:
            output.info("no prompts declared (add them under `prompts:` in llmops.yaml)")
    if failed:
        problems = [f"{r.name} ({r.file}): {e}" for r in failed for e in r.errors]
        raise ConfigError(
            f"{plural(len(failed), 'prompt')} failed to render",
            problems=problems,
            hint="Declare or guard the variables named above (`{% if name is defined %}`), fix the example rows, "
            "then rerun 'llmops prompt lint'.",
        )


app.command()(prompt_diff.diff)
