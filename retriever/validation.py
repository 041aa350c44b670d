"""Checks of what users hand in (ids, texts, metadata, queries), each failing with one line.

They run at the boundary, before anything is encoded or written, so that a bad value is refused
with its name and place instead of surfacing later as a traceback from SQLite (NaN metadata makes
every later filter fail), the tokenizer (lone surrogates) or ``str()`` (``False`` silently
becoming the id ``"False"``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from retriever.errors import InputFormatError, RetrieverError

MAX_METADATA_DEPTH = 64  # SQLite's JSON functions and Python's json module both give up near 1000


def shown(value: Any, width: int = 40) -> str:
    """A short description of a value for an error message: its type and the start of its repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= width else text[: width - 1] + '…'}"


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or tokenized (a lone surrogate, e.g. from a JSON escape), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"invalid Unicode (lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start})"
    return None


def document_id(value: Any) -> str:
    """A document id as stored: a non-empty string, or an integer turned into one.

    ``False``, floats (``NaN`` included), lists and blank strings are refused rather than
    stringified, so that ``"False"`` or ``"nan"`` never become ids by accident.
    """
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise InputFormatError(f"document id must be a non-empty string or an integer, not {shown(value)}")
    text = value if isinstance(value, str) else str(int(value))
    if not text.strip():
        raise InputFormatError(f"document id {text!r} is empty or only whitespace")
    problem = unicode_problem(text)
    if problem:
        raise InputFormatError(f"document id {text!r} is {problem}")
    return text


def document_ids(ids: Any) -> list[str]:
    """Ids given to ``remove``: one id (a string is one id, not its characters) or an iterable of ids."""
    if isinstance(ids, (str, numbers.Integral)) and not isinstance(ids, bool):
        ids = [ids]
    elif not isinstance(ids, Iterable) or isinstance(ids, (bytes, dict)):
        raise RetrieverError(f"ids must be a document id or a list of ids, not {shown(ids)}")
    return list(dict.fromkeys(document_id(i) for i in ids))


def text_field(value: Any, name: str, optional: bool = False) -> None:
    """A document's text, title, source or metadata key: a string without lone surrogates (None if ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InputFormatError(f"'{name}' must be a string, not {shown(value)}")
    problem = unicode_problem(value)
    if problem:
        raise InputFormatError(f"'{name}' is {problem}")


def metadata(values: Any) -> None:
    """Metadata that SQLite's JSON functions can filter on: JSON types, finite numbers, valid Unicode.

    Checked iteratively, so a deeply nested value is refused instead of overflowing the stack.
    """
    if not isinstance(values, dict):
        raise InputFormatError(f"metadata must be a mapping, not {shown(values)}")
    for key in values:
        text_field(key, "metadata key")
    pending: list[tuple[str, Any, int]] = [(k, v, 1) for k, v in values.items()]
    while pending:
        path, value, depth = pending.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InputFormatError(f"metadata field {path!r} is nested more than {MAX_METADATA_DEPTH} levels deep")
        if value is None or isinstance(value, (bool, numbers.Integral)):
            continue
        if isinstance(value, numbers.Real):
            if not math.isfinite(float(value)):
                raise InputFormatError(f"metadata field {path!r} is {value!r}: only finite numbers can be filtered on")
            continue
        if isinstance(value, str):
            problem = unicode_problem(value)
            if problem:
                raise InputFormatError(f"metadata field {path!r} is {problem}")
            continue
        if isinstance(value, (list, tuple)):
            pending += [(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                text_field(key, f"metadata key in {path}")
                pending.append((f"{path}.{key}", item, depth + 1))
            continue
        raise InputFormatError(f"metadata field {path!r} is not a JSON value: {shown(value)}")


def query_text(query: Any) -> str:
    """A query: a string with some text and valid Unicode (a shell argument may carry lone surrogates)."""
    if not isinstance(query, str):
        raise RetrieverError(f"a query must be a string, not {shown(query)}")
    if not query.strip():
        raise RetrieverError("empty query: give some text to search for")
    problem = unicode_problem(query)
    if problem:
        raise RetrieverError(f"query {query[:40]!r} is {problem}")
    return query
