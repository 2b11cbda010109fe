"""Where a monitor store lives: a SQLite file under the project or a PostgreSQL URL (printed masked)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops_cli.paths import STATE_DIR

DEFAULT_STORE = f"{STATE_DIR}/monitor.db"
STORE_ENV = "LLMOPS_MONITOR_STORE"  # overrides monitor.store (how a Kubernetes Secret reaches the pods)


def is_postgres_url(location: Path | str | None) -> bool:
    return isinstance(location, str) and location.split(":", 1)[0].lower() in ("postgresql", "postgres")


def url_password(url: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        found = parts.password or parse_qs(parts.query).get("password", [""])[0]
        return found or None
    except ValueError:
        return None


def mask_url(location: Path | str) -> str:
    """``location`` fit to print: a URL's password (in the user part or ``?password=``) becomes ``***``."""
    text = str(location)
    if not is_postgres_url(text):
        return text
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
        secret = url_password(text)
    except ValueError:
        return "postgresql://***"
    if not secret:
        return text
    netloc = parts.netloc
    if parts.password:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{k}=***" if k == "password" else f"{k}={v}"
        for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def store_location(config: Any, environ: Mapping[str, str] | None = None) -> Path | str:
    """Where a project's monitor store lives: ``$LLMOPS_MONITOR_STORE``, else ``monitor.store``
    (default ``.llmops/monitor.db``); a PostgreSQL URL as a string, a file as an absolute path."""
    env = os.environ if environ is None else environ
    value = env.get(STORE_ENV) or str(config.monitor.store or DEFAULT_STORE)
    return resolve_location(config, value)


def resolve_location(config: Any, value: Path | str) -> Path | str:
    if is_postgres_url(value):
        return str(value)
    return Path(config.resolve_path(str(value)))


store_path = store_location  # the name callers used when the store was always a file
