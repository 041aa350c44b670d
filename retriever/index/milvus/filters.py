"""``--where`` conditions as Milvus boolean expressions, evaluated by Milvus inside the vector and BM25 searches.

``doc_id``, ``title`` and ``source`` are fields of the passages collection; any other name is a key of its
``metadata`` JSON field. ``~`` (a glob) becomes ``like``: ``*`` is ``%`` and ``?`` is ``_``; a glob with a
character class (``[...]``) has no ``like`` equivalent and is refused in one line. As in the local store, a
relative ``source`` pattern matches anywhere in the (absolute) path, and a document without the metadata field
never matches.

Values compare as the stored type, as in the local store (``retriever.search.filters``): ``doc_id``, ``title``
and ``source`` as text; a metadata field as a number when it holds a number and VALUE is one, as text when it
holds a string. Milvus compares a JSON value only with a literal of its own type, so ``year=1990`` becomes
``metadata["year"] == 1990 or metadata["year"] == "1990"``: each document matches through the literal of its type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from retriever.errors import RetrieverError
from retriever.search.filters import numeric_bound

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


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def condition_expression(condition: Any) -> str:
    """One ``Condition`` (``retriever.search.filters``) as a Milvus expression."""
    where = str(condition)
    text = string_literal(condition.value)
    if condition.field in COLUMNS:
        target = condition.field
    else:
        target = f"metadata[{json.dumps(condition.field)}]"
    if condition.op == "~":
        pattern = condition.value
        if condition.field == "source" and not pattern.startswith(("/", "*")):
            pattern = "*" + pattern  # sources are absolute paths: a relative pattern matches anywhere
        return f"{target} like {string_literal(_like_pattern(pattern, where))}"
    if condition.field in COLUMNS:
        return f"{target} {OPERATORS[condition.op]} {text}"
    comparisons = [(condition.op, text)]  # (operator, literal): each document matches through its type's
    number = condition.number
    if number is not None:
        bound = numeric_bound(condition.op, number)  # an integer past 64 bits, as the local store compares it
        if not isinstance(bound, bool):  # True/False: every/no number satisfies it, so no number literal
            comparisons.insert(0, (bound[0], _number_text(bound[1])))
        if condition.value.lower() in ("true", "false") and condition.op in ("=", "!="):
            comparisons.insert(0, (condition.op, condition.value.lower()))  # a JSON boolean
    if condition.op == "!=":  # present, and equal through none of the literals (a missing field never matches)
        equal = " or ".join(f"{target} == {literal}" for _, literal in comparisons)
        return f"exists {target} and not ({equal})"
    return " or ".join(f"{target} {OPERATORS[op]} {literal}" for op, literal in comparisons)


def expression(conditions: Sequence[Any]) -> str:
    """All conditions ANDed, as one expression ("" for none)."""
    return " and ".join(f"({condition_expression(c)})" for c in conditions)
