"""Prompt files: read, validate and type one prompt (``prompts/*.yaml``) into a :class:`PromptSpec`.

The same parser reads a prompt from the work tree (:func:`load_prompt`) and from file contents taken
from a git revision (:func:`parse_prompt_text`, used by ``prompt diff``), so both sides of a diff are
understood exactly alike. Few-shot example rows are read lazily, on first use, through a reader
callable, which is how a revision's examples file is read without touching the work tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import ConfigError, UsageError
from llmops_cli.generation import GenerationParams, Message
from llmops_cli.memo import Memo

if TYPE_CHECKING:
    from llmops_cli.config import ProjectConfig
    from llmops_cli.config.yamlpos import Located

VARIABLE_TYPES = ("string", "integer", "number", "boolean", "list", "object")
TEXT_FIELDS = ("system", "template")

# Reads a project-relative path and returns its text, or None when the file does not exist.
TextReader = Callable[[str], "str | None"]


@dataclass(frozen=True)
class VariableSpec:
    """A declared prompt variable. ``needs_value``: callers must supply it (required, no default)."""

    name: str
    type: str = "string"
    required: bool = True
    default: Any = None
    has_default: bool = False
    description: str | None = None

    @property
    def needs_value(self) -> bool:
        return self.required and not self.has_default

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class PromptSpec:
    """One prompt file, typed. Exactly one of ``template`` or ``messages`` is set."""

    name: str
    file: str
    description: str | None
    model: str | None
    system: str | None
    template: str | None
    messages: tuple[Message, ...] | None
    variables: dict[str, VariableSpec]
    params: GenerationParams
    examples_file: str | None
    # `params:` as written in the file (``params`` adds the defaults): what show and diff print.
    declared_params: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # False when the file has no `variables:` section: they were inferred from the templates.
    variables_declared: bool = True
    read_text: TextReader | None = field(default=None, repr=False, compare=False)
    _examples: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """Few-shot rows (the variables plus ``output``), read from ``examples_file`` on first use."""
        if self._examples is None:
            self._examples = self._load_examples()
        return self._examples

    def _load_examples(self) -> list[dict[str, Any]]:
        if not self.examples_file:
            return []
        text = self.read_text(self.examples_file) if self.read_text else None
        if text is None:
            raise ConfigError(
                f"prompt '{self.name}' ({self.file}): examples file '{self.examples_file}' does not exist",
                hint="Create it (JSONL: one object per line with the variables plus 'output') or remove `examples:`.",
            )
        return parse_examples(text, file=self.examples_file)

    def sources(self) -> dict[str, str]:
        """Every Jinja source of the prompt by a readable key: system, template, messages[i]."""
        out: dict[str, str] = {}
        if self.system is not None:
            out["system"] = self.system
        if self.template is not None:
            out["template"] = self.template
        for i, message in enumerate(self.messages or ()):
            out[f"messages[{i}]"] = message["content"]
        return out

    def referenced_variables(self) -> set[str]:
        """Names the templates read from the caller (Jinja's own loop and ``set`` names excluded)."""
        from llmops_cli.prompts.render import template_variables

        names: set[str] = set()
        for source in self.sources().values():
            names |= template_variables(source)
        return names


def parse_examples(text: str, *, file: str) -> list[dict[str, Any]]:
    """JSONL rows; each must be an object with an ``output`` string. Errors name file and line."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{file}:{lineno}:{exc.colno}: invalid JSON: {exc.msg}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{file}:{lineno}:1: each line must be a JSON object")
        elif not isinstance(row.get("output"), str):
            problems.append(f"{file}:{lineno}:1: missing 'output' (the expected answer, a string)")
        else:
            rows.append(row)
    if problems:
        raise ConfigError(f"{file}: {len(problems)} invalid few-shot example row(s)", problems=problems)
    return rows


def _variables(raw: Any) -> dict[str, VariableSpec]:
    out: dict[str, VariableSpec] = {}
    for name, spec in (raw or {}).items():
        spec = spec or {}
        out[name] = VariableSpec(
            name=name,
            type=spec.get("type", "string"),
            required=bool(spec.get("required", True)),
            default=spec.get("default"),
            has_default="default" in spec,
            description=spec.get("description"),
        )
    return out


def syntax_problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Jinja syntax errors of every template in ``data``, as (key path, message)."""
    from llmops_cli.prompts.render import environment

    found: list[tuple[tuple[str | int, ...], str]] = []
    sources: list[tuple[tuple[str | int, ...], Any]] = [((key,), data.get(key)) for key in TEXT_FIELDS]
    for i, message in enumerate(data.get("messages") or []):
        if isinstance(message, dict):
            sources.append((("messages", i, "content"), message.get("content")))
    for path, source in sources:
        if not isinstance(source, str):
            continue
        key = PARSED.key(source)
        if PARSED.get(key):
            continue
        from jinja2 import TemplateSyntaxError

        try:
            environment().parse(source)
        except TemplateSyntaxError as exc:
            found.append((path, f"Jinja syntax error on template line {exc.lineno}: {exc.message}"))
        else:
            PARSED.put(key, True)
    return found


# Templates that Jinja parsed (see llmops_cli.memo): validating them again needs no jinja2.
PARSED = Memo("jinja-parsed", code=[__file__, str(Path(__file__).with_name("sandbox.py"))], libraries=["jinja2"])


def _check(located: Located, display: str, env: Mapping[str, str] | None) -> dict[str, Any]:
    """Expand ``${VAR}`` (when ``env`` is given), check the schema and Jinja syntax; raise all problems."""
    from llmops_cli.config.envvars import expand, missing_message
    from llmops_cli.config.problems import ProblemList
    from llmops_cli.config.schema_check import check
    from llmops_cli.resources import load_schema

    problems = ProblemList(located, display)
    data = located.data
    if not isinstance(data, dict):
        problems.add((), "the file must contain a mapping at top level")
    else:
        if env is not None:

            def missing(path: tuple[str | int, ...], name: str) -> None:
                problems.add(path, missing_message(name))  # names the allow-list that refused it

            data = expand(data, env=env, on_missing=missing)
        check(data, load_schema("prompt"), problems)
        if not problems.items:
            for path, message in syntax_problems(data):
                problems.add(path, message)
    if problems.items:
        count = len(problems.items)
        raise ConfigError(
            f"prompt file {display} is invalid: {count} problem{'s' if count != 1 else ''}",
            problems=[str(p) for p in sorted(problems.items)],
            hint="Fix the problems above; 'llmops schema --prompt' prints the prompt-file schema.",
        )
    return data


def _build(data: dict[str, Any], *, name: str, file: str, read_text: TextReader | None) -> PromptSpec:
    messages = data.get("messages")
    spec = PromptSpec(
        name=name,
        file=file,
        description=data.get("description"),
        model=data.get("model"),
        system=data.get("system"),
        template=data.get("template"),
        messages=tuple({"role": m["role"], "content": m["content"]} for m in messages) if messages else None,
        variables=_variables(data.get("variables")),
        params=GenerationParams.from_dict(data.get("params")),
        examples_file=data.get("examples"),
        declared_params=dict(data.get("params") or {}),
        variables_declared="variables" in data,
        read_text=read_text,
    )
    if not spec.variables_declared:  # no `variables:`: every name the templates read is a required string
        spec.variables = {n: VariableSpec(n) for n in sorted(spec.referenced_variables())}
    return spec


def parse_prompt(data: dict[str, Any], *, name: str, file: str, read_text: TextReader | None = None) -> PromptSpec:
    """Validate a prompt file's mapping (schema + Jinja syntax) and type it.

    ``read_text`` reads the few-shot examples file (a project-relative path) when first needed.
    Raises :class:`ConfigError` listing every problem.
    """
    from llmops_cli.config.yamlpos import Located

    data = _check(Located(data=data, file=file), file, None)
    return _build(data, name=name, file=file, read_text=read_text)


def parse_prompt_text(
    text: str,
    *,
    name: str,
    file: str,
    read_text: TextReader | None = None,
    env: Mapping[str, str] | None = None,
) -> PromptSpec:
    """Parse a prompt file's YAML text (from disk or a git revision), with positions in errors.

    ``env``: expand ``${VAR}`` from it as ``llmops validate`` does; None leaves the text as written.
    """
    from llmops_cli.config.yamlpos import YamlLoadError, loads_located

    try:
        located = loads_located(text, file=file)
    except YamlLoadError as exc:
        raise ConfigError(
            f"prompt file {file} is not valid YAML", problems=[f"{file}:{exc.line}:{exc.column}: (file): {exc}"]
        ) from None
    data = _check(located, file, env)
    return _build(data, name=name, file=file, read_text=read_text)


def disk_reader(root: Path) -> TextReader:
    """A :data:`TextReader` over the work tree of the project at ``root``."""

    def read(relative: str) -> str | None:
        path = Path(relative) if Path(relative).is_absolute() else root / relative
        try:
            return path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    return read


def load_prompt(config: ProjectConfig, name: str) -> PromptSpec:
    """The prompt ``name`` declared in ``config``, read from the work tree and validated."""
    import os

    from llmops_cli.config.problems import did_you_mean
    from llmops_cli.config.yamlpos import MAX_FILE_BYTES

    ref = config.prompts.get(name)
    if ref is None:
        declared = ", ".join(sorted(config.prompts)) or "none"
        raise UsageError(
            f"unknown prompt '{name}'{did_you_mean(name, config.prompts)}; declared: {declared}",
            hint="Prompts are declared under `prompts:` in llmops.yaml ('llmops prompt list' shows them).",
        )
    path = config.resolve_path(ref.file)
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"prompt file {ref.file} is larger than {MAX_FILE_BYTES} bytes")
    text = disk_reader(config.root)(ref.file)
    if text is None:
        raise ConfigError(
            f"prompt '{name}': file {ref.file} does not exist", hint="Create it, or fix `file:` in llmops.yaml."
        )
    return parse_prompt_text(text, name=name, file=ref.file, read_text=disk_reader(config.root), env=os.environ)
