"""The Milvus store (Milvus Lite, one file per module under a temporary folder) against the local store.

Every behaviour is checked by doing the same thing to a local index and a Milvus one and comparing what a user
sees: hits (ids, scores, passages, offsets, metadata) in every mode and filter, incremental folder sync,
records added and removed, documents, counts, the CLI, the model check and a failed update.

After an incremental update only dense search is compared score for score: Milvus Lite keeps BM25 statistics per
segment (each commit flushes one), so BM25 scores drift from the local store's global ones until its compaction
merges segments; there lexical search is checked for what it must find and must no longer find.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_corpus

from retriever import Retriever
from retriever.cli import main
from retriever.errors import ModelMismatchError, RetrieverError, RetrieverWarning
from retriever.ingest.chunking import encoding_text

pytest.importorskip("pymilvus", reason="the Milvus store needs the extra: pip install 'retriever[milvus]'")
pytest.importorskip("milvus_lite", reason="the Milvus store needs the extra: pip install 'retriever[milvus]'")

WORDS = ("cat dog fish bird car train music song coffee tea water sleep memory brain password login email "
         "invoice payment card refund backup restore garden tomato sun plant delivery parcel order").split()
QUERIES = ["cats sleep at night", "refund to my card", "train to the coast", "coffee", "garden walk with a dog",
           encoding_text("Refunds", "A refund is paid to your card.")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One Milvus Lite database for the module (each index gets its own collections in it)."""
    return f"milvus:{tmp_path_factory.mktemp('milvus') / 'store.db'}"


def records(n: int, seed: int = 0, prefix: str = "r") -> list[dict]:
    rng = random.Random(seed)
    return [{"_id": f"{prefix}{i}", "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
             "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))), "n": i,
             "kind": rng.choice(["a", "b"])} for i in range(n)]


def seen(hits: list) -> list[tuple]:
    """What a user sees of hits, but the scores (compared apart, to float32 rounding)."""
    return [(h.doc_id, h.text, h.title, h.source, h.start, h.end, h.metadata) for h in hits]


def scores(hits: list) -> list[float]:
    return [h.score for h in hits]


def assert_same_searches(local: Retriever, milvus: Retriever, queries: list[str] = QUERIES,
                         modes: tuple[str, ...] = ("dense", "lexical", "hybrid"), **options: object) -> None:
    for mode in modes:
        for extra in ({}, {"fusion": "rrf"}, {"passages": True}):
            if mode != "hybrid" and "fusion" in extra:
                continue
            for query in queries:
                a = local.search(query, k=5, mode=mode, **extra, **options)
                b = milvus.search(query, k=5, mode=mode, **extra, **options)
                assert seen(a) == seen(b), (mode, extra, options, query)
                assert scores(a) == pytest.approx(scores(b), abs=1e-4), (mode, extra, options, query)


def build_pair(root: Path, corpus: Path, tiny_model: str, store: str) -> tuple[Retriever, Retriever]:
    """The same folder (the shared corpus plus a long file of several passages) in a local and a Milvus index."""
    long_text = " ".join(random.Random(1).choice(WORDS) for _ in range(400))
    (corpus / "long.txt").write_text(long_text)
    local = Retriever.build(corpus, index_dir=root / "local", model=tiny_model)
    milvus = Retriever.build(corpus, index_dir=root / "milvus", model=tiny_model, store=store)
    return local, milvus


@pytest.fixture(scope="module")
def shared_pair(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, store: str) -> tuple[Retriever, Retriever]:
    """One pair for the tests that only read (built once: each build costs about two seconds)."""
    root = tmp_path_factory.mktemp("pair")
    return build_pair(root, write_corpus(root / "corpus"), tiny_model, store)


@pytest.fixture
def pair(tmp_path: Path, corpus: Path, tiny_model: str, store: str) -> tuple[Retriever, Retriever]:
    """A pair of its own, for a test that changes the indexes."""
    return build_pair(tmp_path, corpus, tiny_model, store)


