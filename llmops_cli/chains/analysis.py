"""What a chain, an adapter or an eval suite will need at run time, checked without running anything.

One analysis, used by ``llmops validate`` (on the work tree, with file:line) and by ``prompt diff``
(on both sides of a change): every chain step's variables against its prompt's declared variables
(required ones missing, unknown ones passed, literal values of the wrong type), every Jinja
reference in a step (``when``, ``query``, ``vars``, ``input``, ``args``) against the chain's inputs
and the outputs of *earlier* steps, adapters against the model they are applied to, and eval
targets against the fields their dataset's rows have.

It works on the plain ``llmops.yaml`` mapping and typed prompt specs, so it needs no model, no
index and no git. Each :class:`Finding` carries the key path in ``llmops.yaml`` it is about.

Steps are named one way everywhere: ``step N (id)``, N 1-based; a step without ``id:`` gets the
id ``KIND-N`` (e.g. ``prompt-2``). The step naming and the prompt-side checks sit below chains, in
:mod:`llmops_cli.prompts.deps` and :mod:`llmops_cli.prompts.checks`, where ``prompt diff`` uses them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.config.chains import DEFAULT_QUERY, STEP_KINDS
from llmops_cli.config.problems import Finding
from llmops_cli.memo import Memo
from llmops_cli.prompts.checks import example_findings, step_variable_findings
from llmops_cli.prompts.deps import (
    KeyPath,
    StepUse,
    chain_steps,
    prompt_steps,
    step_id,
    step_kind,
    step_label,
    step_output_name,
)

if TYPE_CHECKING:
    from llmops_cli.prompts.spec import PromptSpec

__all__ = [
    "STEP_KINDS",
    "Finding",
    "StepUse",
    "analyze_project",
    "chain_findings",
    "example_findings",
    "prompt_steps",
    "step_id",
    "step_kind",
    "step_label",
    "step_output_name",
    "step_variable_findings",
]

MAX_DATASET_ROWS = 200  # rows read to learn a dataset's fields

PromptLookup = Callable[[str], "PromptSpec | None"]


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


# -- references between steps ----------------------------------------------------------------------


def _names(source: str, *, expression: bool = False) -> set[str]:
    """Names a Jinja template (or a bare ``when`` expression) reads, minus ``x is defined`` guards
    (remembered across runs for templates that parse: see :mod:`llmops_cli.memo`)."""
    key = _NAMES.key(source, expression)
    known = _NAMES.get(key)
    if isinstance(known, list):
        return set(known)
    names = _parse_names(source, expression=expression)
    if names is not None:
        _NAMES.put(key, sorted(names))
    return names or set()


_NAMES = Memo(
    "jinja-names",
    code=[__file__, str(Path(__file__).parents[1] / "prompts" / "sandbox.py")],
    libraries=["jinja2"],
)


def _parse_names(source: str, *, expression: bool = False) -> set[str] | None:
    """:func:`_names`, computed; None when the template does not parse."""
    from jinja2 import TemplateSyntaxError, nodes

    from llmops_cli.prompts.sandbox import environment

    text = source.strip()
    if expression:
        if text.startswith("{{") and text.endswith("}}"):
            text = text[2:-2]
        text = "{{ (" + text + ") }}"
    env = environment()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError:
        return None  # a syntax error is reported where the template is rendered
    from jinja2 import meta

    names = set(meta.find_undeclared_variables(ast)) - set(env.globals)
    for test in ast.find_all(nodes.Test):
        if test.name in ("defined", "undefined") and isinstance(test.node, nodes.Name):
            names.discard(test.node.name)
    return names


def _template_fields(step: Mapping[str, Any]) -> Iterator[tuple[KeyPath, str, bool]]:
    """(key path inside the step, source, is-an-expression) of every Jinja field of a step."""
    if isinstance(step.get("when"), str):
        yield ("when",), step["when"], True
    if "retrieve" in step:
        query = step.get("query", DEFAULT_QUERY)
        if isinstance(query, str):
            yield ("query",) if "query" in step else ("retrieve",), query, False
    if "transform" in step:
        for key in ("input", "template"):
            if isinstance(step.get(key), str):
                yield (key,), step[key], False
                break
    for group in ("vars", "args"):
        values = step.get(group)
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, str):
                    yield (group, key), value, False


def chain_findings(data: Mapping[str, Any], chain: str) -> list[Finding]:
    """References in ``chain``'s steps to values that will not exist when the step runs."""
    spec = _section(data, "chains").get(chain)
    if not isinstance(spec, dict):
        return []
    out: list[Finding] = []
    raw_inputs = spec.get("inputs")
    inputs_declared = isinstance(raw_inputs, list)
    inputs = [str(i) for i in raw_inputs] if isinstance(raw_inputs, list) else []
    steps = [s if isinstance(s, dict) else {} for s in chain_steps(spec)]
    outputs = [step_output_name(s) for s in steps]
    producer = {}  # output name -> first step index writing it
    for i, name in enumerate(outputs):
        if name and name not in producer:
            producer[name] = i
    available = list(inputs)
    for index, step in enumerate(steps):
        label = f"chain '{chain}' {step_label(index, step_id(step, index))}"
        base: KeyPath = ("chains", chain, "steps", index)
        for key, source, expression in _template_fields(step):
            for name in sorted(_names(source, expression=expression)):
                if name in available:
                    continue
                later = producer.get(name)
                field = ".".join(str(k) for k in key)
                if later is not None and later >= index:
                    what = "this step" if later == index else step_label(later, step_id(steps[later], later))
                    out.append(
                        Finding(
                            (*base, *key),
                            f"{label} {field} reads '{name}', the output of {what}, which has not run yet "
                            f"(a step sees the chain inputs and earlier steps' outputs: "
                            f"{', '.join(available) or 'none'})",
                            "later_output",
                            name,
                        )
                    )
                elif inputs_declared:
                    from llmops_cli.config.problems import did_you_mean

                    shown = ", ".join(available) or "none"
                    out.append(
                        Finding(
                            (*base, *key),
                            f"{label} {field} reads '{name}', which is neither a chain input nor an earlier "
                            f"step's output{did_you_mean(name, available)}; available: {shown}",
                            "unknown_reference",
                            name,
                        )
                    )
        if outputs[index]:
            available.append(str(outputs[index]))
    result = spec.get("output")
    if isinstance(result, str) and result not in available:
        from llmops_cli.config.problems import did_you_mean

        out.append(
            Finding(
                ("chains", chain, "output"),
                f"chain '{chain}' output '{result}' is no step's output nor a chain input"
                f"{did_you_mean(result, available)}; available: {', '.join(available) or 'none'}",
                "unknown_reference",
                result,
            )
        )
    return out


