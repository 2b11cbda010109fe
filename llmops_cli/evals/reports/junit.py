"""junit.xml for CI test tabs: one <testsuite> per eval suite, one <testcase> per case assertion.

Layout (what Jenkins, GitLab and GitHub test reporters expect):
- ``classname`` = ``<suite>.<case_id>``, ``name`` = the assertion (metric) name; a case with no
  assertions gets one ``scores`` testcase, an errored case one ``generate`` testcase with <error>.
- Suite thresholds are testcases of ``<suite>.thresholds`` named by key, failing with
  "actual X, expected OP LIMIT".
- <properties> carry the versions, config hash, dataset and target so a CI run is traceable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llmops_cli.evals.reports.common import as_list, fmt, shorten
from llmops_cli.evals.results import CaseResult, SuiteResult
from llmops_cli.paths import atomic_write_bytes


def junit_tree(results: SuiteResult | Sequence[SuiteResult]) -> ET.Element:
    root = ET.Element("testsuites", name="llmops eval")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for result in as_list(results):
        suite = _suite_element(result)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += result.seconds
    root.attrib.update({k: str(v) for k, v in totals.items()})
    root.set("time", f"{seconds:.3f}")
    return root


def write_junit(results: SuiteResult | Sequence[SuiteResult], path: Path) -> Path:
    tree = ET.ElementTree(junit_tree(results))
    ET.indent(tree)
    import io

    buf = io.BytesIO()
    tree.write(buf, encoding="utf-8", xml_declaration=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _suite_element(result: SuiteResult) -> ET.Element:
    suite = ET.Element("testsuite", name=result.suite, timestamp=result.started or "", time=f"{result.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(result):
        ET.SubElement(props, "property", name=name, value=value)
    per_case_time = result.seconds / max(1, len(result.cases))
    counts = {"tests": 0, "failures": 0, "errors": 0}
    multi_sample = any(c.sample for c in result.cases)
    for case in result.cases:
        for testcase in _case_testcases(result.suite, case, multi_sample, per_case_time):
            _count(testcase, counts)
            suite.append(testcase)
    for t in result.thresholds:
        testcase = ET.Element("testcase", classname=f"{result.suite}.thresholds", name=t.key, time="0")
        if not t.passed:
            message = f"{t.key}: actual {fmt(t.actual)}, expected {t.op} {fmt(t.limit)}"
            ET.SubElement(testcase, "failure", message=message, type="threshold").text = t.describe()
        _count(testcase, counts)
        suite.append(testcase)
    suite.attrib.update({k: str(v) for k, v in counts.items()})
    suite.set("skipped", "0")
    return suite


def _case_testcases(suite: str, case: CaseResult, multi_sample: bool, seconds: float) -> Iterator[ET.Element]:
    classname = f"{suite}.{case.case_id}"
    suffix = f"[sample={case.sample}]" if multi_sample else ""
    time = f"{(case.latency_ms / 1000.0) if case.latency_ms is not None else seconds:.3f}"
    if case.error is not None:
        testcase = ET.Element("testcase", classname=classname, name=f"generate{suffix}", time=time)
        ET.SubElement(testcase, "error", message=shorten(case.error, 300), type="error").text = case.error
        yield testcase
        return
    out = _system_out(case)
    if not case.passed:
        testcase = ET.Element("testcase", classname=classname, name=f"scores{suffix}", time=time)
        ET.SubElement(testcase, "system-out").text = out
        yield testcase
        return
    for name, ok in case.passed.items():
        testcase = ET.Element("testcase", classname=classname, name=f"{name}{suffix}", time=time)
        if not ok:
            score = case.scores.get(name)
            actual = f"score {fmt(score)}" if name in case.scores else "assertion failed"
            message = f"{name}: {actual}; prediction {shorten(case.prediction, 120)!r}"
            if case.reference is not None:
                message += f", reference {shorten(case.reference, 120)!r}"
            ET.SubElement(testcase, "failure", message=message, type="assertion").text = out
        ET.SubElement(testcase, "system-out").text = out
        yield testcase


def _system_out(case: CaseResult) -> str:
    scores = ", ".join(f"{k}={fmt(v)}" for k, v in case.scores.items())
    return f"scores: {scores}\nprediction: {case.prediction}\nreference: {case.reference}\ncached: {case.cached}"


def _count(testcase: ET.Element, counts: dict[str, int]) -> None:
    counts["tests"] += 1
    if testcase.find("failure") is not None:
        counts["failures"] += 1
    if testcase.find("error") is not None:
        counts["errors"] += 1


def _properties(result: SuiteResult) -> list[tuple[str, str]]:
    props = [("suite", result.suite), ("dataset", result.dataset_ref), ("config_hash", result.config_hash)]
    props += [(f"target.{k}", str(v)) for k, v in sorted(result.target.items())]
    props += _flatten("versions", result.versions)
    if result.baseline and result.baseline.get("ref"):
        props.append(("baseline", str(result.baseline["ref"])))
    return props


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in sorted(value.items()) for item in _flatten(f"{prefix}.{k}", v)]
    return [(prefix, "" if value is None else str(value))]
