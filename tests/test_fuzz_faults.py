"""Fuzz and fault suite (issue 24): hostile folders, hostile filters, read-only indexes.

Hypothesis tries each class of input a careless or hostile user hands in, derandomized and bounded
(about 10-20 s in all), and the engine must answer correctly or with a one-line ``RetrieverError``:

- filters: generated ``FIELD OP VALUE`` conditions, integers far past 64 bits included, give exactly the
  documents a brute-force evaluation over the records' metadata gives; arbitrary and oversized filter
  lists give that or a ``RetrieverError``, never another exception (the CLI: one ``error:`` line);
- special files in a corpus (FIFO, socket, symlink to /dev/zero, unreadable folder): skipped with a
  warning, the run never hangs;
- foreign files in an index folder (named like the engine's, or not): never removed by updates or optimize;
- a read-only index: search, get, info and check work and write nothing.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hypothesis", reason="the fuzz suite needs the 'dev' extra: pip install 'retriever[dev]'")
from click.testing import CliRunner  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from retriever import Retriever  # noqa: E402
from retriever.cli import main  # noqa: E402
from retriever.errors import RetrieverError, RetrieverWarning  # noqa: E402
from retriever.search.filters import MAX_CONDITION_CHARS, MAX_CONDITIONS  # noqa: E402


def fuzz(examples: int) -> settings:
    """Derandomized (the same inputs every run, so a failure reproduces) and bounded."""
    return settings(derandomize=True, max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# filters against a brute-force evaluation ------------------------------------------------------------------
BIG = 2**63
RECORDS = [  # every JSON type, numbers at and past the edges of 64 bits, text that looks like numbers
    {"_id": "a", "title": "Cats", "text": "cats sleep kiwi", "year": 2021, "n": BIG - 1, "label": "1990", "flag": True},
    {"_id": "b", "title": "Dogs", "text": "dogs walk kiwi", "year": 2019, "n": -BIG, "label": "abc", "flag": False},
    {"_id": "c", "title": "", "text": "train kiwi", "year": 2020.5, "n": 1e19, "label": "990", "tags": ["x", "y"]},
    {"_id": "d/e.md", "text": "coffee brew kiwi", "year": "2020", "n": -1e19, "label": "", "tags": {"k": 1}},
    {"_id": "f", "title": "Tea", "text": "tea water kiwi", "year": None, "n": 0, "score": 0.5, "flag": 1},
    {"_id": "g", "title": "a*b", "text": "sun garden kiwi", "year": -5, "n": 2.0**63, "score": -1e300, "label": "a*b"},
    {"_id": "h", "text": "music song kiwi", "n": -(2.0**63), "score": 1e-5},
]
FIELDS = ["doc_id", "title", "year", "n", "label", "flag", "tags", "score", "missing"]
OPS = ["=", "!=", ">", ">=", "<", "<=", "~"]
TRUTH = {"true": 1, "false": 0}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def as_number(value: str) -> int | float | None:
    if value.lower() in TRUTH:
        return TRUTH[value.lower()]
    if not NUMBER.fullmatch(value):
        return None
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def sqlite_text(value: Any) -> str:
    """A stored value as SQLite's GLOB sees it: json_extract's result (1/0 for true/false, minified JSON for a list
    or an object, a real as SQLite prints it) turned into text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    with sqlite3.connect(":memory:") as db:
        return db.execute("SELECT CAST(? AS TEXT)", (int(value) if isinstance(value, bool) else value,)).fetchone()[0]


def compare(stored: Any, op: str, wanted: Any) -> bool:
    return {"=": stored == wanted, "!=": stored != wanted, ">": stored > wanted, ">=": stored >= wanted,
            "<": stored < wanted, "<=": stored <= wanted}[op]