def test_a_folder_searches_alike_in_every_mode(shared_pair: tuple[Retriever, Retriever]) -> None:
    local, milvus = shared_pair
    assert milvus.manifest.store.startswith("milvus:") and local.manifest.store == "local"
    assert milvus.manifest.counts == local.manifest.counts
    assert milvus.manifest.counts["passages"] > milvus.manifest.counts["documents"]  # long.txt has several
    assert_same_searches(local, milvus)
    assert milvus.get("long.txt") == local.get("long.txt")
    assert milvus.get("q1") == local.get("q1")
    assert milvus.get("nope") is None
    verdict_local, verdict_milvus = local.verify("cats sleep", "cats.txt"), milvus.verify("cats sleep", "cats.txt")
    assert verdict_milvus.score == pytest.approx(verdict_local.score, abs=1e-5)


@pytest.mark.parametrize("where", [["year>=2020"], ["year<2020"], ["source~sub/*"], ["doc_id=q1"], ["title=Dogs"],
                                   ["title~Co*"], ["title!=Dogs", "source~*.md"], ["nothing=1"]])
def test_filters_select_the_same_documents(shared_pair: tuple[Retriever, Retriever], where: list[str]) -> None:
    local, milvus = shared_pair
    if where == ["nothing=1"]:  # a field no document has: each store finds nothing and says why
        for store in shared_pair:
            with pytest.warns(RetrieverWarning, match="no document has a field 'nothing'"):
                assert store.search("cats", k=5, where=where) == []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RetrieverWarning)
            assert_same_searches(local, milvus, where=where)
        return
    assert_same_searches(local, milvus, where=where)


def test_filters_compare_as_the_stored_type_as_in_the_local_store(tmp_path: Path, tiny_model: str,
                                                                  store: str) -> None:
    """Numeric-looking ids are text; a field holding the string "1990" matches year=1990 but not year>=2020."""
    rows = [{"_id": "56486733", "text": "cats sleep at night", "year": 2021, "flag": True},
            {"_id": "7", "text": "dogs walk in the garden", "year": "1990", "flag": False},
            {"_id": "8", "text": "tea and coffee at night", "year": 1990, "score": 0.25, "n": 2**63 - 1}]
    local = Retriever.build(rows, index_dir=tmp_path / "local", model=tiny_model)
    milvus = Retriever.build(rows, index_dir=tmp_path / "milvus", model=tiny_model, store=store)
    expected = {"doc_id=56486733": {"56486733"}, "year=1990": {"7", "8"}, "year>=2020": {"56486733"},
                "year!=1990": {"56486733"}, "flag=true": {"56486733"}, "flag!=true": {"7"}, "score<0.5": {"8"},
                "year>=abc": set(),
                # integers past 64 bits: the same exact comparison as the local store, not a parse error (issue 24);
                # the string "1990" compares as text ("1990" > "1000...")
                f"year>={10**20}": {"7"}, f"year<{10**20}": {"56486733", "8"}, f"year={10**20}": set(),
                f"year!={10**20}": {"56486733", "7", "8"}, f"year>{-10**20}": {"56486733", "7", "8"},
                f"year<={-2**63 - 1}": set(), f"n={2**63}": set(), f"n<{2**63}": {"8"}, f"n>={2**63}": set(),
                f"n={2**63 - 1}": {"8"}, f"n>{2**63 + 1}": set()}
    for where, ids in expected.items():
        for retriever in (local, milvus):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # year>=abc warns; checked in test_filters
                found = {h.doc_id for h in retriever.search("night", k=10, mode="dense", where=where)}
            assert found == ids, (where, retriever.manifest.store)


def test_a_filter_milvus_cannot_express_is_refused_in_one_line(shared_pair: tuple[Retriever, Retriever]) -> None:
    _, milvus = shared_pair
    with pytest.raises(RetrieverError, match=r"cannot be translated for Milvus") as caught:
        milvus.search("cats", where="title~[CD]*")
    assert "\n" not in str(caught.value)


