"""notifyd's HTTP API: a FastAPI app served by uvicorn.

The API never sends anything itself: it publishes (durably, through
:class:`notifyd.publish.Publisher`) and it reads what the pipeline tracked.
Importing this package is cheap; FastAPI is loaded by :mod:`notifyd.api.app`.
"""

from __future__ import annotations