def matches(record: dict[str, Any], field: str, op: str, value: str) -> bool:
    """The filter semantics of retriever.search.filters, written out in Python."""
    if field in ("doc_id", "title"):
        stored: Any = record.get("_id" if field == "doc_id" else "title", "")
        return fnmatch.fnmatchcase(stored, value) if op == "~" else compare(stored, op, value)
    stored = record.get(field)
    if stored is None:
        return False
    if op == "~":
        return fnmatch.fnmatchcase(sqlite_text(stored), value)
    if isinstance(stored, (bool, int, float)):
        number = as_number(value)
        return number is not None and compare(int(stored) if isinstance(stored, bool) else stored, op, number)
    text = stored if isinstance(stored, str) else json.dumps(stored, separators=(",", ":"))
    return compare(text, op, value)


edge_integers = st.sampled_from([BIG - 1, BIG, BIG + 1, -BIG, -BIG - 1, 2**64, 10**19, -(10**19), 10**30,
                                 -(10**400), 0, 2019, 2020, 2021])
numbers = st.one_of(edge_integers, st.integers(), st.integers(-(10**30), 10**30).map(lambda i: i * 2**40),
                    st.floats(allow_nan=False, allow_infinity=False))
words = st.text(alphabet="abcdeghxyzCDT019*?./ -_", min_size=1, max_size=8)
values = st.one_of(numbers.map(str), st.sampled_from(["true", "false", "True", "1990", "a*b", "1e400", "x", "Tea"]),
                   words).filter(lambda v: v == v.strip().strip("'\"") and v[0] not in "<>=!~" and "[" not in v)
conditions = st.tuples(st.sampled_from(FIELDS), st.sampled_from(OPS), values)
STORED_NUMBERS = sorted({v for r in RECORDS for v in r.values() if isinstance(v, (int, float)) and v is not True
                         and v is not False})
near_stored = st.tuples(st.sampled_from(STORED_NUMBERS), st.integers(-2, 2), st.booleans()).map(
    lambda t: str(int(t[0]) + t[1]) if t[2] else repr(float(t[0]) + t[1]))  # at and beside each stored number
numeric_conditions = st.tuples(st.sampled_from(["n", "year", "score"]), st.sampled_from(OPS[:-1]), near_stored)


@pytest.fixture(scope="module")
def records_retriever(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Retriever:
    retriever = Retriever.build(RECORDS, index_dir=tmp_path_factory.mktemp("fuzz") / "idx", model=tiny_model)
    yield retriever
    retriever.close()


def found(retriever: Retriever, where: list[str]) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetrieverWarning)  # "matches nothing" notes
        hits = retriever.search("kiwi", k=len(RECORDS), mode="lexical", where=where)  # a word of every document
    return {hit.doc_id for hit in hits}


def test_every_document_is_found_without_a_filter(records_retriever: Retriever) -> None:
    assert found(records_retriever, []) == {r["_id"] for r in RECORDS}  # so the comparisons below are exact


@fuzz(200)
@given(st.lists(st.one_of(conditions, numeric_conditions), min_size=1, max_size=3))
def test_filters_give_what_a_brute_force_evaluation_gives(records_retriever: Retriever,
                                                          generated: list[tuple[str, str, str]]) -> None:
    where = [f"{field}{op}{value}" for field, op, value in generated]
    wanted = {r["_id"] for r in RECORDS if all(matches(r, f, op, v) for f, op, v in generated)}
    assert found(records_retriever, where) == wanted, where


def test_numbers_at_and_beside_the_64_bit_edges_compare_exactly(records_retriever: Retriever) -> None:
    """Every comparison with each stored number of ``n`` and its neighbours, as integers and as doubles: where
    64-bit integers and doubles meet, one wrong rounding changes an answer (too rare for random choices)."""
    wrong = []
    for stored in sorted({r["n"] for r in RECORDS if "n" in r}):
        for delta in (-2, -1, 0, 1, 2):
            for value in (str(int(stored) + delta), repr(float(stored) + delta)):
                for op in OPS[:-1]:
                    wanted = {r["_id"] for r in RECORDS if matches(r, "n", op, value)}
                    if found(records_retriever, [f"n{op}{value}"]) != wanted:
                        wrong.append(f"n{op}{value}")
    assert wrong == []