def test_folder_sync_updates_adds_and_removes_as_the_local_store(pair: tuple[Retriever, Retriever],
                                                                  corpus: Path) -> None:
    local, milvus = pair
    (corpus / "cats.txt").write_text("Cats now sleep in the garden all day.")
    (corpus / "dogs.md").unlink()
    (corpus / "sub" / "tea.txt").write_text("Green tea and water.")
    (corpus / "faq.jsonl").write_text(
        '{"_id": "q1", "title": "Refunds", "text": "A refund is paid to your card.", "year": 2021}\n'
        '{"_id": "q3", "title": "Privacy", "text": "Your data stays private.", "year": 2024}\n')
    reports = [r.index_folder(corpus) for r in (local, milvus)]
    for field in ("added", "updated", "removed", "unchanged", "passages_encoded"):
        assert getattr(reports[0], field) == getattr(reports[1], field), field
    assert (reports[1].added, reports[1].updated, reports[1].removed) == (2, 1, 2)
    assert milvus.manifest.counts == local.manifest.counts
    assert_same_searches(local, milvus, queries=QUERIES + ["green tea", "private data"], modes=("dense",))
    assert milvus.get("dogs.md") is None and milvus.get("q2") is None
    assert milvus.search("green tea", mode="lexical")[0].doc_id == "sub/tea.txt"
    assert milvus.search("private data", mode="hybrid")[0].doc_id == "q3"
    assert not milvus.search("dogs walk ball", mode="lexical", where="source~*dogs.md")
    assert milvus.search("garden", mode="lexical", where="doc_id=cats.txt")[0].text.startswith("Cats now")
    again = milvus.index_folder(corpus)
    assert (again.added, again.updated, again.removed, again.passages_encoded) == (0, 0, 0, 0)


def test_records_added_replaced_and_removed(tmp_path: Path, tiny_model: str, store: str) -> None:
    first, second = records(40), records(15, seed=1)
    local = Retriever.build(first, index_dir=tmp_path / "local", model=tiny_model)
    milvus = Retriever.build(first, index_dir=tmp_path / "milvus", model=tiny_model, store=store)
    for r in (local, milvus):
        r.add(second)  # r0..r14 replaced
        assert r.remove(["r20", "r21", "absent"]) == 2
    assert len(milvus) == len(local) == 38
    queries = [encoding_text(r["title"], r["text"]) for r in second[:5] + first[30:35]]
    assert_same_searches(local, milvus, queries=queries, modes=("dense",))
    assert_same_searches(local, milvus, queries=queries, modes=("dense",), where=["n>=10", "kind=a"])
    assert milvus.get("r3") == local.get("r3")
    for record in second[:5]:
        assert milvus.search(encoding_text(record["title"], record["text"]), mode="lexical", k=1)[0].doc_id \
            == record["_id"]
    assert not [h for h in milvus.search("cat dog fish", mode="lexical", k=50) if h.doc_id in ("r20", "r21")]


