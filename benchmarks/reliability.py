"""Reliability fuzz (issue 9): hundreds of malformed inputs through the CLI, counting what is not one line.

Every case is a named function that prepares its input in a fresh folder and returns the
command line to run: malformed files (binary, truncated UTF-8, huge lines, deep nesting, wrong
JSON types, empty, BOM, NUL) of every supported extension, malformed records, queries, filters
and options. Each runs in-process through click's ``CliRunner`` (a few also as real
subprocesses) and is classified:

- ``ok`` / ``error``: success, or a failure printed as one ``error:`` line (``warning:`` lines allowed);
- ``traceback``: any output containing "Traceback", or an exception that escaped the CLI;
- ``multi-line``: a failure not printed as exactly one ``error:`` line;
- ``crash``: an exit status other than 0, 1 or 2 (2: click usage errors, ``verify``'s "no match");
- ``hang``: no answer within ``--timeout`` seconds;
- ``unexpected``: a case whose outcome is fixed (``expect``) ended the other way;
- ``wrong``: a filter returned other documents than the documented rule selects (checked against
  a Python oracle of the rule over the shared index's records).

Target: 0 of everything but ``ok`` and ``error``. Results go to ``benchmarks/results/reliability.json``::

    python benchmarks/reliability.py                       # all cases, tiny random model
    python benchmarks/reliability.py --group filter --list # what a group holds
    python benchmarks/reliability.py --model all-MiniLM-L6-v2

To add cases (damaged index files, say), append ``Case`` objects to ``CASES`` (or to a new
generator added to ``all_cases``): ``prepare(workspace, folder)`` writes what it needs under
``folder`` (``workspace.copy_index(folder)`` gives a private copy of the shared index to damage)
and returns the arguments of ``retriever``. ``tests/test_reliability.py`` runs ``FAST_CASES``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retriever.eval.machine import provenance

ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ("ok", "error", "traceback", "multi-line", "crash", "hang", "unexpected", "wrong")
GOOD = {"ok", "error"}


# the shared workspace --------------------------------------------------------------------------------
INDEX_RECORDS = [  # numeric-string ids as in SciFact; "year" a number in some records, a string in others
    {"_id": "56486733", "title": "Vitamin D", "text": "vitamin d and bone density in the elderly", "year": 2021},
    {"_id": "4983", "title": "Sleep", "text": "sleep and memory in the brain", "year": 1990, "score": 0.5},
    {"_id": "12", "title": "Cats", "text": "cats sleep in the sun most of the day", "year": "1990"},
    {"_id": "2", "title": "Dogs", "text": "dogs love a walk in the garden", "tags": ["pets", "walks"]},
    {"_id": "faq-7", "title": "Refunds", "text": "a refund is paid to your card within five days"},
] + [{"_id": f"n{i}", "title": f"Note {i}", "text": f"coffee tea water number {i}", "year": 2000 + i}
     for i in range(20)]


@dataclass
class Workspace:
    """What every case shares: a folder, a model, and one small index that cases only read."""

    root: Path
    model: str
    index: Path = field(init=False)
    dataset: Path = field(init=False)

    def __post_init__(self) -> None:
        from retriever.retriever import Retriever

        self.index = self.root / "shared-index"
        Retriever.build(INDEX_RECORDS, index_dir=self.index, model=self.model).close()
        self.dataset = self.root / "beir"
        write_beir(self.dataset)

    def copy_index(self, folder: Path) -> Path:
        """A private copy of the shared index, for a case that writes to it or damages it."""
        target = folder / "index"
        shutil.copytree(self.index, target)
        return target


def write_beir(root: Path) -> None:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in INDEX_RECORDS))
    queries = [{"_id": f"q{i}", "text": r["title"].lower()} for i, r in enumerate(INDEX_RECORDS)]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = "".join(f"q{i}\t{r['_id']}\t1\n" for i, r in enumerate(INDEX_RECORDS))
    for split in ("train", "test"):
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)


# cases ----------------------------------------------------------------------------------------------------
Prepare = Callable[[Workspace, Path], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    group: str  # file, record, query, filter, option (the lead adds: index, for damaged index files)
    prepare: Prepare
    expect: str = "any"  # "ok": must succeed; "error": must fail (in one line); "any": either, cleanly
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[str], str | None] | None = None  # on success: what is wrong with the output, or None


def index_command(ws: Workspace, folder: Path, corpus: Path, *extra: str) -> list[str]:
    return ["index", str(corpus), "--index", str(folder / "index"), "--model", ws.model, "-q", *extra]


def file_case(name: str, suffix: str, content: bytes, expect: str = "any") -> Case:
    def prepare(ws: Workspace, folder: Path) -> list[str]:
        corpus = folder / "corpus"
        corpus.mkdir()
        (corpus / f"input{suffix}").write_bytes(content)
        (corpus / "good.txt").write_text("a readable neighbour, so that one bad file is skipped, not fatal")
        return index_command(ws, folder, corpus)

    return Case(f"file/{name}{suffix}", "file", prepare, expect)


def _nested(depth: int, open_: bytes, close: bytes, inner: bytes = b"1") -> bytes:
    return open_ * depth + inner + close * depth


_rng = random.Random(9)
FILE_CONTENTS: dict[str, bytes] = {
    "empty": b"",
    "bom-only": b"\xef\xbb\xbf",
    "bom-text": b"\xef\xbb\xbfcats sleep in the sun",
    "bom-record": b'\xef\xbb\xbf{"_id": "bom", "text": "cats"}\n',
    "nul-only": b"\x00" * 64,
    "nul-middle": b"cats \x00 dogs",
    "random-binary": bytes(_rng.randrange(256) for _ in range(4096)),
    "png-header": b"\x89PNG\r\n\x1a\n" + bytes(64),
    "truncated-utf8": "caf\u00e9 cr\u00e8me".encode()[:-1],
    "latin1": "caf\u00e9 cr\u00e8me".encode("latin-1"),
    "utf16": "cats and dogs".encode("utf-16"),
    "huge-line": b"cat " * 250_000,
    "huge-word": b"x" * 200_000,
    "whitespace-only": b"  \n\t\n \r\n",
    "crlf": b"cats sleep\r\ndogs walk\r\n",
    "control-chars": bytes(range(1, 32)),
    "blank-lines": b"\n" * 10_000,
    "deep-array": _nested(100_000, b"[", b"]"),
    "deep-object": _nested(100_000, b'{"a":', b"}"),
    "json-number": b"42",
    "json-string": b'"just a string"',
    "json-null": b"null",
    "json-numbers-list": b"[1, 2, 3]",
    "truncated-json": b'{"_id": "a", "text": "cats',
    "trailing-comma": b'{"_id": "a", "text": "cats",}',
    "nan-metadata": b'{"_id": "a", "text": "cats", "score": NaN}',
    "infinity-metadata": b'{"_id": "a", "text": "cats", "score": -Infinity}',
    "huge-integer": b'{"_id": "a", "text": "cats", "n": ' + b"9" * 5000 + b"}",
    "surrogate-text": b'{"_id": "a", "text": "bad \\ud800 text"}',
    "surrogate-id": b'{"_id": "\\udfff", "text": "cats"}',
    "html-broken": b"<html><body><p>cats<div></span></html",
    "html-script-only": b"<html><script>var cats = 1;</script></html>",
    "pdf-junk": b"%PDF-1.4\n" + bytes(_rng.randrange(256) for _ in range(2048)),
    "pdf-truncated": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pa",
    "valid-record": b'{"_id": "a", "title": "Cats", "text": "cats sleep"}\n',
    "empty-record": b'{"_id": "a"}\n',
    "duplicate-ids": b'{"_id": "a", "text": "cats"}\n{"_id": "a", "text": "dogs"}\n',
}
SUFFIXES = (".txt", ".md", ".rst", ".html", ".json", ".jsonl", ".pdf")


def file_cases() -> Iterator[Case]:
    for name, content in FILE_CONTENTS.items():
        for suffix in SUFFIXES:
            yield file_case(name, suffix, content)


def record_case(name: str, line: str, expect: str = "any") -> Case:
    def prepare(ws: Workspace, folder: Path) -> list[str]:
        corpus = folder / "corpus"
        corpus.mkdir()
        (corpus / "corpus.jsonl").write_text('{"_id": "fine", "text": "a fine record"}\n' + line + "\n")
        return index_command(ws, folder, corpus)

    return Case(f"record/{name}", "record", prepare, expect)


def _record(**fields: Any) -> str:
    return json.dumps({"_id": "r", "text": "cats", **fields}, allow_nan=True)


def _deep_metadata(depth: int) -> str:
    return '{"_id": "r", "text": "cats", "m": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


RECORDS: dict[str, tuple[str, str]] = {  # name -> (JSONL line, expected outcome)
    **{f"id-{name}": (f'{{"_id": {value}, "text": "cats"}}', expect) for name, value, expect in [
        ("false", "false", "error"), ("true", "true", "error"), ("null", "null", "error"), ("empty", '""', "error"),
        ("blank", '"   "', "error"), ("list", "[1]", "error"), ("object", '{"a": 1}', "error"),
        ("float", "1.5", "error"), ("nan", "NaN", "error"), ("infinity", "1e400", "error"), ("int", "12", "ok"),
        ("big-int", "1" + "0" * 30, "ok"), ("negative-int", "-3", "ok"), ("newline", '"a\\nb"', "ok"),
        ("nul", '"a\\u0000b"', "ok"), ("long", json.dumps("i" * 100_000), "ok"), ("surrogate", '"\\ud800"', "error"),
        ("emoji", '"\\ud83d\\ude00"', "ok"), ("rtl", '"\\u0645\\u0631"', "ok"),
    ]},
    **{f"text-{name}": (f'{{"_id": "r", "text": {value}}}', expect) for name, value, expect in [
        ("number", "42", "error"), ("true", "true", "error"), ("list", '["a"]', "error"),
        ("object", '{"a": 1}', "error"),
        ("null", "null", "ok"), ("empty", '""', "ok"), ("surrogate", '"\\udc80"', "error"),
        ("nul", '"a\\u0000b"', "ok"), ("long", json.dumps("cat " * 50_000), "ok"), ("zero-width", '"\\u200b"', "ok"),
    ]},
    **{f"title-{name}": (f'{{"_id": "r", "text": "cats", "title": {value}}}', expect) for name, value, expect in [
        ("number", "5", "error"), ("list", "[]", "error"), ("object", "{}", "error"), ("null", "null", "ok"),
    ]},
    "metadata-nan": (_record(score=math.nan), "error"),
    "metadata-infinity": (_record(score=math.inf), "error"),
    "metadata-nan-in-list": (_record(scores=[1, math.nan]), "error"),
    "metadata-deep-200": (_deep_metadata(200), "error"),
    "metadata-deep-20": (_deep_metadata(20), "ok"),
    "metadata-empty-key": (_record(**{"": 1}), "ok"),
    "metadata-dotted-key": (_record(**{"a.b": 1}), "ok"),
    "metadata-quote-key": (_record(**{'a"b': 1}), "ok"),
    "metadata-surrogate": ('{"_id": "r", "text": "cats", "m": "\\ud800"}', "error"),
    "metadata-surrogate-key": ('{"_id": "r", "text": "cats", "\\ud800": 1}', "error"),
    "metadata-huge-string": (_record(m="x" * 1_000_000), "ok"),
    "metadata-huge-int": ('{"_id": "r", "text": "cats", "n": ' + "9" * 5000 + "}", "error"),
    "not-an-object-list": ("[1, 2]", "error"),
    "not-an-object-string": ('"text"', "error"),
    "not-an-object-null": ("null", "error"),
    "duplicate-keys": ('{"_id": "r", "_id": "s", "text": "cats"}', "ok"),
    "no-id": ('{"text": "cats"}', "error"),
    "empty-record": ('{"_id": "r"}', "ok"),
    "malformed": ('{"_id": "r", "text": cats}', "error"),
}


def record_cases() -> Iterator[Case]:
    for name, (line, expect) in RECORDS.items():
        yield record_case(name, line, expect)


QUERIES: dict[str, str] = {
    "empty": "", "blank": "   ", "newlines": "\n\t\n", "lone-surrogate": "cats \udcff", "high-surrogate": "\ud800x",
    "nul": "cats\x00dogs", "huge": "cat " * 25_000, "emoji": "\U0001f642" * 500, "dash": "-",
    "rtl": "\u0645\u0631\u062d\u0628\u0627",
    "combining": "e\u0301" * 100, "zero-width": "\u200b", "format-string": "%s%n{0}", "sql": "' OR 1=1 --",
    "shell": "$(rm -rf /)", "backslash": "\\", "carriage-return": "cats\rdogs", "escape-codes": "\x1b[31mred",
    "null-word": "null", "nan-word": "NaN", "numeric": "56486733", "punctuation": "?!.,;:",
    "cjk": "\u732b\u306f\u5bdd\u308b",
    "long-word": "x" * 20_000, "control": "".join(chr(i) for i in range(1, 32)),
}
QUERY_EXPECT = {"empty": "error", "blank": "error", "newlines": "error", "lone-surrogate": "error",
                "high-surrogate": "error", "zero-width": "ok", "rtl": "ok", "numeric": "ok", "sql": "ok"}


def search_case(name: str, group: str, args: list[str], expect: str = "any", env: dict | None = None) -> Case:
    def prepare(ws: Workspace, folder: Path) -> list[str]:
        return [args[0], "--index", str(ws.index), *args[1:]]  # before a "--" that ends the options

    return Case(f"{group}/{name}", group, prepare, expect, env or {})


def query_cases() -> Iterator[Case]:
    for name, query in QUERIES.items():
        for mode in ("dense", "lexical", "hybrid"):
            yield search_case(f"{name}-{mode}", "query", ["search", "--mode", mode, "--", query],
                              QUERY_EXPECT.get(name, "any"))


FILTERS: dict[str, str] = {  # filter -> expected outcome
    "year": "error", "year>": "error", ">2020": "error", "=5": "error", "year>>2020": "error", "year=<2020": "error",
    "year>=abc": "ok", "nope=1": "ok", "doc_id=": "error", "doc_id=\udcff": "error", "a b=1": "error",
    "year>=1e400": "ok", "year>=nan": "ok", "year>=inf": "ok", "year=true": "ok", "year~[": "ok", "year~*": "ok",
    "title~[!": "ok", "source~": "error", "x" * 10_000 + "=1": "ok", "year>=2020\n": "ok", "year=1990": "ok",
    "doc_id=56486733": "ok", "year!=": "error", "year<=-0": "ok", "a.b.c=1": "ok", 'a"b=1': "error",
    "\u00e9t\u00e9=1": "ok", "_=1": "ok", "year = 2020": "ok", "'year'=2020": "error", "year='2020'": "ok",
    "tags~pets": "ok", "tags=pets": "ok", "score>=0.5": "ok", "score>=.5": "ok", "score>=5e-1": "ok",
    "year>=0x10": "ok", "year>=1_000": "ok", "year>=--1": "ok", "doc_id~*": "ok", "source~/": "ok",
    "year>=2020;DROP TABLE documents": "ok", "title=' OR '1'='1": "ok", "year\x00=1": "error",
}


def filter_cases() -> Iterator[Case]:
    for number, (text, expect) in enumerate(FILTERS.items()):
        for mode in ("dense", "hybrid"):
            yield search_case(f"{number:02d}-{mode}", "filter", ["search", "cats", "--mode", mode, "--where", text],
                              expect)


ORACLE_FILTERS = (  # valid filters whose results are checked against the documented rule
    "doc_id=56486733", "doc_id=12", "doc_id!=12", "doc_id>5", "doc_id~n1*", "doc_id<=2", "year=1990", "year>=2000",
    "year<2000", "year!=1990", "year>=abc", "year=2021", "year>2010.5", "score>0.1", "score<=0.5", "score=5e-1",
    "title=Cats", "title~*e*", "title>M", "title<=Dogs", "tags~*pets*", "tags=pets", "nope=1", "year~19*",
    "source~*", "doc_id=n7",
)
ORACLE_PAIRS = (("year>=2010", "year<2015"), ("year>=1990", "title~N*"), ("doc_id~n*", "year!=2003"))


def stored_value(record: dict, field: str) -> Any:
    """What a filter sees of a record's field: columns as text, metadata as its JSON value (None: absent)."""
    if field == "doc_id":
        return record["_id"]
    if field == "title":
        return record.get("title", "")
    if field == "source":
        return None  # records have no source
    return record.get(field)


