"""``--where`` conditions as Milvus boolean expressions, evaluated by Milvus inside the vector and BM25 searches.

``doc_id``, ``title`` and ``source`` are fields of the passages collection; any other name is a key of its
``metadata`` JSON field. ``~`` (a glob) becomes ``like``: ``*`` is ``%`` and ``?`` is ``_``; a glob with a
character class (``[...]``) has no ``like`` equivalent and is refused in one line. As in the local store, a
relative ``source`` pattern matches anywhere in the (absolute) path, and a document without the metadata field
never matches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from retriever.errors import RetrieverError

COLUMNS = ("doc_id", "title", "source")
OPERATORS = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def string_literal(text: str) -> str:
    """A Milvus string literal (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _like_pattern(glob: str, where: str) -> str:
    if "[" in glob:
        raise RetrieverError(f"filter {where!r}: a glob with [...] cannot be translated for Milvus; use * and ? only")
    out = []
    for char in glob:
        if char in "%_":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def condition_expression(condition: Any) -> str:
    """One ``Condition`` (``retriever.search.filters``) as a Milvus expression."""
    where = f"{condition.field}{condition.op}{condition.value}"
    if condition.field in COLUMNS:
        target = condition.field
    else:
        target = f"metadata[{json.dumps(condition.field)}]"
    value = condition.value
    if condition.op == "~":
        pattern = str(value)
        if condition.field == "source" and not pattern.startswith(("/", "*")):
            pattern = "*" + pattern  # sources are absolute paths: a relative pattern matches anywhere
        return f"{target} like {string_literal(_like_pattern(pattern, where))}"
    operator = OPERATORS[condition.op]
    if isinstance(value, float):
        if condition.field in COLUMNS:  # text fields compare with the number as it was written
            return f"{target} {operator} {string_literal(_number_text(value))}"
        return f"{target} {operator} {_number_text(value)}"
    return f"{target} {operator} {string_literal(str(value))}"


def expression(conditions: Sequence[Any]) -> str:
    """All conditions ANDed, as one expression ("" for none)."""
    return " and ".join(f"({condition_expression(c)})" for c in conditions)