@fuzz(50)
@given(st.one_of(
    st.lists(st.text(max_size=40), max_size=5),
    st.lists(st.sampled_from(["year>1", "n<=-99999999999999999999999", "label~*"]), min_size=MAX_CONDITIONS - 2,
             max_size=MAX_CONDITIONS + 40),
    st.lists(st.integers(MAX_CONDITION_CHARS - 30, MAX_CONDITION_CHARS + 30).map(lambda n: "title=" + "x" * n),
             min_size=1, max_size=2),
    st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(OPS), st.text(max_size=12)).map("".join),
             min_size=1, max_size=3),
))
def test_any_filter_is_answered_or_refused_in_one_line(records_retriever: Retriever, where: list[str]) -> None:
    try:
        found(records_retriever, where)
    except RetrieverError as exc:
        assert "\n" not in str(exc) and str(exc), where
        if len(where) > MAX_CONDITIONS:
            assert f"at most {MAX_CONDITIONS}" in str(exc)


def test_out_of_range_and_oversized_filters_in_the_cli(records_retriever: Retriever) -> None:
    index = str(records_retriever.layout.root)
    runner = CliRunner()
    big = runner.invoke(main, ["search", "cats", "--index", index, "--mode", "dense", "--json",
                               "--where", f"n>={10**30}", "--where", f"n>{-(10**400)}"])
    assert big.exit_code == 0 and big.stdout.strip() == "", big.output  # no stored number is that big
    search = ["search", "cats", "--index", index]
    too_many = runner.invoke(main, [*search, *["--where", "year>1"] * (MAX_CONDITIONS + 1)])
    too_long = runner.invoke(main, [*search, "--where", "title=" + "x" * MAX_CONDITION_CHARS])
    for result, reason in ((too_many, f"at most {MAX_CONDITIONS}"), (too_long, f"at most {MAX_CONDITION_CHARS}")):
        assert result.exit_code == 1
        assert result.stderr.startswith("error: where:") and reason in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "--debug" not in result.stderr


# special files in a corpus ---------------------------------------------------------------------------------
def make_special(folder: Path, kind: str, name: str) -> Path:
    path = folder / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.close()  # the socket file stays
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo-link":
        os.mkfifo(folder / f".{name}.target")
        path.symlink_to(folder / f".{name}.target")
    elif kind == "locked":
        path.mkdir()
        (path / "inside.txt").write_text("tea water")
    return path


