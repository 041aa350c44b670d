"""The Python API over a tiny model: building, searching, incremental updates, ANN kinds,
atomic writes, model mismatch and damaged indexes.

The tiny model is random, so tests search with a document's own encoding text (title and
text): its passage then scores 1.0 and must come first, whatever the model learned.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from retriever import Hit, Retriever
from retriever.errors import (
    IndexNotFoundError,
    InputFormatError,
    ModelLoadError,
    ModelMismatchError,
    RetrieverError,
    RetrieverWarning,
)
from retriever.ingest.chunking import encoding_text

CORPUS_IDS = {"cats.txt", "dogs.md", "sub/trains.rst", "sub/coffee.html", "q1", "q2"}
CATS_QUERY = encoding_text("cats", "Cats sleep most of the day and hunt at night.")
REFUND_QUERY = encoding_text("Refunds", "A refund is paid to your card.")
WORDS = ("cat dog fish bird car train music song coffee tea water sleep memory brain password login email "
         "invoice payment card refund backup restore garden tomato sun plant delivery parcel order").split()


def random_records(n: int, seed: int = 0, prefix: str = "r") -> list[dict]:
    rng = random.Random(seed)
    return [
        {"_id": f"{prefix}{i}", "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
         "text": " ".join(rng.choice(WORDS) for _ in range(12)), "n": i}
        for i in range(n)
    ]


def query_of(record: dict) -> str:
    return encoding_text(record["title"], record["text"])


def long_record(doc_id: str = "long", sentences: int = 30) -> dict:
    rng = random.Random(3)
    text = " ".join(" ".join(rng.choice(WORDS) for _ in range(8)) + "." for _ in range(sentences))
    return {"_id": doc_id, "title": "Long", "text": text}


def ids(hits: list[Hit]) -> list[str]:
    return [h.doc_id for h in hits]


# building and searching --------------------------------------------------------------------
def test_build_from_folder_indexes_every_format(built: Retriever, index_dir: Path) -> None:
    report = built.last_report
    assert (report.added, report.updated, report.removed, report.unchanged) == (6, 0, 0, 0)
    assert report.passages_encoded == 6
    assert len(built) == 6
    assert set(ids(built.search("cats", k=10))) == CORPUS_IDS
    info = built.info()
    assert info["counts"] == {"documents": 6, "passages": 6, "files": 5}
    assert info["index"] == str(index_dir)
    assert info["model"]["dimension"] == 32
    assert (index_dir / "CURRENT").read_text().strip().startswith("gen-")


def test_search_returns_hits_with_all_fields(built: Retriever, corpus: Path) -> None:
    hits = built.search(REFUND_QUERY, k=3)
    assert len(hits) == 3
    top = hits[0]
    assert isinstance(top, Hit)
    assert top.doc_id == "q1"
    assert top.score == pytest.approx(1.0, abs=1e-4)
    assert top.text == "A refund is paid to your card."
    assert top.title == "Refunds"
    assert top.source == str((corpus / "faq.jsonl").resolve())
    assert (top.start, top.end) == (0, len(top.text))
    assert top.metadata == {"year": 2021}
    assert top.passage_id >= 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert json.loads(json.dumps(top.to_dict()))["doc_id"] == "q1"


def test_file_documents_use_their_relative_path_as_id(built: Retriever) -> None:
    top = built.search(CATS_QUERY, k=1)[0]
    assert (top.doc_id, top.title, top.text) == ("cats.txt", "cats", "Cats sleep most of the day and hunt at night.")
    coffee = built.search(encoding_text("Coffee", "Grind the coffee just before you brew it."), k=1)[0]
    assert coffee.doc_id == "sub/coffee.html"
    assert "var x" not in coffee.text


def test_loaded_index_searches_like_the_built_one(built: Retriever, index_dir: Path) -> None:
    loaded = Retriever.load(index_dir)
    before = built.search(CATS_QUERY, k=6)
    after = loaded.search(CATS_QUERY, k=6)
    assert ids(after) == ids(before)
    assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-5)


def test_build_from_records(index_dir: Path, tiny_model: str) -> None:
    records = random_records(20)
    r = Retriever.build(records, index_dir=index_dir, model=tiny_model)
    assert r.last_report.added == 20 and len(r) == 20
    top = r.search(query_of(records[7]), k=1)[0]
    assert top.doc_id == "r7"
    assert top.metadata == {"n": 7}
    assert top.source is None
    assert ids(Retriever.load(index_dir).search(query_of(records[3]), k=1)) == ["r3"]


def test_records_need_an_index_dir(tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="index_dir"):
        Retriever.build(random_records(2), model=tiny_model)


def test_default_index_dir_is_indexes_folder_name(corpus: Path, tmp_path: Path, tiny_model: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = Retriever.build(corpus, model=tiny_model)
    assert (tmp_path / "indexes" / "corpus" / "CURRENT").exists()
    assert Path(r.info()["index"]) == Path("indexes/corpus")


def test_documents_mode_returns_each_document_once_with_its_best_passage(index_dir: Path, tiny_model: str) -> None:
    records = [long_record()] + random_records(5)
    r = Retriever.build(records, index_dir=index_dir, model=tiny_model, chunk_tokens=16)
    passages = r.search(query_of(records[1]), k=100, passages=True, mode="dense")
    long_hits = [h for h in passages if h.doc_id == "long"]
    assert len(long_hits) > 3, "a long document is split into several passages"
    for hit in long_hits:
        assert hit.text == records[0]["text"][hit.start:hit.end]
    assert len({h.passage_id for h in passages}) == len(passages) == r.info()["counts"]["passages"]

    documents = r.search(query_of(records[1]), k=100, mode="dense")
    assert sorted(ids(documents)) == sorted(["long"] + [f"r{i}" for i in range(5)])
    best_long = next(h for h in documents if h.doc_id == "long")
    assert best_long.score == pytest.approx(max(h.score for h in long_hits))
    assert best_long.passage_id == max(long_hits, key=lambda h: h.score).passage_id


def test_documents_mode_fills_k_even_when_one_document_has_many_passages(index_dir: Path, tiny_model: str) -> None:
    records = [long_record("long1", 60), long_record("long2", 60)] + random_records(3)
    r = Retriever.build(records, index_dir=index_dir, model=tiny_model, chunk_tokens=16)
    assert len(r.search(query_of(records[2]), k=5)) == 5


def test_search_many_matches_single_searches(built: Retriever) -> None:
    queries = [CATS_QUERY, REFUND_QUERY, "trains"]
    many = built.search_many(queries, k=3)
    assert len(many) == 3
    for query, hits in zip(queries, many):
        single = built.search(query, k=3)
        assert ids(hits) == ids(single)
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)
    assert ids(many[0])[0] == "cats.txt" and ids(many[1])[0] == "q1"
    assert built.search_many([], k=3) == []


def test_k_limits_results(built: Retriever) -> None:
    assert len(built.search("cats", k=2)) == 2
    assert len(built.search("cats", k=50)) == 6
    assert len(built.search("cats", k=50, passages=True)) == 6


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_refused(built: Retriever, query: str) -> None:
    with pytest.raises(RetrieverError, match="empty query"):
        built.search(query)
    with pytest.raises(RetrieverError, match="empty query"):
        built.search_many(["cats", query])


def test_bad_k_and_bad_search_many_argument(built: Retriever) -> None:
    with pytest.raises(RetrieverError):
        built.search("cats", k=0)
    with pytest.raises(TypeError):
        built.search_many("cats")  # type: ignore[arg-type]


# incremental indexing -------------------------------------------------------------------------
def rebuild(corpus: Path, index_dir: Path, model: str) -> Retriever:
    return Retriever.build(corpus, index_dir=index_dir, model=model)


def counts(r: Retriever) -> tuple[int, int, int, int, int]:
    rep = r.last_report
    return rep.added, rep.updated, rep.removed, rep.unchanged, rep.passages_encoded


def test_rerun_on_unchanged_folder_encodes_nothing(built: Retriever, corpus: Path, index_dir: Path,
                                                   tiny_model: str) -> None:
    generation = (index_dir / "CURRENT").read_text()
    again = rebuild(corpus, index_dir, tiny_model)
    assert counts(again) == (0, 0, 0, 6, 0)
    assert not again.last_report.changed
    assert "unchanged 6" in again.last_report.summary()
    assert (index_dir / "CURRENT").read_text() == generation
    assert len(again) == 6


def test_modified_file_is_the_only_one_re_encoded(built: Retriever, corpus: Path, index_dir: Path,
                                                  tiny_model: str) -> None:
    (corpus / "cats.txt").write_text("Cats drink water and chase the bird in the garden.")
    again = rebuild(corpus, index_dir, tiny_model)
    assert counts(again) == (0, 1, 0, 5, 1)
    top = again.search(encoding_text("cats", "Cats drink water and chase the bird in the garden."), k=1)[0]
    assert top.doc_id == "cats.txt" and top.text.startswith("Cats drink water")
    assert top.score == pytest.approx(1.0, abs=1e-4)
    assert len(again) == 6 and again.info()["counts"]["passages"] == 6


def test_deleted_file_disappears_from_results(built: Retriever, corpus: Path, index_dir: Path,
                                              tiny_model: str) -> None:
    (corpus / "dogs.md").unlink()
    (corpus / "faq.jsonl").unlink()
    again = rebuild(corpus, index_dir, tiny_model)
    assert counts(again) == (0, 0, 3, 3, 0)
    assert set(ids(again.search("dogs", k=10))) == CORPUS_IDS - {"dogs.md", "q1", "q2"}
    assert set(ids(Retriever.load(index_dir).search("dogs", k=10, passages=True))) == CORPUS_IDS - {
        "dogs.md", "q1", "q2"}
    assert again.info()["counts"] == {"documents": 3, "passages": 3, "files": 3}


def test_new_file_is_added(built: Retriever, corpus: Path, index_dir: Path, tiny_model: str) -> None:
    (corpus / "sub" / "tea.txt").write_text("Tea is made with hot water.")
    again = rebuild(corpus, index_dir, tiny_model)
    assert counts(again) == (1, 0, 0, 6, 1)
    assert again.search(encoding_text("tea", "Tea is made with hot water."), k=1)[0].doc_id == "sub/tea.txt"


def test_changing_one_jsonl_record_re_encodes_only_that_record(index_dir: Path, tmp_path: Path,
                                                              tiny_model: str) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    records = random_records(10)
    corpus_file = folder / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    rebuild(folder, index_dir, tiny_model)
    records[4]["text"] = "a refund to your card for the parcel"
    del records[7]
    corpus_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    again = rebuild(folder, index_dir, tiny_model)
    assert counts(again) == (0, 1, 1, 8, 1)
    assert again.search(query_of(records[4]), k=1)[0].text == "a refund to your card for the parcel"
    assert "r7" not in ids(again.search("cat", k=20))
    assert len(again) == 9


def test_record_moved_to_another_file_is_kept(index_dir: Path, tmp_path: Path, tiny_model: str) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    a, b = random_records(3, prefix="a"), random_records(3, seed=1, prefix="b")
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a))
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b))
    rebuild(folder, index_dir, tiny_model)
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a[:2]))
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b + a[2:]))
    again = rebuild(folder, index_dir, tiny_model)
    assert len(again) == 6
    assert again.search(query_of(a[2]), k=1)[0].doc_id == "a2"
    assert again.search(query_of(a[2]), k=1)[0].source == str((folder / "b.jsonl").resolve())
    assert again.last_report.duplicate_ids == []


def test_duplicate_id_in_another_file_is_skipped_and_reported(index_dir: Path, tmp_path: Path,
                                                              tiny_model: str) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"_id": "same", "text": "first"}\n')
    (folder / "b.jsonl").write_text('{"_id": "same", "text": "second"}\n{"_id": "other", "text": "third"}\n')
    with pytest.warns(RetrieverWarning, match="skipped 1 duplicate document id: 'same'"):
        r = rebuild(folder, index_dir, tiny_model)
    assert r.last_report.duplicate_ids == ["same"]
    assert len(r) == 2
    assert "1 duplicate document ids skipped" in r.last_report.summary()


def test_indexing_a_single_file(corpus: Path, index_dir: Path, tiny_model: str) -> None:
    r = Retriever.build(corpus / "faq.jsonl", index_dir=index_dir, model=tiny_model)
    assert sorted(ids(r.search("refund", k=10))) == ["q1", "q2"]
    assert counts(rebuild(corpus / "faq.jsonl", index_dir, tiny_model)) == (0, 0, 0, 2, 0)


# add and remove ----------------------------------------------------------------------------------
def test_add_and_remove_records(built: Retriever, index_dir: Path) -> None:
    new = {"_id": "new", "title": "Backup", "text": "Restore the backup from the card.", "lang": "en"}
    report = built.add([new])
    assert (report.added, report.passages_encoded) == (1, 1)
    top = built.search(query_of(new), k=1)[0]
    assert (top.doc_id, top.metadata) == ("new", {"lang": "en"})

    assert built.add([new]).passages_encoded == 0, "an unchanged record is not re-encoded"
    changed = dict(new, text="Restore the backup from the email.")
    report = built.add([changed])
    assert (report.added, report.updated) == (0, 1)
    assert built.search(query_of(changed), k=1)[0].text == "Restore the backup from the email."
    assert len(built) == 7

    assert built.remove(["new", "no-such-id"]) == 1
    assert "new" not in ids(built.search(query_of(changed), k=10))
    assert built.remove(["new"]) == 0
    loaded = Retriever.load(index_dir)
    assert len(loaded) == 6 and "new" not in ids(loaded.search("backup", k=10))


def test_removing_every_document_leaves_an_empty_searchable_index(built: Retriever, index_dir: Path) -> None:
    assert built.remove(CORPUS_IDS) == 6
    assert built.search("cats", k=5) == []
    assert Retriever.load(index_dir).info()["counts"]["documents"] == 0
    assert built.add([{"_id": "back", "text": "cats again"}]).added == 1
    assert ids(built.search("cats", k=5)) == ["back"]


def test_bad_record_is_refused(built: Retriever) -> None:
    with pytest.raises(InputFormatError, match="record 1"):
        built.add([{"_id": "ok", "text": "fine"}, {"text": "no id"}])
    assert len(built) == 6


# ANN kinds ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ann_records() -> list[dict]:
    return random_records(1_200, seed=5)  # above the size under which every segment is searched exactly


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_ann_kinds_find_the_same_top_hit(kind: str, ann_records: list[dict], tmp_path: Path,
                                         tiny_model: str) -> None:
    r = Retriever.build(ann_records, index_dir=tmp_path / kind, model=tiny_model, ann=kind)
    assert r.info()["ann"]["kind"] == kind
    for i in (0, 17, 99):
        assert r.search(query_of(ann_records[i]), k=1)[0].doc_id == f"r{i}"
    loaded = Retriever.load(tmp_path / kind)
    assert loaded.info()["ann"]["kind"] == kind
    assert loaded.search(query_of(ann_records[17]), k=3)[0].doc_id == "r17"
    assert len(loaded.search("cat", k=10)) == 10


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_remove_and_update_work_on_approximate_indexes(kind: str, ann_records: list[dict], tmp_path: Path,
                                                       tiny_model: str) -> None:
    r = Retriever.build(ann_records, index_dir=tmp_path / kind, model=tiny_model, ann=kind)
    assert r.remove(["r17", "r18"]) == 2
    assert "r17" not in ids(r.search(query_of(ann_records[17]), k=10))
    changed = dict(ann_records[5], text="tomato garden sun water plant")
    r.add([changed])
    loaded = Retriever.load(tmp_path / kind)
    assert loaded.info()["counts"]["passages"] == 1_198
    assert loaded.info()["ann"]["kind"] == kind
    assert "r17" not in ids(loaded.search(query_of(ann_records[17]), k=10))
    assert loaded.search(query_of(changed), k=1)[0].doc_id == "r5"
    assert loaded.search(query_of(ann_records[30]), k=1)[0].doc_id == "r30"


def test_changing_the_ann_kind_of_an_unchanged_index(ann_records: list[dict], index_dir: Path,
                                                     tiny_model: str) -> None:
    built = Retriever.build(ann_records, index_dir=index_dir, model=tiny_model)
    assert built.info()["ann"]["kind"] == "flat"
    r = Retriever.build(ann_records, index_dir=index_dir, model=tiny_model, ann="hnsw")
    assert r.last_report.passages_encoded == 0, "the vectors are reused, not encoded again"
    assert r.info()["ann"]["kind"] == "hnsw" and r.info()["ann"]["requested"] == "hnsw"
    assert Retriever.load(index_dir).info()["ann"]["kind"] == "hnsw"
    assert r.search(query_of(ann_records[17]), k=1)[0].doc_id == "r17"


def test_unknown_ann_kind_is_refused(corpus: Path, index_dir: Path, tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="ANN"):
        Retriever.build(corpus, index_dir=index_dir, model=tiny_model, ann="annoy")


# chunking options ----------------------------------------------------------------------------------
def test_default_overlap_fits_a_short_model_and_is_kept_on_rebuild(built: Retriever, corpus: Path,
                                                                   index_dir: Path, tiny_model: str) -> None:
    chunking = built.info()["chunking"]
    assert chunking["max_tokens"] == 64  # the tiny model's max sequence length
    assert 0 < chunking["overlap_tokens"] < 32
    again = Retriever.build(corpus, index_dir=index_dir, model=tiny_model, overlap=chunking["overlap_tokens"])
    assert again.last_report.passages_encoded == 0


def test_chunk_tokens_above_the_model_maximum_is_capped_and_accepted_again(corpus: Path, index_dir: Path,
                                                                          tiny_model: str) -> None:
    r = Retriever.build(corpus, index_dir=index_dir, model=tiny_model, chunk_tokens=500)
    assert r.info()["chunking"]["max_tokens"] == 64
    again = Retriever.build(corpus, index_dir=index_dir, model=tiny_model, chunk_tokens=500)
    assert again.last_report.passages_encoded == 0


def test_changing_chunking_of_an_existing_index_is_refused(built: Retriever, corpus: Path, index_dir: Path,
                                                           tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="chunk size"):
        Retriever.build(corpus, index_dir=index_dir, model=tiny_model, chunk_tokens=16)
    with pytest.raises(RetrieverError, match="overlap"):
        Retriever.build(corpus, index_dir=index_dir, model=tiny_model, overlap=3)


def test_impossible_overlap_is_a_retriever_error(corpus: Path, index_dir: Path, tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="overlap"):
        Retriever.build(corpus, index_dir=index_dir, model=tiny_model, chunk_tokens=16, overlap=8)
    assert not (index_dir / "CURRENT").exists()


# models ------------------------------------------------------------------------------------------
def test_searching_with_another_model_is_refused_naming_both(built: Retriever, index_dir: Path, tiny_model: str,
                                                              other_tiny_model: str, corpus: Path) -> None:
    with pytest.raises(ModelMismatchError) as info:
        Retriever.load(index_dir, model=other_tiny_model)
    message = str(info.value)
    assert tiny_model in message and other_tiny_model in message and str(index_dir) in message
    with pytest.raises(ModelMismatchError):
        Retriever.build(corpus, index_dir=index_dir, model=other_tiny_model)
    assert Retriever.load(index_dir, model=tiny_model).search(CATS_QUERY, k=1)[0].doc_id == "cats.txt"


def test_model_that_cannot_be_loaded_offline(corpus: Path, index_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        Retriever.build(corpus, index_dir=index_dir, model="no-such-model-xyz")
    assert "no-such-model-xyz" in str(info.value) and "--model" in str(info.value)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelLoadError, match="not-a-model"):
        Retriever.build(corpus, index_dir=index_dir, model=str(tmp_path / "not-a-model"))
    assert not index_dir.exists() or not (index_dir / "CURRENT").exists()


def test_index_built_with_a_relative_model_path_loads_from_elsewhere(corpus: Path, tmp_path: Path, tiny_model: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(tiny_model).parent)
    Retriever.build(corpus, index_dir=tmp_path / "index", model=Path(tiny_model).name)
    monkeypatch.chdir(tmp_path)
    assert Retriever.load("index").search(CATS_QUERY, k=1)[0].doc_id == "cats.txt"


# missing indexes -------------------------------------------------------------------------------------
def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index"):
        Retriever.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match="not a retriever index"):
        Retriever.load(tmp_path / "empty")


# bad input --------------------------------------------------------------------------------------------
def test_missing_path(tmp_path: Path, tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="path not found"):
        Retriever.build(tmp_path / "nowhere", index_dir=tmp_path / "index", model=tiny_model)


@pytest.mark.parametrize("content", [None, b"\x00\x01\x02binary", b""])
def test_folder_with_nothing_indexable(content: bytes | None, tmp_path: Path, tiny_model: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.docx").write_bytes(b"ignored type")
    if content is not None:
        (folder / "data.jsonl").write_bytes(content)
    with pytest.raises(RetrieverError, match="nothing to index"):
        Retriever.build(folder, index_dir=tmp_path / "index", model=tiny_model)
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_unreadable_files_are_skipped_and_the_rest_indexed(corpus: Path, index_dir: Path, tiny_model: str) -> None:
    (corpus / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (corpus / "image.md").write_bytes(b"\x89PNG\x00\x00")
    (corpus / "notes.docx").write_bytes(b"ignored")
    with pytest.warns(RetrieverWarning, match="skipped 2 unreadable files"):
        r = Retriever.build(corpus, index_dir=index_dir, model=tiny_model)
    skipped = dict(r.last_report.skipped_files)
    assert set(skipped) == {str((corpus / "latin1.txt").resolve()), str((corpus / "image.md").resolve())}
    assert r.last_report.unsupported_files == 1
    assert "2 unreadable files skipped" in r.last_report.summary()
    assert len(r) == 6


def test_malformed_jsonl_stops_the_run_and_keeps_the_index(built: Retriever, corpus: Path, index_dir: Path,
                                                           tiny_model: str) -> None:
    (corpus / "faq.jsonl").write_text('{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": oops}\n')
    with pytest.raises(InputFormatError) as info:
        rebuild(corpus, index_dir, tiny_model)
    assert f"{(corpus / 'faq.jsonl').resolve()}:2" in str(info.value)
    assert len(Retriever.load(index_dir)) == 6


def test_index_inside_the_indexed_folder_is_not_indexed(corpus: Path, tiny_model: str) -> None:
    first = Retriever.build(corpus, index_dir=corpus / "indexes" / "corpus", model=tiny_model)
    assert len(first) == 6
    again = Retriever.build(corpus, index_dir=corpus / "indexes" / "corpus", model=tiny_model)
    assert counts(again) == (0, 0, 0, 6, 0)


# documents and lifetime ----------------------------------------------------------------------------
def test_get_returns_the_stored_document(index_dir: Path, tiny_model: str) -> None:
    record = long_record("long")
    r = Retriever.build([record, {"_id": "short", "title": "Tea", "text": "Green tea.", "year": 2020}],
                        index_dir=index_dir, model=tiny_model, chunk_tokens=24, overlap=4)
    long_doc = r.get("long")
    assert long_doc is not None and long_doc.text == record["text"].strip()
    short = r.get("short")
    assert (short.title, short.text, short.metadata) == ("Tea", "Green tea.", {"year": 2020})
    assert r.get("missing") is None


def test_refresh_moves_a_reader_to_what_another_writer_committed(built: Retriever, index_dir: Path) -> None:
    with Retriever.load(index_dir) as reader:
        assert reader.refresh() is False
        built.add([{"_id": "new", "text": "tea and coffee"}])
        assert len(reader) == 6, "a reader keeps the version it opened"
        assert reader.refresh() is True and len(reader) == 7


def test_indexing_a_folder_around_an_indexed_one_is_refused_not_silently_wrong(tmp_path: Path,
                                                                                tiny_model: str) -> None:
    """Issue 24, item 5: ``index P/sub`` then ``index P`` kept ``a.txt`` with P/sub/a.txt's text and never
    indexed P/a.txt; a file's id is its path relative to the folder indexed, so the two runs disagree."""
    top = tmp_path / "P"
    (top / "sub").mkdir(parents=True)
    (top / "a.txt").write_text("the top level file about tea")
    (top / "sub" / "a.txt").write_text("the nested file about coffee")
    index_dir = tmp_path / "I"
    Retriever.build(top / "sub", index_dir=index_dir, model=tiny_model)
    with pytest.raises(RetrieverError, match=r"as 'a.txt', indexed from .*/P/sub; indexing .*/P would name it "
                                             r"'sub/a.txt': index .*/P/sub again, or index .*/P into a new index"):
        Retriever.build(top, index_dir=index_dir, model=tiny_model)
    r = Retriever.load(index_dir)
    assert len(r) == 1 and r.get("a.txt").text == "the nested file about coffee"
    (top / "sub" / "a.txt").write_text("the nested file, changed")
    assert len(Retriever.build(top / "sub", index_dir=index_dir, model=tiny_model)) == 1  # the same folder: fine
    fresh = Retriever.build(top, index_dir=tmp_path / "J", model=tiny_model)
    assert {fresh.get("a.txt").text, fresh.get("sub/a.txt").text} == {"the top level file about tea",
                                                                      "the nested file, changed"}
    with pytest.raises(RetrieverError, match=r"as 'sub/a.txt', indexed from .*/P; indexing .*/P/sub would name"):
        Retriever.build(top / "sub", index_dir=tmp_path / "J", model=tiny_model)  # and the other way round
    side = tmp_path / "Q"  # a folder beside them still shares the index
    side.mkdir()
    (side / "b.txt").write_text("a side folder")
    assert len(Retriever.build(side, index_dir=tmp_path / "J", model=tiny_model)) == 3
