"""Metadata filters such as ``year>=2020`` or ``source~guides/*``, evaluated in SQLite.

A filter becomes the set of passage ids allowed, which the ANN search and BM25 take as a
mask *inside* the candidate search, so a selective filter still returns k results when k
matching documents exist (filtering after the search would not).

Syntax: ``FIELD OP VALUE`` with OP one of ``= != > >= < <=`` or ``~`` (glob). FIELD is
``doc_id``, ``title``, ``source`` or any field of a JSONL record. Several filters are ANDed.

Values compare as the stored type, because a filter on the command line is always text while
a record's fields keep their JSON types:

- ``doc_id``, ``title`` and ``source`` are text: ``doc_id=56486733`` finds the document whose id
  is the string "56486733".
- A record field holding a number compares numerically when VALUE is a number (``year>=2020``,
  ``score<0.5``); ``true``/``false`` are 1/0 for a JSON boolean. A non-numeric VALUE matches no
  number (and ``retriever search`` warns: see ``filter_warnings``).
- A record field holding a string compares as text, even when VALUE looks like a number:
  ``year=1990`` matches the string "1990"; ``<``/``>`` on text are alphabetical ("990" > "2020").
- ``~`` is a glob (``*``, ``?``, ``[...]``) over the text of the value, case-sensitive; a list or
  object compares as its JSON text (``tags~*pets*``).
- A document without the field matches no condition on it, ``!=`` included.
- An integer beyond SQLite's 64-bit range still compares exactly with the stored numbers.

Limits: at most ``MAX_CONDITIONS`` conditions of at most ``MAX_CONDITION_CHARS`` characters each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from retriever.errors import RetrieverError
from retriever.validation import unicode_problem

CONDITION = re.compile(r"^\s*([^\W\d][\w.-]*)\s*(>=|<=|!=|=|>|<|~)\s*(.*?)\s*$", re.DOTALL)  # any letter
COLUMNS = {"doc_id": "d.doc_id", "title": "d.title", "source": "d.source"}
SQL_OPS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "~": "GLOB"}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
BOOLEANS = {"true": 1, "false": 0}
NUMERIC_TYPES = {"integer", "real"}  # SQLite's typeof() of a JSON number (booleans are integers)
MAX_CONDITIONS = 64  # SQLite refuses expressions nested 1000 deep, and no real filter needs more
MAX_CONDITION_CHARS = 1000
INT64 = range(-2**63, 2**63)  # what SQLite can bind as an INTEGER


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str  # as written; compared as text or as a number depending on the stored value

    @property
    def number(self) -> int | float | None:
        """The value as a number, to compare with numbers (None if it is not one)."""
        if self.value.lower() in BOOLEANS:
            return BOOLEANS[self.value.lower()]
        if not NUMBER.fullmatch(self.value):
            return None
        if re.fullmatch(r"[+-]?\d+", self.value):
            return int(self.value)
        number = float(self.value)
        return number if math.isfinite(number) else None

    def sql(self) -> tuple[str, list]:
        """A WHERE clause over ``documents d`` and its parameters, comparing as the stored type."""
        value = self.value
        if self.field == "source" and self.op == "~" and not value.startswith(("/", "*")):
            value = f"*{value}"  # sources are stored as absolute paths: match a relative pattern anywhere
        operator = SQL_OPS[self.op]
        if self.field in COLUMNS:
            return f"{COLUMNS[self.field]} {operator} ?", [value]
        path = json_path(self.field)
        if self.op == "~":
            return "json_extract(d.metadata, ?) GLOB ?", [path, value]
        stored = "json_extract(d.metadata, ?)"
        numeric, number = _numeric_comparison(self.op, self.number)
        return (
            f"CASE WHEN typeof({stored}) IN ('integer', 'real') THEN {stored} {numeric} "
            f"ELSE {stored} {operator} ? END",
            [path, path, *number, path, value],
        )

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def _numeric_comparison(op: str, number: int | float | None) -> tuple[str, list]:
    """The SQL that compares a stored number with ``number`` (``op ?`` and its parameter), exactly."""
    if number is None:
        return f"{SQL_OPS[op]} ?", [None]  # NULL: no number compares with a value that is not one
    bound = numeric_bound(op, number)
    if isinstance(bound, bool):
        return ("IS NOT NULL" if bound else "IS NULL"), []
    return f"{SQL_OPS[bound[0]]} ?", [bound[1]]


def numeric_bound(op: str, number: int | float) -> tuple[str, int | float] | bool:
    """``stored op number`` as a comparison a store can evaluate exactly: ``(op, operand)`` with a 64-bit integer
    or a double as operand, or True / False where every / no stored number satisfies it.

    Stores hold numbers as 64-bit integers or doubles and cannot take a bigger integer (SQLite: OverflowError,
    Milvus: a parse error); it is compared through the nearest double, with the operator adjusted where that
    double is not the integer itself (no stored number lies strictly between the two). Every store uses this, so
    they agree.
    """
    if not isinstance(number, int) or number in INT64:
        return op, number
    try:
        near = float(number)
    except OverflowError:
        near = math.inf if number > 0 else -math.inf
    if near == number:
        return op, near
    below = near < number
    if op in ("=", "!="):  # no stored number equals it
        return op == "!="
    adjusted = {"<": "<=" if below else "<", "<=": "<=" if below else "<",
                ">": ">" if below else ">=", ">=": ">" if below else ">="}[op]
    return adjusted, near


def json_path(field: str) -> str:
    """The SQLite JSON path of a record field (quoted, so dots and dashes stay part of the name)."""
    return f'$."{field}"'


def parse_condition(text: str) -> Condition:
    if not isinstance(text, str):
        raise RetrieverError(f"a filter must be a string such as 'year>=2020', not {type(text).__name__}")
    problem = unicode_problem(text)
    if problem:
        raise RetrieverError(f"bad filter {text!r}: {problem}")
    if len(text) > MAX_CONDITION_CHARS:
        raise RetrieverError(f"where: a filter of {len(text)} characters; at most {MAX_CONDITION_CHARS}")
    match = CONDITION.match(text)
    if not match or not match.group(3):
        raise RetrieverError(
            f"bad filter {text!r}: write FIELD OP VALUE, e.g. 'year>=2020' or 'source~docs/*' "
            "(OP is one of = != > >= < <= ~)"
        )
    field, op, raw = match.groups()
    raw = raw.strip("'\"")
    if not raw or raw[0] in "<>=!~":
        raise RetrieverError(f"bad filter {text!r}: the value after {op!r} is missing or starts with an operator")
    return Condition(field, op, raw)


def parse_filters(texts: list[str] | tuple[str, ...] | str | None) -> list[Condition]:
    if not texts:
        return []
    if isinstance(texts, str):
        texts = [texts]
    if len(texts) > MAX_CONDITIONS:
        raise RetrieverError(f"where: {len(texts)} filters; at most {MAX_CONDITIONS}")
    return [parse_condition(t) for t in texts]


def field_types_sql(field: str) -> tuple[str, list]:
    """A query listing the JSON types (``integer``, ``real``, ``text``, ``true``...) a record field holds in
    ``documents d``; the columns ``doc_id``, ``title`` and ``source`` are always text."""
    return (
        "SELECT DISTINCT json_type(d.metadata, ?) FROM documents d WHERE json_type(d.metadata, ?) IS NOT NULL",
        [json_path(field)] * 2,
    )


def filter_warnings(conditions: list[Condition], field_types: Callable[[str], set[str]]) -> list[str]:
    """Why conditions cannot match, for the mistakes that would otherwise return nothing silently.

    ``field_types(field)`` gives the types the field holds in the documents searched (an empty set:
    no document has it); with several stores or segments, pass the union of theirs. Types are
    SQLite's ``typeof`` names or ``json_type`` names (``integer``, ``real``, ``text``, ``true``, ...).
    Reported: a field that no document has; a non-numeric value against a field that holds only
    numbers; a field that holds only lists or objects; an ordering (``<``, ``>=``...) of a number
    against a field that holds only text, which compares alphabetically.

    Warnings rather than errors: such a filter is a valid question whose answer is "nothing", and
    a pipeline that applies one filter to several indexes must not crash on the index that lacks
    the field; but the user must not take the empty answer for a real one.
    """
    messages = []
    for condition in conditions:
        stored = {"text"} if condition.field in COLUMNS else field_types(condition.field)
        types = {_numeric_or(t) for t in stored}
        if not types:
            messages.append(f"filter {str(condition)!r} matches nothing: no document has a field {condition.field!r}")
        elif types == {"number"} and condition.op != "~" and condition.number is None:
            messages.append(f"filter {str(condition)!r} matches nothing: {condition.field!r} holds numbers "
                            f"and {condition.value!r} is not a number")
        elif types <= {"array", "object"}:
            messages.append(f"filter {str(condition)!r} matches nothing: {condition.field!r} holds lists or objects, "
                            "which filters compare as their JSON text (a glob such as '*pets*' matches inside)")
        elif types == {"text"} and condition.op in ("<", "<=", ">", ">=") and condition.number is not None:
            messages.append(f"filter {str(condition)!r} matches nothing: {condition.field!r} holds text, "
                            "which compares alphabetically; store numbers as JSON numbers to compare them as such")
    return messages


def _numeric_or(sqlite_type: str) -> str:
    return "number" if sqlite_type in NUMERIC_TYPES | {"true", "false"} else sqlite_type
