"""Production monitoring: the request store the server writes and ``llmops monitor`` reads.

Importing this package is cheap (standard library only).
"""

from llmops_cli.monitor.store import (
    DEFAULT_STORE,
    FeedbackRecord,
    MonitorStore,
    RequestRecord,
    open_store,
    store_path,
)

__all__ = ["DEFAULT_STORE", "FeedbackRecord", "MonitorStore", "RequestRecord", "open_store", "store_path"]
