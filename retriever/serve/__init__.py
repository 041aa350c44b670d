"""``retriever serve``: the index behind an HTTP API (FastAPI + uvicorn), safe by default.

- ``app``: the app factory and its endpoints (OpenAPI docs at ``/docs``).
- ``served_index``: reads answered from the last committed version while writes run, one at a
  time, on a separate writer; ``snapshot``: the swap of versions under running searches.
- ``limits``, ``auth``, ``errors``: request limits, the bearer token, one-line JSON errors.

Needs the ``serve`` extra (``pip install 'retriever[serve]'``); importing this package does not.
"""

from __future__ import annotations

from retriever.serve.limits import Limits

__all__ = ["Limits"]