def test_load_opens_the_store_the_manifest_names_and_the_cli_works(tmp_path: Path, corpus: Path, tiny_model: str,
                                                                    store: str) -> None:
    runner = CliRunner()
    index = tmp_path / "cli-index"
    result = runner.invoke(main, ["index", str(corpus), "--index", str(index), "--model", tiny_model, "-q",
                                  "--store", store])
    assert result.exit_code == 0, result.output
    assert "6 documents" in result.output
    reopened = Retriever.load(index)
    assert reopened.manifest.store == store and len(reopened) == 6
    result = runner.invoke(main, ["search", "refund to my card", "--index", str(index), "--json", "--where",
                                  "year>=2020"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["doc_id"] for line in result.output.splitlines()] == ["q1"]
    result = runner.invoke(main, ["info", "--index", str(index)])
    assert result.exit_code == 0 and f"store: {store}" in result.output
    result = runner.invoke(main, ["index", str(corpus), "--index", str(index), "-q", "--store", "local"])
    assert result.exit_code == 1 and "build a new index to use another store" in result.output


def test_the_collection_keeps_the_model_fingerprint_and_it_is_checked(tmp_path: Path, corpus: Path,
                                                                       tiny_model: str, other_tiny_model: str,
                                                                       store: str) -> None:
    from retriever.index.milvus.collections import FINGERPRINT, names
    from retriever.index.milvus.connection import connect

    milvus = Retriever.build(corpus, index_dir=tmp_path / "milvus", model=tiny_model, store=store)
    with pytest.raises(ModelMismatchError):
        Retriever.load(tmp_path / "milvus", model=other_tiny_model)
    client = connect(store[len("milvus:"):])
    collection = names(milvus.manifest.backend)["passages"]
    assert client.describe_collection(collection)["properties"][FINGERPRINT] == milvus.manifest.model["fingerprint"]
    client.alter_collection_properties(collection, properties={FINGERPRINT: "0123456789abcdef"})
    with pytest.raises(ModelMismatchError, match="holds vectors of model"):
        Retriever.load(tmp_path / "milvus")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
                    reason="extra not installed: retriever[openvino]")
