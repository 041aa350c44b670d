"""Optional parts of the package: say in one line which extra to install, before any work starts."""

from __future__ import annotations

import importlib.util

from retriever.errors import RetrieverError


class MissingExtraError(RetrieverError):
    """A command needs an optional dependency that is not installed."""


def require_extra(extra: str, *modules: str) -> None:
    """Raise ``MissingExtraError`` naming ``pip install 'retriever[extra]'`` if any module is missing.

    Checked with ``find_spec`` so that nothing heavy is imported just to ask.
    """
    missing = [name for name in modules if _missing(name)]
    if missing:
        raise MissingExtraError(
            f"this command needs {', '.join(missing)}, part of the [{extra}] extra: pip install 'retriever[{extra}]'"
        )


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return True