# -- adapters --------------------------------------------------------------------------------------


def _base_identity(data: Mapping[str, Any], model: str) -> tuple[str, str | None]:
    """(the ``models:`` name underneath ``model`` (a quantized name maps to its model), its source)."""
    quantized = _section(data, "quantized").get(model)
    if isinstance(quantized, dict) and isinstance(quantized.get("model"), str):
        model = quantized["model"]
    spec = _section(data, "models").get(model)
    source = spec.get("source") if isinstance(spec, dict) else None
    return model, str(source) if source is not None else None


def adapter_findings(data: Mapping[str, Any], path: KeyPath, adapter: Any, model: Any, who: str) -> list[Finding]:
    """An adapter applied on ``model`` must have been trained on that model (or on the same weights)."""
    if not isinstance(adapter, str) or not isinstance(model, str):
        return []
    spec = _section(data, "adapters").get(adapter)
    if not isinstance(spec, dict) or not isinstance(spec.get("base"), str):
        return []  # an unknown adapter is reported by the reference checker
    models = _section(data, "models")
    if model not in models and model not in _section(data, "quantized"):
        return []
    remote = models.get(model)
    if isinstance(remote, dict) and "provider" in remote:
        return [
            Finding(
                path,
                f"{who} applies adapter '{adapter}' on model '{model}', a remote ({remote['provider']}) model; "
                "LoRA adapters load only on a local model (one with 'source:')",
                "adapter_base",
                adapter,
            )
        ]
    base, base_source = _base_identity(data, spec["base"])
    used, used_source = _base_identity(data, model)
    if used == base or (base_source is not None and used_source == base_source):
        return []
    return [
        Finding(
            path,
            f"{who} applies adapter '{adapter}' on model '{model}' ({used_source or 'unknown source'}), but the "
            f"adapter was trained on '{spec['base']}' ({base_source or 'unknown source'}); a LoRA adapter only "
            f"fits the base model it was trained on",
            "adapter_base",
            adapter,
        )
    ]


# -- eval suites against their datasets ------------------------------------------------------------


def dataset_fields(data: Mapping[str, Any], name: str, root: Path) -> tuple[set[str], str] | None:
    """(fields every one of the first rows has, as an eval case sees them; the file read), or None
    when the dataset cannot be read cheaply (documents, a missing file: reported elsewhere)."""
    from llmops_cli.data.readers import dataset_files, file_format_of, read_records
    from llmops_cli.errors import LlmopsError

    spec = _section(data, "datasets").get(name)
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or "${" in spec["path"]:
        return None
    fmt = spec.get("format")
    if fmt not in ("qa", "instruction", "chat", "text"):
        return None
    declared = str(spec.get("file_format") or "auto")
    raw_fields = spec.get("fields")
    renames: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
    path = Path(spec["path"]) if Path(spec["path"]).is_absolute() else root / spec["path"]
    try:
        files = dataset_files(path, declared, root=root)
        first = files[0]
        records = read_records(first, file_format_of(first, declared))
        common: set[str] | None = None
        for count, record in enumerate(records):
            if count >= MAX_DATASET_ROWS:
                break
            if record.error is not None or not isinstance(record.data, dict):
                continue
            keys = {str(renames.get(k, k)) for k in record.data}
            common = keys if common is None else common & keys
    except (LlmopsError, OSError, ValueError):
        return None
    if common is None:
        return None
    shown = first.relative_to(root).as_posix() if first.is_relative_to(root) else str(first)
    if fmt == "chat":
        common = (common - {"messages"}) | {"question"}
    elif fmt == "qa":
        common.discard("answer")
    elif fmt == "instruction":
        common.discard("output")
    return common, shown


