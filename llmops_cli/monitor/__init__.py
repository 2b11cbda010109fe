"""Production monitoring: the request store the server writes and ``llmops monitor`` reads.

Importing this package is cheap (standard library only).
"""

from llmops_cli.monitor.locations import DEFAULT_STORE, store_path
from llmops_cli.monitor.records import FeedbackRecord, RequestRecord
from llmops_cli.monitor.store import MonitorStore, open_store

__all__ = ["DEFAULT_STORE", "FeedbackRecord", "MonitorStore", "RequestRecord", "open_store", "store_path"]
