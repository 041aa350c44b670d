"""Errors a user can act on.

Every failure caused by input (a path, a file, a model name, an index) is raised as a
``RetrieverError`` whose message is one line that says what went wrong and what to do;
the CLI prints it without a traceback.
"""

from __future__ import annotations


class RetrieverError(Exception):
    """A problem with the user's input, shown to them as one line."""


class IndexNotFoundError(RetrieverError):
    """No index exists at the given location."""


class CorruptIndexError(RetrieverError):
    """An index exists but its files are damaged or inconsistent."""


class ModelMismatchError(RetrieverError):
    """An index is used with a different model than the one that built it."""


class ModelLoadError(RetrieverError):
    """A model could not be loaded (offline, missing or damaged)."""


class InputFormatError(RetrieverError):
    """A corpus or training file is malformed (named by file and line)."""


class MissingExtraError(RetrieverError):
    """An optional part is asked for but its extra is not installed (the message says what to install)."""