def matches(record: dict, condition: str) -> bool:
    """The rule of ``retriever.search.filters``, written again independently: compare as the stored type."""
    import fnmatch
    import re

    field_, op, value = re.match(r"([^\W\d][\w.-]*)(>=|<=|!=|=|>|<|~)(.*)", condition).groups()
    stored = stored_value(record, field_)
    if stored is None:
        return False
    if isinstance(stored, (list, dict)):
        stored = json.dumps(stored, separators=(",", ":"))
    if isinstance(stored, bool):
        stored = int(stored)
    if op == "~":
        return fnmatch.fnmatchcase(str(stored), value)
    if isinstance(stored, str):
        other: Any = value
    else:
        try:
            other = float(value) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value) else None
        except ValueError:
            other = None
        if other is None or not math.isfinite(other):
            return False
    return {"=": stored == other, "!=": stored != other, ">": stored > other, ">=": stored >= other,
            "<": stored < other, "<=": stored <= other}[op]


def oracle_case(number: int, conditions: tuple[str, ...]) -> Case:
    expected = sorted(r["_id"] for r in INDEX_RECORDS if all(matches(r, c) for c in conditions))

    def prepare(ws: Workspace, folder: Path) -> list[str]:
        where = [item for condition in conditions for item in ("--where", condition)]
        return ["search", "coffee", "--index", str(ws.index), "--mode", "dense", "-k", "100", "--json", *where]

    def check(stdout: str) -> str | None:
        found = sorted(json.loads(line)["doc_id"] for line in stdout.splitlines() if line.startswith("{"))
        return None if found == expected else f"{' AND '.join(conditions)}: found {found}, the rule selects {expected}"

    return Case(f"filter/oracle-{number:02d}", "filter", prepare, "ok", check=check)


