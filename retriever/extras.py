"""Optional parts of the package (the server, the client, the LangChain and LlamaIndex adapters).

Each is an extra in pyproject.toml; using one without it installed gives one line that says what
to install, rather than an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from retriever.errors import MissingExtraError


def require_extra(extra: str, *modules: str, feature: str) -> None:
    """Raise MissingExtraError unless every module of ``extra`` can be imported."""
    missing = [name for name in modules if not _importable(name)]
    if missing:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'retriever[{extra}]'"
        )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False