def run_with_deadline(work: Any, seconds: float = 60) -> Any:
    """Run ``work()`` in a thread; fail (instead of hanging the suite) if it does not end in time."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@fuzz(6)
@given(st.dictionaries(st.sampled_from(["fifo", "socket", "zero", "fifo-link", "locked"]),
                       st.sampled_from(["a.txt", "b.md", "c.jsonl", "d.html"]), min_size=1, max_size=4))
def test_special_files_in_a_corpus_are_skipped_with_a_warning(tmp_path_factory: pytest.TempPathFactory,
                                                              tiny_model: str, monkeypatch: pytest.MonkeyPatch,
                                                              kinds: dict[str, str]) -> None:
    root = tmp_path_factory.mktemp("special") / "corpus"
    root.mkdir()
    (root / "cats.txt").write_text("cats sleep in the sun")
    specials = {kind: make_special(root, kind, f"{kind}-{name}") for kind, name in kinds.items()}
    locked = str(specials["locked"].resolve()) if "locked" in specials else None
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:  # root ignores chmod 000: refuse the listing as a locked folder would
        if locked is not None and os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = run_with_deadline(lambda: Retriever.build(root, index_dir=root.parent / "idx", model=tiny_model))
    try:
        assert {hit.doc_id for hit in built.search("cats", k=5, mode="dense")} == {"cats.txt"}
        said = [str(w.message) for w in caught if issubclass(w.category, RetrieverWarning)]
        assert len(said) == 1 and said[0].startswith(f"skipped {len(specials)} unreadable file"), said
        named = sum(path.name in said[0] for path in specials.values())  # the first few by name, the rest counted
        assert named == min(len(specials), 3), said
    finally:
        built.close()


# foreign files in an index folder ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    folder = tmp_path_factory.mktemp("small") / "idx"
    Retriever.build(RECORDS[:3], index_dir=folder, model=tiny_model).close()
    return folder


ENGINE_NAMES = re.compile(r"(seg|gen)-\d{1,6}(\.json)?")  # a name the engine may hand out next
foreign_names = st.tuples(
    st.sampled_from(["segments/seg-", "segments/", "generations/gen-", "generations/", "deletes/", "catalog/files.",
                     ".staging-", "", "readers/"]),
    st.text(alphabet="0123456789abcdefjpgbakJSON._-", min_size=1, max_size=14),
    st.booleans(),  # a folder holding a file, or a file
).filter(lambda t: not ENGINE_NAMES.fullmatch(t[0].rsplit("/", 1)[-1] + t[1]) and not t[1].endswith(".lease")
         and t[1] not in (".", ".."))


@fuzz(6)
@given(st.lists(foreign_names, min_size=1, max_size=6, unique_by=lambda t: t[0] + t[1]))
def test_files_the_engine_did_not_write_are_never_removed(small_index: Path, tmp_path_factory: pytest.TempPathFactory,
                                                          names: list[tuple[str, str, bool]]) -> None:
    index_dir = tmp_path_factory.mktemp("foreign") / "idx"
    shutil.copytree(small_index, index_dir)
    planted = {}
    for prefix, rest, is_folder in names:
        path = index_dir / f"{prefix}{rest}"
        if path.exists():
            continue
        path = path / "keep.txt" if is_folder else path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"not the engine's: {prefix}{rest}")
        planted[path] = path.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetrieverWarning)  # "left files it did not write" notes
        retriever = Retriever.load(index_dir)
        retriever.add([{"_id": "new", "text": "tea water"}])
        retriever.remove(["a"])
        retriever.optimize()
        retriever.close()
    for path, text in planted.items():
        assert path.read_text() == text, path
    assert len(Retriever.load(index_dir)) == 3


# a read-only index ------------------------------------------------------------------------------------------
def snapshot_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@fuzz(4)
@given(st.sampled_from([(13, "Permission denied"), (30, "Read-only file system")]),
       st.lists(st.sampled_from(["search", "get", "info", "check", "refresh", "cli-info", "cli-check", "cli-search"]),
                min_size=1, max_size=8, unique=True))
def test_a_read_only_index_is_read_and_never_written(small_index: Path, monkeypatch: pytest.MonkeyPatch,
                                                     error: tuple[int, str], reads: list[str]) -> None:
    """``chmod -R a-w`` where it works; as root (whom chmod does not stop) every write is refused as a
    read-only mount refuses it."""
    import builtins

    from retriever.index import layout as layout_module

    before = snapshot_of(small_index)
    if os.geteuid() != 0:
        for path in [small_index, *small_index.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    else:
        def read_only_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(flag in mode for flag in "wax+"):
                raise (PermissionError if error[0] == 13 else OSError)(error[0], error[1], str(file))
            return builtins.open(file, mode, *args, **kwargs)

        monkeypatch.setattr(layout_module, "open", read_only_open, raising=False)
    try:
        reader = Retriever.load(small_index)
        for read in reads:
            if read == "search":
                assert reader.search("cats", k=1, where="year>=2021")[0].doc_id == "a"
            elif read == "get":
                assert reader.get("b").title == "Dogs"
            elif read == "info":
                assert reader.info()["counts"]["documents"] == 3
            elif read == "check":
                assert reader.check() == []
            elif read == "refresh":
                assert reader.refresh() is False
            else:
                command, *rest = read.removeprefix("cli-").split() + (["cats"] if read == "cli-search" else [])
                result = CliRunner().invoke(main, [command, *rest, "--index", str(small_index)])
                assert result.exit_code == 0, result.output
        reader.close()
    finally:
        if os.geteuid() != 0:
            for path in [small_index, *small_index.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
    assert snapshot_of(small_index) == before, "a read wrote into the index"