def test_a_static_int8_index_reopens_with_the_fingerprint_it_was_created_with(tmp_path: Path, corpus: Path,
                                                                               tiny_model: str, store: str,
                                                                               shared_exports: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: OpenVINO int8 used to learn its calibration (part of the fingerprint) from the first documents
    it encoded, after the collection was created with another fingerprint. Calibrated on the shipped set, its
    fingerprint is known when the encoder is made: the collection names it from its creation on.

    The int8 export is calibrated in a cache of the test's own, from copies of the run's trace and fp32 OpenVINO
    export of the tiny model (conftest's cache, which every other file shares): ~5 s of CPU saved on 2 cores."""
    import shutil

    from retriever.encoding.encoder import Encoder
    from retriever.encoding.export import trace_directory
    from retriever.encoding.light import LIGHT, TOKENIZER
    from retriever.index.milvus.collections import FINGERPRINT, names
    from retriever.index.milvus.connection import connect

    fp32 = Encoder(tiny_model, backend="openvino", exports=shared_exports)
    fp32.prepare()
    for made in (fp32.export_dir, trace_directory(shared_exports, fp32.weights_fingerprint)):
        shutil.copytree(made, tmp_path / "exports" / made.name, ignore=shutil.ignore_patterns(LIGHT, TOKENIZER))
    monkeypatch.setenv("RETRIEVER_EXPORTS", str(tmp_path / "exports"))
    fingerprint = Encoder(tiny_model, backend="openvino", quantize="int8").fingerprint  # before any encoding
    built = Retriever.build(corpus, index_dir=tmp_path / "milvus", model=tiny_model, store=store,
                            backend="openvino", quantize="int8")
    assert built.manifest.model["fingerprint"] == fingerprint and built.encoder.export_made  # calibrated here
    properties = connect(store[len("milvus:"):]).describe_collection(names(built.manifest.backend)["passages"])
    assert properties["properties"][FINGERPRINT] == fingerprint
    local = Retriever.build(corpus, index_dir=tmp_path / "local", model=tiny_model,
                            backend="openvino", quantize="int8")
    reopened = Retriever.load(tmp_path / "milvus")
    assert reopened.manifest.model["fingerprint"] == local.manifest.model["fingerprint"]
    assert_same_searches(local, reopened, queries=QUERIES[:3])
    reopened.add(records(3, prefix="new"))  # an update opens the collection's check again
    assert {h.doc_id for h in reopened.search("cat dog", k=50, mode="lexical")} >= {"new0", "new1", "new2"}


def test_a_failed_update_leaves_the_last_commit(tmp_path: Path, tiny_model: str, store: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.index.milvus import writer as milvus_writer

    first = records(30)
    milvus = Retriever.build(first, index_dir=tmp_path / "milvus", model=tiny_model, store=store)
    before = {q: seen(milvus.search(q, k=5)) for q in QUERIES}
    monkeypatch.setattr(milvus_writer, "INSERT_ROWS", 4)  # rows reach Milvus before the failure
    calls = {"n": 0}
    original = milvus_writer.MilvusWriter.add

    def failing_add(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] > 12:
            raise RuntimeError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(milvus_writer.MilvusWriter, "add", failing_add)
    with pytest.raises(RuntimeError, match="disk full"):
        milvus.add(records(20, seed=5, prefix="new"))
    monkeypatch.setattr(milvus_writer.MilvusWriter, "add", original)
    reopened = Retriever.load(tmp_path / "milvus")
    assert {q: seen(reopened.search(q, k=5)) for q in QUERIES} == before
    assert reopened.get("new0") is None and len(reopened) == 30
    rows = _rows_in_milvus(reopened)
    assert rows == (30, reopened.manifest.counts["passages"])
    reopened.add(records(20, seed=5, prefix="new"))
    assert len(reopened) == 50 and _rows_in_milvus(reopened) == (50, reopened.manifest.counts["passages"])


def _rows_in_milvus(retriever: Retriever) -> tuple[int, int]:
    from retriever.index.milvus.collections import names

    client, collections = retriever.snapshot.client, names(retriever.manifest.backend)
    documents = client.query(collections["documents"], filter="part == 0", output_fields=["count(*)"])
    passages = client.query(collections["passages"], filter="pid >= 0", output_fields=["count(*)"])
    return int(documents[0]["count(*)"]), int(passages[0]["count(*)"])


def test_optimize_and_ann_kinds(tmp_path: Path, tiny_model: str, store: str) -> None:
    data = records(30)
    local = Retriever.build(data, index_dir=tmp_path / "local", model=tiny_model, ann="flat")
    milvus = Retriever.build(data, index_dir=tmp_path / "milvus", model=tiny_model, ann="flat", store=store)
    assert_same_searches(local, milvus, queries=[encoding_text(r["title"], r["text"]) for r in data[:4]])
    Retriever.build(data[:2], index_dir=tmp_path / "milvus", model=tiny_model, ann="hnsw")  # rebuilds the index
    reopened = Retriever.load(tmp_path / "milvus")
    assert reopened.manifest.ann["requested"] == "hnsw"
    assert reopened.search(encoding_text(data[7]["title"], data[7]["text"]), k=1, mode="dense")[0].doc_id == "r7"
    assert reopened.optimize() == 0
    with pytest.raises(RetrieverError, match="not available with the Milvus store"):
        Retriever.build(data, index_dir=tmp_path / "binary", model=tiny_model, ann="binary", store=store)


@pytest.mark.parametrize("spec, message", [("milvus:", "needs a place"), ("milvus:/tmp/x", "ending in .db"),
                                           ("s3://bucket", "unknown store"),
                                           ("milvus:/tmp/x.db?colour=red", "unknown Milvus store option")])
def test_bad_store_values_are_named(tmp_path: Path, tiny_model: str, spec: str, message: str) -> None:
    with pytest.raises(RetrieverError, match=message):
        Retriever.build(records(3), index_dir=tmp_path / "i", model=tiny_model, store=spec)


def test_without_the_extra_the_store_says_what_to_install(tmp_path: Path, tiny_model: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.index.milvus import connection

    monkeypatch.setitem(sys.modules, "pymilvus", None)
    monkeypatch.setattr(connection, "_clients", {})
    with pytest.raises(RetrieverError, match=r"pip install 'retriever\[milvus\]'"):
        Retriever.build(records(3), index_dir=tmp_path / "i", model=tiny_model, store=f"milvus:{tmp_path}/x.db")