def eval_findings(data: Mapping[str, Any], suite: str, prompts: PromptLookup, root: Path | None) -> list[Finding]:
    """What the suite's target needs from each case that its dataset's rows do not have."""
    spec = _section(data, "evals").get(suite)
    if not isinstance(spec, dict) or not isinstance(spec.get("target"), dict) or root is None:
        return []
    target = spec["target"]
    dataset = spec.get("dataset")
    if not isinstance(dataset, str):
        return []
    out: list[Finding] = []
    if isinstance(target.get("adapter"), str):
        model = target.get("model")
        if model is None and isinstance(target.get("prompt"), str):
            prompt_spec = prompts(target["prompt"])
            model = prompt_spec.model if prompt_spec is not None else None
        out += adapter_findings(
            data, ("evals", suite, "target", "adapter"), target["adapter"], model, f"eval '{suite}'"
        )
    needed: list[str] = []
    what = ""
    key = ""
    if isinstance(target.get("prompt"), str):
        prompt_spec = prompts(target["prompt"])
        if prompt_spec is None:
            return out
        needed = [n for n, v in prompt_spec.variables.items() if v.needs_value]
        what, key = f"prompt '{target['prompt']}', which requires variable", "prompt"
    elif isinstance(target.get("chain"), str):
        chain = _section(data, "chains").get(target["chain"])
        inputs = chain.get("inputs") if isinstance(chain, dict) else None
        needed = [str(i) for i in inputs] if isinstance(inputs, list) else []
        what, key = f"chain '{target['chain']}', which needs input", "chain"
    if not needed:
        return out
    found = dataset_fields(data, dataset, root)
    if found is None:
        return out
    fields, file = found
    for name in needed:
        if name not in fields:
            from llmops_cli.config.problems import did_you_mean

            out.append(
                Finding(
                    ("evals", suite, "target", key),
                    f"eval '{suite}' targets {what} '{name}', but rows of dataset '{dataset}' ({file}) have no "
                    f"field '{name}'{did_you_mean(name, fields)}; fields: {', '.join(sorted(fields)) or 'none'} "
                    "(map a column with the dataset's `fields:`)",
                    "dataset_field",
                    name,
                )
            )
    return out


# -- the whole project -----------------------------------------------------------------------------


def _step_model(step: Mapping[str, Any], prompts: PromptLookup) -> str | None:
    if isinstance(step.get("model"), str):
        return str(step["model"])
    if isinstance(step.get("prompt"), str):
        spec = prompts(step["prompt"])
        return spec.model if spec is not None else None
    return None


def analyze_project(data: Mapping[str, Any], prompts: PromptLookup, *, root: Path | None = None) -> list[Finding]:
    """Every run-time failure this analysis can see in the config ``data``.

    ``prompts(name)`` returns the typed prompt, or None when it is missing or invalid (reported
    elsewhere); ``root`` lets eval suites be checked against their datasets' files.
    """
    out: list[Finding] = []
    chains = _section(data, "chains")
    by_chain: dict[str, list[StepUse]] = {}
    for use in prompt_steps(data):
        by_chain.setdefault(use.chain, []).append(use)
    for chain, spec in chains.items():
        out += chain_findings(data, chain)
        steps = chain_steps(spec)
        for use in by_chain.get(chain, []):
            step = steps[use.index]
            prompt = prompts(str(step.get("prompt")))
            if prompt is not None:
                out += step_variable_findings(use, prompt, step)
        for index, step in enumerate(steps):
            if isinstance(step, dict) and isinstance(step.get("adapter"), str):
                who = f"chain '{chain}' {step_label(index, step_id(step, index))}"
                out += adapter_findings(
                    data, ("chains", chain, "steps", index, "adapter"), step["adapter"], _step_model(step, prompts), who
                )
    for name, spec in _section(data, "quantized").items():
        if isinstance(spec, dict) and isinstance(spec.get("adapter"), str):
            out += adapter_findings(
                data, ("quantized", name, "adapter"), spec["adapter"], spec.get("model"), f"quantized '{name}'"
            )
    for name, spec in _section(data, "packages").items():
        if isinstance(spec, dict) and isinstance(spec.get("adapter"), str) and isinstance(spec.get("model"), str):
            out += adapter_findings(
                data, ("packages", name, "adapter"), spec["adapter"], spec["model"], f"package '{name}'"
            )
    for suite in _section(data, "evals"):
        out += eval_findings(data, suite, prompts, root)
    return _unique(out)


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[KeyPath, str]] = set()
    out = []
    for f in findings:
        if (f.path, f.message) not in seen:
            seen.add((f.path, f.message))
            out.append(f)
    return out
