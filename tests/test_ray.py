"""Encoding on Ray (a local Ray with 2 CPUs, started once for the module) against a single-process build.

A Ray build must give the same index: the same passages (ids, offsets, texts), vectors within 1e-5 cosine, and
the same top 10 for every query, from a folder, from Parquet records, incrementally and into Milvus.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import PROCESS_BACKEND

from retriever import Retriever
from retriever.cli import main
from retriever.errors import RetrieverError
from retriever.ingest.chunking import encoding_text

ray = pytest.importorskip("ray", reason="Ray encoding needs the extra: pip install 'retriever[ray]'")

WORDS = ("cat dog fish bird car train music song coffee tea water sleep memory brain password login email "
         "invoice payment card refund backup restore garden tomato sun plant delivery parcel order").split()


pytestmark = pytest.mark.usefixtures("local_ray")  # one local Ray with 2 CPUs, shared with test_matrix.py


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"_id": f"r{i}", "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
             "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 150))), "n": i} for i in range(n)]


def passages_and_vectors(retriever: Retriever) -> dict[str, tuple[list[tuple], np.ndarray]]:
    """Per document: its passages as (ordinal, start, end, text) and their vectors."""
    snapshot = retriever.snapshot
    out = {}
    for doc in snapshot.all_live_documents():
        keys = snapshot.passage_keys(doc.doc_id)
        stored = snapshot.hydrate(keys)
        out[doc.doc_id] = ([(stored[k].ordinal, stored[k].start, stored[k].end, stored[k].text) for k in keys],
                           snapshot.vectors_of(keys))
    return out


def assert_same_index(local: Retriever, distributed: Retriever, queries: list[str]) -> None:
    ours, theirs = passages_and_vectors(local), passages_and_vectors(distributed)
    assert ours.keys() == theirs.keys()
    for doc_id, (passages, vectors) in ours.items():
        assert theirs[doc_id][0] == passages, doc_id
        other = theirs[doc_id][1]
        cosines = np.sum(vectors * other, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(other, axis=1)
        assert np.all(cosines >= 1 - 1e-5), doc_id
    for mode in ("dense", "hybrid"):
        for query in queries:
            assert [h.doc_id for h in local.search(query, k=10, mode=mode)] == \
                [h.doc_id for h in distributed.search(query, k=10, mode=mode)], (mode, query)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
                    reason="extra not installed: retriever[openvino]")
def test_a_static_int8_ray_build_equals_a_single_process_build(tmp_path: Path, tiny_model: str) -> None:
    """Issue 22: with OpenVINO int8 the Ray path calibrated on its first block and a single process on a sample
    of its passages: two exports, two sets of vectors for one corpus. Both now load the one export calibrated on
    the shipped set, and the actors check that they run the encoder the index records."""
    rows = records(40, seed=3)
    local = Retriever.build(rows, index_dir=tmp_path / "local", model=tiny_model, backend="openvino",
                            quantize="int8")
    distributed = Retriever.build(rows, index_dir=tmp_path / "ray", model=tiny_model, ray="local", workers=1,
                                  backend="openvino", quantize="int8")  # an actor loads the driver's export
    assert local.manifest.counts["passages"] > local.manifest.counts["documents"]  # long documents were split
    assert (distributed.manifest.model["backend"], distributed.manifest.model["quantize"]) == ("openvino", "int8")
    assert distributed.manifest.model["fingerprint"] == local.manifest.model["fingerprint"]
    queries = [encoding_text(r["title"], r["text"]) for r in rows[:8]] + ["cats sleep", "refund card"]
    assert_same_index(local, distributed, queries)
    from retriever.ingest import ray_embedder

    # the actor ran the export's light path: it imported neither torch nor sentence-transformers (seconds each)
    [actor] = ray_embedder._POOL.actors
    heavy = ray.get(actor.__ray_call__.remote(lambda _: sorted({"torch", "sentence_transformers"} & set(
        __import__("sys").modules))))
    assert heavy == []
    ray_embedder.release_actors()  # frees the actor's CPU, as a process that is done with Ray would
    assert ray_embedder._POOL is None
    deadline = time.monotonic() + 60  # bounds the wait only: Ray frees a killed actor's CPU when its process exits
    while ray.available_resources().get("CPU", 0) != ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]


def test_ray_build_equals_a_single_process_build(tmp_path: Path, corpus: Path, tiny_model: str) -> None:
    """Two actors, encoding with conftest's PROCESS_BACKEND: on the ONNX export's light path they start in ~1 s
    of CPU, not the ~8 s of importing sentence-transformers. Torch on Ray is tested below, with one actor."""
    (corpus / "many.jsonl").write_text("\n".join(__import__("json").dumps(r) for r in records(60)) + "\n")
    local = Retriever.build(corpus, index_dir=tmp_path / "local", model=tiny_model, backend=PROCESS_BACKEND)
    before = pool_ids()  # the actors of an earlier test with another encoder, if any
    distributed = Retriever.build(corpus, index_dir=tmp_path / "ray", model=tiny_model, ray="local", workers=2,
                                  backend=PROCESS_BACKEND)
    assert len(pool_ids()) == 2
    assert not set(pool_ids()) & set(before)  # another encoder: new actors (the old ones were stopped: 2 CPUs)
    assert distributed.manifest.counts == local.manifest.counts
    assert distributed.manifest.counts["passages"] > distributed.manifest.counts["documents"]
    queries = [encoding_text(r["title"], r["text"]) for r in records(60)[:10]] + ["cats sleep", "refund card"]
    assert_same_index(local, distributed, queries)
    actors = pool_ids()
    (corpus / "cats.txt").write_text("Cats sleep in the sun.")
    report = Retriever.build(corpus, index_dir=tmp_path / "ray", model=tiny_model, ray="local",
                             workers=2, backend=PROCESS_BACKEND).last_report
    assert (report.added, report.updated, report.passages_encoded) == (0, 1, 1)
    assert Retriever.load(tmp_path / "ray").get("cats.txt").text == "Cats sleep in the sun."
    assert pool_ids() == actors  # the update ran on the build's actors: their imports and model load were paid


def pool_ids() -> list[str]:
    """The ids of this process's encoding actors (``ray_embedder``'s pool, kept between writes)."""
    from retriever.ingest import ray_embedder

    return [actor._actor_id.hex() for actor in ray_embedder._POOL.actors] if ray_embedder._POOL else []


def test_parquet_records_through_ray_into_milvus(tmp_path: Path, tiny_model: str) -> None:
    pytest.importorskip("pymilvus", reason="the Milvus store needs the extra: pip install 'retriever[milvus]'")
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = records(40, seed=2)
    folder = tmp_path / "parquet"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(data), folder / "part-0.parquet")
    local = Retriever.build(folder, index_dir=tmp_path / "local", model=tiny_model)
    before = pool_ids()  # the actors of the test above: another encoder
    distributed = Retriever.build(folder, index_dir=tmp_path / "ray-milvus", model=tiny_model, ray="local",
                                  workers=1, store=f"milvus:{tmp_path}/store.db")  # torch, one actor
    assert distributed.manifest.model["backend"] == "torch" and len(pool_ids()) == 1
    assert not set(pool_ids()) & set(before)
    assert len(distributed) == 40 and distributed.get("r5").metadata == {"n": 5}
    for record in data[:8]:
        query = encoding_text(record["title"], record["text"])
        assert [h.doc_id for h in local.search(query, k=10, mode="dense")] == \
            [h.doc_id for h in distributed.search(query, k=10, mode="dense")]


def test_the_cli_takes_ray_and_workers(tmp_path: Path, corpus: Path, tiny_model: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["index", str(corpus), "--index", str(tmp_path / "i"), "--model", tiny_model,
                                  "-q", "--ray", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "6 documents" in result.output
    assert len(pool_ids()) == 1  # --workers reached Ray (without it: an actor per CPU, 2)
    result = runner.invoke(main, ["index", str(corpus), "--index", str(tmp_path / "j"), "--model", tiny_model,
                                  "-q", "--workers", "2"])  # without --ray: a local pool of encoding processes
    assert result.exit_code == 0 and "6 documents" in result.output, result.output
    result = runner.invoke(main, ["index", "--ray", str(corpus), str(corpus), "--index", str(tmp_path / "k")])
    assert result.exit_code == 1 and "write the corpus PATH before --ray" in result.output


def test_without_the_extra_ray_says_what_to_install(tmp_path: Path, corpus: Path, tiny_model: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RetrieverError, match=r"pip install 'retriever\[ray\]'"):
        Retriever.build(corpus, index_dir=tmp_path / "i", model=tiny_model, ray="local")
