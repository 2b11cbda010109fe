"""Evaluation suites: metrics, runner, output cache, reports."""