def oracle_cases() -> Iterator[Case]:
    for number, conditions in enumerate([(f,) for f in ORACLE_FILTERS] + list(ORACLE_PAIRS)):
        yield oracle_case(number, conditions)


def option_cases() -> Iterator[Case]:
    """Options of every command, and paths that are not what the command expects."""
    searches = {
        "k-zero": ["-k", "0"], "k-negative": ["-k", "-1"], "k-word": ["-k", "abc"], "k-huge": ["-k", "1000000000"],
        "alpha-2": ["--alpha", "2"], "alpha-nan": ["--alpha", "nan"], "alpha-word": ["--alpha", "x"],
        "mode-bogus": ["--mode", "bogus"], "mode-empty": ["--mode", ""], "fusion-empty": ["--fusion", ""],
        "rerank-negative": ["--rerank", "-1"], "rerank-without-head": ["--rerank", "5"],
        "rerank-huge": ["--rerank", "99999999"], "unknown-option": ["--bogus"], "model-other": ["--model", "nope-xyz"],
        "passages-json": ["--passages", "--json"], "k-huge-lexical": ["-k", "100000", "--mode", "lexical"],
    }
    for name, extra in searches.items():
        yield search_case(name, "option", ["search", "cats", *extra])
    for name, args in {
        "info-json": ["info", "--json"], "verify-missing": ["verify", "cats", "nope"],
        "verify-empty-query": ["verify", "", "12"], "verify-surrogate": ["verify", "cats", "\udcff"],
        "verify-numeric-id": ["verify", "cats sleep", "12"], "verify-extra-arg": ["verify", "a", "b", "c"],
    }.items():
        yield search_case(name, "option", args)

    def with_paths(name: str, build: Callable[[Workspace, Path], list[str]], expect: str = "any",
                   env: dict | None = None) -> Case:
        return Case(f"option/{name}", "option", build, expect, env or {})

    def regular_file(folder: Path) -> Path:
        path = folder / "plain.txt"
        path.write_text("not an index")
        return path

    def corpus(folder: Path) -> Path:
        path = folder / "corpus"
        path.mkdir(exist_ok=True)
        (path / "a.txt").write_text("cats sleep in the sun")
        return path

    yield with_paths("search-index-is-file", lambda ws, f: ["search", "cats", "--index", str(regular_file(f))], "error")
    yield with_paths("info-index-is-file", lambda ws, f: ["info", "--index", str(regular_file(f))], "error")
    yield with_paths("search-index-missing", lambda ws, f: ["search", "cats", "--index", str(f / "nope")], "error")
    yield with_paths("search-index-empty-folder", lambda ws, f: ["search", "cats", "--index", str(f)], "error")
    yield with_paths("search-index-empty-string", lambda ws, f: ["search", "cats", "--index", ""], "error")
    yield with_paths("search-index-dev-null", lambda ws, f: ["search", "cats", "--index", "/dev/null"], "error")
    yield with_paths("index-into-file", lambda ws, f: index_command(ws, f, corpus(f))[:3]
                     + [str(regular_file(f)), "--model", ws.model, "-q"], "error")
    yield with_paths("index-below-file", lambda ws, f: index_command(ws, f, corpus(f))[:3]
                     + [str(regular_file(f) / "sub"), "--model", ws.model, "-q"], "error")
    yield with_paths("index-missing-path", lambda ws, f: index_command(ws, f, f / "nope"), "error")
    yield with_paths("index-dev-null", lambda ws, f: index_command(ws, f, Path("/dev/null")), "error")
    yield with_paths("index-empty-folder", lambda ws, f: index_command(ws, f, f), "error")
    yield with_paths("index-chunk-7", lambda ws, f: index_command(ws, f, corpus(f), "--chunk-tokens", "7"), "error")
    yield with_paths("index-chunk-huge", lambda ws, f: index_command(ws, f, corpus(f), "--chunk-tokens", "100000"))
    yield with_paths("index-overlap-huge", lambda ws, f: index_command(ws, f, corpus(f), "--overlap", "99999"), "error")
    yield with_paths("index-ann-bogus", lambda ws, f: index_command(ws, f, corpus(f), "--ann", "bogus"), "error")
    for kind in ("flat", "hnsw", "ivf"):
        yield with_paths(f"index-ann-{kind}", lambda ws, f, kind=kind: index_command(ws, f, corpus(f), "--ann", kind),
                         "ok")
    yield with_paths("index-strict-clean", lambda ws, f: index_command(ws, f, corpus(f), "--strict"), "ok")
    yield with_paths("index-model-missing", lambda ws, f: [*index_command(ws, f, corpus(f))[:4], "--model", "nope-xyz",
                                                           "-q"], "error")
    yield with_paths("index-model-is-file", lambda ws, f: [*index_command(ws, f, corpus(f))[:4], "--model",
                                                           str(regular_file(f)), "-q"], "error")
    yield with_paths("index-model-is-folder", lambda ws, f: [*index_command(ws, f, corpus(f))[:4], "--model",
                                                             str(corpus(f)), "-q"], "error")
    yield with_paths("index-other-model-into-index", lambda ws, f: [
        "index", str(corpus(f)), "--index", str(ws.copy_index(f)), "--model", "nope-xyz", "-q"], "error")

    def broken_symlinks(ws: Workspace, folder: Path) -> list[str]:
        path = corpus(folder)
        (path / "dangling.txt").symlink_to(folder / "missing.txt")
        (path / "loop").symlink_to(path, target_is_directory=True)
        (path / "dir.txt").mkdir()
        return index_command(ws, folder, path)

    yield with_paths("index-broken-symlinks", broken_symlinks)

    def unreadable(ws: Workspace, folder: Path) -> list[str]:
        path = corpus(folder)
        (path / "secret.txt").write_text("secret")
        (path / "secret.txt").chmod(0)
        return index_command(ws, folder, path)

    yield with_paths("index-unreadable-file", unreadable)
    yield with_paths("add-to-copy", lambda ws, f: ["index", str(corpus(f)), "--index", str(ws.copy_index(f)), "-q"],
                     "ok")

    def calibrate(*extra: str) -> Prepare:
        return lambda ws, f: ["calibrate", str(ws.dataset), "--index", str(ws.copy_index(f)), *extra]

    yield with_paths("calibrate-target-2", calibrate("--target-precision", "2"), "error")
    yield with_paths("calibrate-target-1", calibrate("--target-precision", "1"))
    yield with_paths("calibrate-missing-split", calibrate("--split", "nope"), "error")
    yield with_paths("calibrate-missing-dataset", lambda ws, f: ["calibrate", str(f / "nope"), "--index",
                                                                 str(ws.copy_index(f))], "error")
    yield with_paths("calibrate-negatives-0", calibrate("--negatives", "0"), "error")

    def bench(*extra: str) -> Prepare:
        return lambda ws, f: ["bench", str(ws.dataset), "--output", str(f / "out"), "--cache", str(f / "cache"),
                              "--base-model", ws.model, "-q", *extra]

    yield with_paths("bench-systems-bogus", bench("--systems", "bogus"), "error")
    yield with_paths("bench-systems-empty", bench("--systems", ""), "error")
    yield with_paths("bench-limit-queries-0", bench("--limit-queries", "0"), "error")
    yield with_paths("bench-missing-dataset", lambda ws, f: ["bench", str(f / "nope"), "-q"], "error")
    yield with_paths("bench-bm25", bench("--systems", "bm25"), "ok")
    yield with_paths("bench-hnsw-only", bench("--systems", "hnsw"), "ok")
    yield with_paths("bench-split-missing", bench("--split", "nope"), "error")

    def train(*extra: str) -> Prepare:
        return lambda ws, f: ["train", str(ws.dataset), "--output", str(f / "model"), "--model", ws.model, "-q",
                              "--max-steps", "1", *extra]

    yield with_paths("train-missing-data", lambda ws, f: ["train", str(f / "nope"), "-o", str(f / "m")], "error")
    yield with_paths("train-range-words", train("--negatives-range", "a:b"), "error")
    yield with_paths("train-range-empty", train("--negatives-range", "5:5"), "error")
    yield with_paths("train-lr-zero", train("--lr", "0"), "error")
    yield with_paths("train-output-is-file", lambda ws, f: ["train", str(ws.dataset), "-o", str(regular_file(f))],
                     "error")
    yield with_paths("train-resume-nothing", train("--resume"), "error")
    yield with_paths("train-cached-triplet", train("--loss", "triplet", "--cached"), "error")
    yield with_paths("no-command", lambda ws, f: [], "any")
    yield with_paths("unknown-command", lambda ws, f: ["no-such-command"], "error")


