"""Optional parts of the package (bench, the server, the client, the RAG adapters, Ray, Milvus, ONNX, OpenVINO).

Each is an extra in pyproject.toml; using one without it installed gives one line that says what to install,
before any work starts, rather than an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from retriever.errors import MissingExtraError


def require_extra(extra: str, *modules: str, feature: str = "this command") -> None:
    """Raise ``MissingExtraError`` naming ``pip install 'retriever[extra]'`` if any module is missing.

    Checked with ``find_spec`` so that nothing heavy is imported just to ask.
    """
    missing = [name for name in modules if not _importable(name)]
    if missing:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'retriever[{extra}]'"
        )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False
