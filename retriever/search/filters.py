"""Metadata filters such as ``year>=2020`` or ``source~guides/*``, evaluated in SQLite.

A filter becomes the set of passage ids allowed, which the ANN search and BM25 take as a
mask *inside* the candidate search, so a selective filter still returns k results when k
matching documents exist (filtering after the search would not).

Syntax: ``FIELD OP VALUE`` with OP one of ``= != > >= < <=`` or ``~`` (glob). FIELD is
``doc_id``, ``title``, ``source`` or any field of a JSONL record. Several filters are ANDed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retriever.errors import RetrieverError

CONDITION = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(>=|<=|!=|=|>|<|~)\s*(.*?)\s*$")
COLUMNS = {"doc_id": "d.doc_id", "title": "d.title", "source": "d.source"}
SQL_OPS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "~": "GLOB"}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | float

    def sql(self) -> tuple[str, list]:
        """A WHERE clause over ``documents d`` and its parameters."""
        column = COLUMNS.get(self.field, "json_extract(d.metadata, ?)")
        params: list = [] if self.field in COLUMNS else [f'$."{self.field}"']
        value = self.value
        if self.field == "source" and self.op == "~" and not str(value).startswith(("/", "*")):
            value = f"*{value}"  # sources are stored as absolute paths: match a relative pattern anywhere
        return f"{column} {SQL_OPS[self.op]} ?", [*params, value]


def parse_condition(text: str) -> Condition:
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
    value: str | float = raw
    if op != "~":
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return Condition(field, op, value)


def parse_filters(texts: list[str] | tuple[str, ...] | str | None) -> list[Condition]:
    if not texts:
        return []
    if isinstance(texts, str):
        texts = [texts]
    return [parse_condition(t) for t in texts]