def _live(index: Path) -> dict:
    name = (index / "CURRENT").read_text().strip()
    return json.loads((index / "generations" / f"{name}.json").read_text())


def _segment(index: Path) -> Path:
    return index / "segments" / _live(index)["segments"][0]["name"]


def _manifest_file(index: Path) -> Path:
    return index / "generations" / f"{(index / 'CURRENT').read_text().strip()}.json"


def _edit_manifest(index: Path, change: Callable[[dict], Any]) -> None:
    data = json.loads(_manifest_file(index).read_text())
    change(data)
    _manifest_file(index).write_text(json.dumps(data))


def _garble(path: Path, at: int = 0, length: int = 48) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + length] = bytes(random.Random(at).randrange(256) for _ in range(min(length, len(data) - at)))
    path.write_bytes(bytes(data))


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.rglob(pattern))[0]


INDEX_DAMAGE: dict[str, Callable[[Path], Any]] = {  # name -> what it does to a copy of the shared index
    "vectors-truncated": lambda d: _first(_segment(d) / "vectors", "*.npy").write_bytes(b"\x93NUMPY"),
    "vectors-header-garbled": lambda d: _garble(_first(_segment(d) / "vectors", "*.npy")),
    "vectors-bytes-changed": lambda d: _garble(_first(_segment(d) / "vectors", "*.npy"),
                                               _first(_segment(d) / "vectors", "*.npy").stat().st_size - 64, 32),
    "vectors-missing": lambda d: _first(_segment(d) / "vectors", "*.npy").unlink(),
    "store-garbage": lambda d: (_segment(d) / "store.sqlite").write_bytes(
        b"not sqlite" * ((_segment(d) / "store.sqlite").stat().st_size // 10)),
    "store-missing": lambda d: (_segment(d) / "store.sqlite").unlink(),
    "store-truncated": lambda d: (_segment(d) / "store.sqlite").write_bytes(
        (_segment(d) / "store.sqlite").read_bytes()[:2048]),
    "lexical-garbled": lambda d: _garble(_first(_segment(d) / "lexical", "*.npy")),
    "lexical-vocabulary-garbled": lambda d: _garble(_first(_segment(d) / "lexical", "*.json")),
    "row-map-garbled": lambda d: _garble(_segment(d) / "doc_of_row.npy"),
    "passage-ids-missing": lambda d: (_segment(d) / "passage_ids.npy").unlink(),
    "segment-missing": lambda d: shutil.rmtree(_segment(d)),
    "segment-a-file": lambda d: (shutil.rmtree(_segment(d)), _segment(d).write_text("x")),
    "manifest-missing": lambda d: _manifest_file(d).unlink(),
    "manifest-a-folder": lambda d: (_manifest_file(d).unlink(), _manifest_file(d).mkdir()),
    "manifest-not-json": lambda d: _manifest_file(d).write_text("{not json"),
    "manifest-binary": lambda d: _manifest_file(d).write_bytes(b"\xff\xfe\x00garbage"),
    "manifest-deep": lambda d: _manifest_file(d).write_text("[" * 100_000 + "]" * 100_000),
    "manifest-a-list": lambda d: _manifest_file(d).write_text("[1, 2]"),
    "manifest-empty-object": lambda d: _manifest_file(d).write_text("{}"),
    "manifest-future-format": lambda d: _edit_manifest(d, lambda m: m.update(format_version=99)),
    "manifest-dimension-text": lambda d: _edit_manifest(d, lambda m: m["model"].update(dimension="abc")),
    "manifest-dimension-negative": lambda d: _edit_manifest(d, lambda m: m["model"].update(dimension=-3)),
    "manifest-model-null": lambda d: _edit_manifest(d, lambda m: m.update(model=None)),
    "manifest-segments-object": lambda d: _edit_manifest(d, lambda m: m.update(segments={"a": 1})),
    "manifest-segment-files-null": lambda d: _edit_manifest(d, lambda m: m["segments"][0].update(files=None)),
    "manifest-segment-escapes": lambda d: _edit_manifest(d, lambda m: m["segments"][0].update(name="../../x")),
    "manifest-segment-rows-wrong": lambda d: _edit_manifest(d, lambda m: m["segments"][0].update(rows=9999)),
    "manifest-segment-twice": lambda d: _edit_manifest(d, lambda m: m["segments"].append(m["segments"][0])),
    "manifest-ann-params-list": lambda d: _edit_manifest(d, lambda m: m["ann"].update(params=[1, 2])),
    "manifest-extras-null": lambda d: _edit_manifest(d, lambda m: m.update(extras=None)),
    "manifest-counts-negative": lambda d: _edit_manifest(d, lambda m: m["counts"].update(documents=-1)),
    "manifest-deletes-unknown": lambda d: _edit_manifest(
        d, lambda m: m["segments"][0].update(deletes="nope.npy", deleted_rows=1)),
    "manifest-vectors-kind-unknown": lambda d: _edit_manifest(
        d, lambda m: m["segments"][0]["vectors"].update(kind="annoy")),
    "current-missing-generation": lambda d: (d / "CURRENT").write_text("gen-000042\n"),
    "current-empty": lambda d: (d / "CURRENT").write_text(""),
    "current-not-utf8": lambda d: (d / "CURRENT").write_bytes(b"\xff\xfegen"),
    "current-a-folder": lambda d: ((d / "CURRENT").unlink(), (d / "CURRENT").mkdir()),
    "current-path-escape": lambda d: (d / "CURRENT").write_text("../../etc/passwd\n"),
    "format-1-index": lambda d: (shutil.rmtree(d), (d / "gen-000003").mkdir(parents=True),
                                 (d / "gen-000003" / "manifest.json").write_text('{"format_version": 1}'),
                                 (d / "CURRENT").write_text("gen-000003\n")),
}
INDEX_COMMANDS: dict[str, Callable[[Workspace, Path], list[str]]] = {
    "search": lambda ws, index: ["search", "coffee tea", "--index", str(index)],
    "info": lambda ws, index: ["info", "--index", str(index)],
    "check": lambda ws, index: ["check", "--index", str(index)],
    "index": lambda ws, index: ["index", str(ws.dataset / "corpus.jsonl"), "--index", str(index), "-q"],
}


def index_case(damage: str, command: str) -> Case:
    def prepare(ws: Workspace, folder: Path) -> list[str]:
        index = ws.copy_index(folder)
        INDEX_DAMAGE[damage](index)
        return INDEX_COMMANDS[command](ws, index)

    # every damage must be named: only a bytes-changed-in-place vector file loads (its size and header are
    # right) and is caught by 'retriever check' alone
    expect = "any" if damage == "vectors-bytes-changed" and command != "check" else "error"
    return Case(f"index/{damage}/{command}", "index", prepare, expect)


def index_cases() -> Iterator[Case]:
    for damage in INDEX_DAMAGE:
        for command in INDEX_COMMANDS:
            yield index_case(damage, command)


def all_cases() -> list[Case]:
    cases = [*file_cases(), *record_cases(), *query_cases(), *filter_cases(), *oracle_cases(), *option_cases(),
             *index_cases()]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    assert set(FAST_CASES) <= set(names), f"unknown fast cases: {set(FAST_CASES) - set(names)}"
    return cases


FAST_CASES = (  # ~50 cases for tests/test_reliability.py: every group, none of the slow ones
    *(f"file/{name}{suffix}" for name, suffix in [
        ("empty", ".txt"), ("bom-record", ".jsonl"), ("nul-middle", ".md"), ("random-binary", ".pdf"),
        ("truncated-utf8", ".html"), ("deep-array", ".jsonl"), ("deep-object", ".json"), ("json-null", ".json"),
        ("truncated-json", ".jsonl"), ("nan-metadata", ".jsonl"), ("huge-integer", ".json"),
        ("surrogate-text", ".jsonl"),
        ("surrogate-id", ".json"), ("pdf-junk", ".pdf"), ("pdf-truncated", ".pdf"), ("utf16", ".rst"),
        ("empty-record", ".jsonl"), ("duplicate-ids", ".jsonl")]),
    *(f"record/{name}" for name in [
        "id-false", "id-nan", "id-blank", "id-list", "id-int", "id-surrogate", "text-number", "text-surrogate",
        "title-object", "metadata-nan", "metadata-deep-200", "metadata-surrogate-key", "not-an-object-list"]),
    *(f"query/{name}" for name in ["empty-hybrid", "lone-surrogate-dense", "nul-lexical", "control-hybrid",
                                   "dash-dense", "emoji-lexical"]),
    *(f"filter/{number:02d}-dense" for number in (0, 6, 7, 9, 11, 15, 23, 31, 44)),
    *(f"filter/oracle-{number:02d}" for number in (0, 3, 6, 10, 19, 26)),
    *(f"option/{name}" for name in ["mode-empty", "alpha-nan", "search-index-is-file", "index-into-file",
                                    "index-below-file", "index-dev-null", "verify-surrogate", "unknown-command"]),
    *(f"index/{name}" for name in ["vectors-truncated/search", "store-garbage/info", "manifest-deep/search",
                                   "manifest-segment-escapes/index", "current-not-utf8/info",
                                   "lexical-garbled/search", "vectors-bytes-changed/check", "format-1-index/index"]),
)


# running -------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: str
    group: str
    verdict: str
    exit_code: int | None
    seconds: float
    detail: str = ""  # the start of what it printed (stderr, else stdout)


class CaseTimeout(BaseException):  # noqa: N818 - a BaseException, so that the CLI's last resort cannot swallow it
    """A case ran past its time limit."""


def classify(case: Case, exit_code: int | None, stdout: str, stderr: str, escaped: BaseException | None) -> str:
    """The verdict of one run; see the module docstring."""
    if "Traceback" in stdout or "Traceback" in stderr or escaped is not None:
        return "traceback"
    if exit_code not in (0, 1, 2):
        return "crash"
    if exit_code != 0:
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
        if case.name == "option/no-command":  # plain `retriever` prints the help, like git
            lines = [] if stderr.startswith("Usage:") or stdout.startswith("Usage:") else lines
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            return "multi-line"
    if case.expect == "ok" and exit_code != 0 or case.expect == "error" and exit_code == 0:
        return "unexpected"
    return "ok" if exit_code == 0 else "error"


def run_in_process(case: Case, ws: Workspace, folder: Path, timeout: int) -> Outcome:
    from click.testing import CliRunner

    from retriever.cli import main

    folder.mkdir(parents=True)
    started = time.perf_counter()
    args = case.prepare(ws, folder)

    def expire(*_: object) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(timeout)
    try:
        result = CliRunner().invoke(main, args, env=case.env, catch_exceptions=True)
        stdout, stderr, code = result.stdout, result.stderr, result.exit_code
        escaped = None if result.exception is None or isinstance(result.exception, SystemExit) else result.exception
        verdict = classify(case, code, stdout, stderr, escaped)
        problem = case.check(stdout) if verdict == "ok" and case.check else None
        if problem:
            verdict, stderr = "wrong", problem
        if escaped is not None:
            stderr += f"\n{type(escaped).__name__}: {escaped}"
    except CaseTimeout:
        verdict, code, stdout, stderr = "hang", None, "", f"no answer in {timeout}s"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    detail = (stderr.strip() or stdout.strip())[:500]
    return Outcome(case.name, case.group, verdict, code, time.perf_counter() - started, detail)


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("retriever")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from retriever.cli import main; main()"]


def run_subprocess(case: Case, ws: Workspace, folder: Path, timeout: int, argv_bytes: list[bytes] | None = None,
                   pipe_to: list[str] | None = None) -> Outcome:
    """The same case as a real process: what a shell user sees, argv decoding and closed pipes included."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    if argv_bytes is None:  # as a shell passes them: bytes, lone surrogates back to the bytes they stand for
        argv_bytes = [a.encode("utf-8", "surrogateescape") for a in case.prepare(ws, folder)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **case.env}
    command = [c.encode() for c in cli_command()] + argv_bytes
    try:
        if pipe_to:
            producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            consumer = subprocess.run(pipe_to, stdin=producer.stdout, capture_output=True, timeout=timeout)
            producer.stdout.close()
            stderr = producer.stderr.read().decode("utf-8", "replace")
            code = producer.wait(timeout=timeout)
            stdout = consumer.stdout.decode("utf-8", "replace")
        else:
            done = subprocess.run(command, capture_output=True, timeout=timeout, env=env)
            code, stdout, stderr = done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode(
                "utf-8", "replace")
        verdict = classify(case, code, stdout, stderr, None)
    except subprocess.TimeoutExpired:
        verdict, code, stdout, stderr = "hang", None, "", f"no answer in {timeout}s"
    detail = (stderr.strip() or stdout.strip())[:500]
    return Outcome(f"subprocess/{case.name}", "subprocess", verdict, code, time.perf_counter() - started, detail)


def subprocess_runs(ws: Workspace, cases: dict[str, Case], scratch: Path, timeout: int) -> list[Outcome]:
    """A handful of cases as real processes, and the ones only a real process can show."""
    outcomes = []
    for name in ("record/id-false", "file/deep-array.jsonl", "query/lone-surrogate-dense", "option/index-into-file",
                 "option/search-index-is-file", "filter/06-dense"):
        outcomes.append(run_subprocess(cases[name], ws, scratch / f"sub-{len(outcomes)}", timeout))
    invalid_utf8 = Case("query/invalid-utf8-argv", "query", lambda ws, f: [], "error")
    outcomes.append(run_subprocess(invalid_utf8, ws, scratch / "sub-argv", timeout,
                                   argv_bytes=[b"search", b"caf\xe9 \xff", b"--index", str(ws.index).encode()]))
    piped = Case("option/search-piped-to-head", "option", lambda ws, f: ["search", "coffee tea", "-k", "25",
                                                                            "--index", str(ws.index)], "ok")
    outcomes.append(run_subprocess(piped, ws, scratch / "sub-pipe", timeout, pipe_to=["head", "-n", "1"]))
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    by_group: dict[str, Counter] = {}
    for outcome in outcomes:
        by_group.setdefault(outcome.group, Counter())[outcome.verdict] += 1
    totals = Counter(o.verdict for o in outcomes)
    return {
        "cases": len(outcomes),
        "totals": {v: totals.get(v, 0) for v in VERDICTS},
        "by_group": {g: {v: c.get(v, 0) for v in VERDICTS} for g, c in sorted(by_group.items())},
        "failures": [asdict(o) for o in outcomes if o.verdict not in GOOD],
        "errors": {o.case: o.detail.splitlines()[-1] if o.detail else "" for o in outcomes if o.verdict == "error"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Model for every case (default: a tiny random BERT).")
    parser.add_argument("--group", action="append", help="Only these groups (file, record, query, filter, option).")
    parser.add_argument("--fast", action="store_true", help="Only the fast subset that the tests run.")
    parser.add_argument("--list", action="store_true", help="List the cases and exit.")
    parser.add_argument("--verbose", action="store_true", help="Print the last line each case printed.")
    parser.add_argument("--timeout", type=int, default=120, help="Seconds before a case counts as hung.")
    parser.add_argument("--no-subprocess", action="store_true", help="Skip the real-process runs.")
    parser.add_argument("--trials", type=int, default=20,
                        help="kill -9 trials (concurrent runs: half as many, at least 10; reader commits: at least 20)")
    parser.add_argument("--no-trials", action="store_true", help="Skip the on-disk trials (benchmarks/disk_trials.py).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cases = [c for c in all_cases() if (not args.group or c.group in args.group)
             and (not args.fast or c.name in FAST_CASES)]
    if args.list:
        for case in cases:
            print(f"{case.group:7} {case.expect:5} {case.name}")
        print(f"{len(cases)} cases")
        return
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="retriever-reliability-"))
    try:
        from tiny_model import tiny_model

        model = args.model or tiny_model(scratch / "model")
        ws = Workspace(scratch, model)
        outcomes = []
        for number, case in enumerate(cases):
            outcome = run_in_process(case, ws, scratch / "cases" / f"{number:04d}", args.timeout)
            outcomes.append(outcome)
            shown = outcome.verdict not in GOOD or (args.verbose and outcome.detail)
            mark = f"  <-- {outcome.detail.splitlines()[-1][:200]!r}" if shown else ""
            print(f"[{number + 1:>3}/{len(cases)}] {outcome.verdict:10} {outcome.seconds:5.1f}s {case.name}{mark}",
                  flush=True)
        if not args.no_subprocess:
            for outcome in subprocess_runs(ws, {c.name: c for c in all_cases()}, scratch, args.timeout):
                outcomes.append(outcome)
                print(f"[subprocess] {outcome.verdict:10} {outcome.seconds:5.1f}s {outcome.case}", flush=True)
        trials = None
        if not args.no_trials and not args.fast and not args.list:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from disk_trials import run_trials

            print("on-disk trials: kill -9, concurrent index runs, readers during commits ...", flush=True)
            trials = run_trials(model, scratch / "trials", args.trials)
            print(json.dumps(trials, indent=1), flush=True)
    finally:
        for path in scratch.rglob("*"):  # cases may leave files without permissions behind
            if path.is_file() and not path.is_symlink():
                path.chmod(0o644)
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        **provenance(),
        "model": args.model or "tiny random BERT (tests/conftest.py)",
        "seconds": round(time.perf_counter() - started, 1),
        **summarise(outcomes),
        "disk_trials": trials,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=True) + "\n")
    totals = report["totals"]
    print(f"{report['cases']} cases in {report['seconds']:.0f}s: " + ", ".join(f"{v} {totals[v]}" for v in VERDICTS))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
