"""Encoder backends (torch, ONNX Runtime, OpenVINO; int8), their cached exports, devices and workers.

Each backend must load, encode and agree with PyTorch (cosine per vector within the bound measured
across CPU kernel paths, ``retriever.encoding.backends.MIN_COSINE``, which ``--backend auto`` uses too;
the same top document) on the tiny model and on a handful of texts with the real MiniLM; an index
encoded one way refuses queries encoded another way. Tests of a backend are skipped only when its
extra is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import Retriever
from retriever.cli import main
from retriever.encoding.backends import MIN_COSINE, parse_backend_label
from retriever.encoding.calibration import calibration_digest, calibration_sample, calibration_texts, texts_digest
from retriever.encoding.devices import resolve_device
from retriever.encoding.encoder import Encoder
from retriever.encoding.light import LIGHT, TOKENIZER
from retriever.encoding.openvino import RECIPE, Int8Recipe
from retriever.errors import MissingExtraError, ModelLoadError, ModelMismatchError, RetrieverError
from retriever.ingest.chunking import Chunker
from retriever.ingest.documents import Document

DOCS = [
    "Cats sleep most of the day and hunt at night.",
    "Dogs love a walk in the garden and a game with a ball.",
    "Grind the coffee just before you brew it.",
    "A refund is paid to your card within five days.",
    "The train to the coast leaves at nine.",
    "Your parcel arrives in two days.",
    "Vitamin D supplements and bone density in older adults: a randomised trial.",
    "Mutations in the tumour suppressor gene p53 are found in half of human cancers.",
    "Tomatoes need sun and water in the garden.",
    "Reset your password from the login page with your email.",
]
QUERIES = ["where do cats sleep", "how do I get my money back", "vitamin d and bones", "reset password"]

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
HAS_OV = importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None
BACKENDS = [
    pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ORT, reason="extra not installed: retriever[onnx]")),
    pytest.param("onnx-int8", marks=pytest.mark.skipif(not HAS_ORT, reason="extra not installed: retriever[onnx]")),
    pytest.param("openvino", marks=pytest.mark.skipif(not HAS_OV, reason="extra not installed: retriever[openvino]")),
    pytest.param("openvino-int8",
                 marks=pytest.mark.skipif(not HAS_OV, reason="extra not installed: retriever[openvino]")),
]
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="extra not installed: retriever[onnx]")
needs_ov = pytest.mark.skipif(not HAS_OV, reason="extra not installed: retriever[openvino]")


def encoder_for(model: str, label: str, **options: object) -> Encoder:
    """The encoder a backend label names (static int8: calibrated on the shipped set, as every index is)."""
    backend, quantize = parse_backend_label(label)
    return Encoder(model, backend=backend, quantize=quantize, **options)


def export_name(model: str, label: str) -> str:
    """The folder name of a backend's export of ``model`` in the export cache."""
    from retriever.encoding.encoder import model_fingerprint, resolve_model_path
    from retriever.encoding.export import export_directory

    backend, quantize = parse_backend_label(label)
    calibration = calibration_digest() if (backend, quantize) == ("openvino", "int8") else None
    return export_directory(Path("."), model_fingerprint(resolve_model_path(model)), backend, quantize,
                            calibration).name


def copy_of_run_export(model: str, label: str, exports: Path) -> Path:
    """Copy the run's export of ``model`` (conftest's cache, made there if missing) into ``exports`` and return
    ``exports``: the cache a test of the light path starts from, as after a first export, without the light path
    (written by the first process that loads the model), for a fraction of the CPU of exporting in a cache of its
    own (tracing and exporting again: ~1.3 s a test on 2 cores)."""
    made = encoder_for(model, label)
    made.prepare()
    shutil.copytree(made.export_dir, exports / made.export_dir.name, ignore=shutil.ignore_patterns(LIGHT, TOKENIZER))
    return exports


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# agreement with PyTorch -------------------------------------------------------------------------
def test_torch_backend_matches_sentence_transformers_encode(tiny_model: str) -> None:
    encoder = Encoder(tiny_model)
    docs = encoder.model.encode_document(DOCS, normalize_embeddings=True, convert_to_numpy=True)
    queries = encoder.model.encode_query(QUERIES, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(encoder.encode_documents(DOCS), docs, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_queries(QUERIES), queries, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_queries(QUERIES[:1]), queries[:1], atol=1e-5)



def test_documents_are_batched_by_token_count_so_that_batches_pad_little(tiny_model: str) -> None:
    # Spelled-out letters are one token per two characters, whole words one per ~six: ordered by characters, a
    # batch mixes long and short token counts, and every text pads up to the batch's longest.
    letters = ["x y z w q " * n for n in (2, 3, 4, 5, 6, 7)]
    words = ["coffee garden privacy delivery " * n for n in (1, 2, 3)]
    texts = [text for pair in zip(letters, words + words) for text in pair]
    encoder = Encoder(tiny_model, batch_size=3)
    encoder.prepare()
    widths: list[list[int]] = []
    embed = encoder._runtime.embed

    def recording(features: dict, task: str) -> np.ndarray:
        widths.append(np.asarray(features["attention_mask"]).sum(axis=1).tolist())
        return embed(features, task)

    encoder._runtime.embed = recording
    vectors = encoder.encode_documents(texts)
    assert [len(batch) for batch in widths] == [3, 3, 3, 3]
    assert all(min(longer) >= max(shorter) for longer, shorter in zip(widths, widths[1:])), widths
    one_by_one = np.vstack([encoder.encode_documents([text]) for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)  # each vector in its own row, whatever the order


def assert_agrees_with_torch(model: str, label: str, reference: Encoder, same_top: bool) -> None:
    """The backend's vectors are unit vectors, within the measured cosine bound of PyTorch's (``reference``), alone
    or in a batch; ``same_top``: each query finds the document PyTorch finds."""
    encoder = encoder_for(model, label)
    docs, queries = encoder.encode_documents(DOCS), encoder.encode_queries(QUERIES)
    assert docs.shape == (len(DOCS), reference.dimension) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    ref_docs, ref_queries = reference.encode_documents(DOCS), reference.encode_queries(QUERIES)
    bound = MIN_COSINE[encoder.quantize]
    assert cosines(docs, ref_docs).min() >= bound
    assert cosines(queries, ref_queries).min() >= bound
    if same_top:
        assert ((queries @ docs.T).argmax(axis=1) == (ref_queries @ ref_docs.T).argmax(axis=1)).all()
    one = encoder.encode_queries(QUERIES[:1])  # a single query is padded to its own length only
    # dynamic int8 scales activations per batch, so a vector depends a little on its batch-mates
    assert cosines(one, queries[:1]).min() >= bound


@pytest.mark.parametrize("label", BACKENDS)
def test_backend_agrees_with_torch(label: str, tiny_model: str, tiny_encoder: Encoder) -> None:
    """On the tiny model; with the real MiniLM in test_encoding_minilm.py (a file of its own: its int8 calibration
    is the longest single test, and xdist hands out whole files)."""
    assert_agrees_with_torch(tiny_model, label, tiny_encoder, same_top=False)


@needs_ort
def test_half_twin_model_exports_each_tower(tmp_path: Path, tiny_model: str) -> None:
    from retriever.training.model import build_model

    directory = tmp_path / "half-twin"
    model = build_model(tiny_model, "half-twin", "linear", True, 64)
    import torch

    torch.manual_seed(0)
    for param in model.parameters():  # make the towers differ, as training would
        param.data += 0.05 * torch.randn_like(param)
    model.save(str(directory))
    reference, encoder = Encoder(str(directory)), Encoder(str(directory), backend="onnx")
    assert encoder.architecture == "half-twin"
    queries, docs = encoder.encode_queries(QUERIES), encoder.encode_documents(QUERIES)
    assert cosines(queries, reference.encode_queries(QUERIES)).min() >= 0.99
    assert cosines(docs, reference.encode_documents(QUERIES)).min() >= 0.99
    assert cosines(queries, docs).max() < 0.999  # each text went through its own tower
    assert sorted(p.name for p in encoder.export_dir.glob("*.onnx")) == ["document.onnx", "query.onnx"]


# the export cache --------------------------------------------------------------------------------
@needs_ort
def test_export_is_made_once_and_reused(tiny_model: str, tmp_path: Path) -> None:
    first = Encoder(tiny_model, backend="onnx", quantize="int8", exports=tmp_path)
    vectors = first.encode_documents(DOCS)
    assert first.export_made
    second = Encoder(tiny_model, backend="onnx", quantize="int8", exports=tmp_path)
    np.testing.assert_allclose(second.encode_documents(DOCS), vectors, atol=1e-6)
    assert not second.export_made
    # one trace of the model, its fp32 export, and the int8 export quantized from that (issue 18: shared steps)
    weights = first.weights_fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{weights}-onnx-int8", f"{weights}-onnx-none",
                                                           f"{weights}-trace"]
    assert first.export_dir.name == f"{weights}-onnx-int8"


CONCURRENT_EXPORT = """
import json, os, sys, time
from pathlib import Path
from retriever.encoding.export import cached_export

meeting = Path(sys.argv[2])

def make(staging):
    (staging / "made-by").write_text(str(os.getpid()))
    (meeting / str(os.getpid())).touch()
    deadline = time.monotonic() + 60  # bounds a hang only: both makers are inside make() at once
    while len(list(meeting.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"maker": os.getpid()}

print(json.dumps({"pid": os.getpid(), "made": cached_export(Path(sys.argv[1]), make)}), flush=True)
"""


def test_two_processes_making_one_export_at_once_both_use_one_complete_copy(tmp_path: Path) -> None:
    """What two first builds racing on a cold export cache rely on (test_storage.py's concurrent builds load a
    ready export): both exports are made at once, the first is renamed into place, the second is dropped."""
    import subprocess
    import sys

    directory, meeting = tmp_path / "exports" / "weights-openvino-int8-x", tmp_path / "meeting"
    meeting.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_EXPORT, str(directory), str(meeting)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    runs = [(proc, *proc.communicate(timeout=120)) for proc in procs]
    assert all(proc.returncode == 0 for proc, _, _ in runs), [err[-1500:] for _, _, err in runs]
    answers = [json.loads(out) for _, out, _ in runs]
    assert len(list(meeting.iterdir())) == 2, "both made the export"
    assert sorted(answer["made"] for answer in answers) == [False, True]
    winner = next(answer["pid"] for answer in answers if answer["made"])
    assert json.loads((directory / "export.json").read_text())["maker"] == winner
    assert (directory / "made-by").read_text() == str(winner)
    assert [p.name for p in directory.parent.iterdir()] == [directory.name], "no staging folder is left"


OTHER_DOCS = ["Invoices are due within thirty days.", "The museum opens at ten on Sundays.",
              "Backups run every night at two.", "Cats sleep most of the day and hunt at night."]


@needs_ov
def test_static_int8_is_calibrated_once_per_model_whatever_the_corpus(tiny_model: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issues 18 and 22: static int8 is calibrated on the shipped set, once per model: its fingerprint is known
    before anything is encoded, a second corpus makes no new export, and a text gets the same vector whichever
    corpus it was indexed with (it was calibrated on each corpus, one export and fingerprint per corpus)."""
    monkeypatch.setenv("RETRIEVER_EXPORTS", str(tmp_path / "exports"))
    fingerprint = Encoder(tiny_model, backend="openvino", quantize="int8").fingerprint
    assert fingerprint.endswith(f"-openvino-int8-{calibration_digest()}")
    indexes = {}
    for name, texts in (("a", DOCS), ("b", OTHER_DOCS)):
        records = [{"_id": str(i), "text": text} for i, text in enumerate(texts)]
        indexes[name] = Retriever.build(records, index_dir=tmp_path / name, model=tiny_model, backend="openvino",
                                        quantize="int8")
        assert indexes[name].manifest.model["fingerprint"] == fingerprint
        assert indexes[name].encoder.export_made == (name == "a")  # the second corpus reuses the export
    weights = fingerprint.split("-")[0]  # beside the int8 export: the trace and fp32 export it was made from
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [fingerprint, f"{weights}-openvino-none",
                                                                         f"{weights}-trace"]
    made = json.loads((tmp_path / "exports" / fingerprint / "export.json").read_text())
    assert made["recipe"] == asdict(RECIPE) and made["calibration_texts"] == len(calibration_sample())
    # exports of the recipe before issue 18's item 1 (all 301 texts) were named by the texts' digest alone: a new
    # recipe must name its exports otherwise, or a cache holding an old export would serve it as the new one
    assert RECIPE == Int8Recipe() or calibration_digest() != texts_digest(calibration_texts())
    shared = {name: r.snapshot.vectors_of(r.snapshot.passage_keys(str(texts.index(DOCS[0]))))
              for (name, r), texts in zip(indexes.items(), (DOCS, OTHER_DOCS))}
    np.testing.assert_allclose(shared["a"], shared["b"], atol=1e-3)  # stored as float16
    loaded = Retriever.load(tmp_path / "a")
    assert [h.doc_id for h in loaded.search(QUERIES[0], k=3)] == \
        [h.doc_id for h in indexes["a"].search(QUERIES[0], k=3)]
    assert loaded.encoder.backend == "openvino" and not loaded.encoder.export_made
    loaded.add([{"_id": "new", "text": "Cats and dogs sleep in the sun."}])
    assert Retriever.load(tmp_path / "a").manifest.model["fingerprint"] == fingerprint


def legacy_index(index_dir: Path, digest: str) -> None:
    """Make ``index_dir`` what an older version wrote: a static int8 fingerprint naming a corpus calibration."""
    manifest_path = index_dir / "generations" / f"{(index_dir / 'CURRENT').read_text().strip()}.json"
    manifest = json.loads(manifest_path.read_text())
    weights = manifest["model"]["weights_fingerprint"]
    manifest["model"].update(calibration=digest, fingerprint=f"{weights}-openvino-int8-{digest}")
    manifest_path.write_text(json.dumps(manifest))


@needs_ov
def test_an_index_calibrated_on_its_corpus_by_an_older_version(tiny_model: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """It opens while its export is cached (its vectors came from that export), else one line asks to rebuild."""
    shipped = Encoder(tiny_model, backend="openvino", quantize="int8")  # in the run's export cache (conftest)
    shipped.prepare()
    exports = tmp_path / "exports"  # this test's own cache, holding the shipped calibration's export (a copy)
    shutil.copytree(shipped.export_dir, exports / shipped.export_dir.name)
    monkeypatch.setenv("RETRIEVER_EXPORTS", str(exports))
    records = [{"_id": str(i), "text": text} for i, text in enumerate(DOCS)]
    built = Retriever.build(records, index_dir=tmp_path / "index", model=tiny_model, backend="openvino",
                            quantize="int8")
    assert not built.encoder.export_made
    expected = [h.doc_id for h in built.search(QUERIES[0], k=3, mode="dense")]
    legacy_index(tmp_path / "index", "0123456789ab")
    shutil.copytree(built.encoder.export_dir, exports / built.encoder.export_dir.name.replace(
        calibration_digest(), "0123456789ab"))  # the export the older version calibrated (here: a copy)
    old = Retriever.load(tmp_path / "index")
    assert old.encoder.fingerprint.endswith("-0123456789ab")
    assert [h.doc_id for h in old.search(QUERIES[0], k=3, mode="dense")] == expected
    old.add([{"_id": "new", "text": "Cats and dogs sleep in the sun."}])  # an update encodes with that export
    assert Retriever.load(tmp_path / "index").get("new") is not None
    legacy_index(tmp_path / "index", "ba9876543210")  # an export no longer cached
    with pytest.raises(ModelLoadError, match="calibrated by an older version .* rebuild the index"):
        Retriever.load(tmp_path / "index").search(QUERIES[0], k=3, mode="dense")
    result = CliRunner().invoke(main, ["search", "cats", "--index", str(tmp_path / "index")])
    assert result.exit_code != 0 and "rebuild the index" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output


@needs_ov
def test_an_openvino_retriever_answers_searches_from_several_threads(tiny_model: str, tmp_path: Path) -> None:
    """A server searches one Retriever from several threads; an OpenVINO infer request runs one inference at a
    time ("Infer Request is busy"), so each thread must get its own."""
    import threading

    records = [{"_id": str(i), "text": text} for i, text in enumerate(DOCS)]
    built = Retriever.build(records, index_dir=tmp_path / "index", model=tiny_model, backend="openvino")
    expected = [[h.doc_id for h in hits] for hits in built.search_many(QUERIES, k=3, mode="dense")]
    errors: list[BaseException] = []
    results: list[list[list[str]]] = []

    def searches() -> None:
        try:
            for _ in range(20):
                results.append([[h.doc_id for h in hits] for hits in built.search_many(QUERIES, k=3, mode="dense")])
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=searches) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert len(results) == 80 and all(result == expected for result in results)


@needs_ov
def test_missing_static_export_is_named(tiny_model: str, tmp_path: Path) -> None:
    encoder = Encoder(tiny_model, backend="openvino", quantize="int8", calibration="0123456789ab", exports=tmp_path)
    with pytest.raises(ModelLoadError, match="int8 OpenVINO export .* rebuild the index"):
        encoder.encode_queries(QUERIES)
    assert not any(tmp_path.iterdir())  # nothing is calibrated in its place


# an index is searched the way it was built -----------------------------------------------------------
@needs_ort
def test_index_remembers_its_backend_and_refuses_another(tiny_model: str, tmp_path: Path) -> None:
    records = [{"_id": str(i), "text": text} for i, text in enumerate(DOCS)]
    built = Retriever.build(records, index_dir=tmp_path / "index", model=tiny_model, backend="onnx", quantize="int8")
    expected = [h.doc_id for h in built.search(QUERIES[1], k=3, mode="dense")]
    loaded = Retriever.load(tmp_path / "index")
    assert (loaded.encoder.backend, loaded.encoder.quantize) == ("onnx", "int8")
    assert [h.doc_id for h in loaded.search(QUERIES[1], k=3, mode="dense")] == expected
    assert Retriever.load(tmp_path / "index", backend="onnx", model=tiny_model).manifest.model["backend"] == "onnx"
    for backend, quantize in (("torch", None), ("onnx", "none"), (None, "none")):
        with pytest.raises(ModelMismatchError) as refused:
            Retriever.load(tmp_path / "index", backend=backend, quantize=quantize)
        message = str(refused.value)
        assert "onnx-int8" in message and "\n" not in message
        assert (backend or "onnx") in message.split(", not ")[1]
    with pytest.raises(ModelMismatchError, match="onnx-int8"):
        Retriever.build(records, index_dir=tmp_path / "index", model=tiny_model, backend="torch")


def test_torch_index_refuses_an_onnx_query(tiny_model: str, tmp_path: Path) -> None:
    Retriever.build([{"_id": "a", "text": DOCS[0]}], index_dir=tmp_path / "index", model=tiny_model)
    with pytest.raises(ModelMismatchError, match=r"encoded with torch .*not onnx-int8"):
        Retriever.load(tmp_path / "index", backend="onnx", quantize="int8")


@needs_ort
def test_cli_index_and_search_with_a_backend(corpus: Path, tmp_path: Path, tiny_model: str) -> None:
    runner = CliRunner()
    index = str(tmp_path / "index")
    done = runner.invoke(main, ["index", str(corpus), "--index", index, "--model", tiny_model, "--backend", "onnx",
                                "--quantize", "int8", "--device", "cpu", "-q"])
    assert done.exit_code == 0, done.output
    info = runner.invoke(main, ["info", "--index", index])
    assert "encoder: onnx, int8" in info.output
    found = runner.invoke(main, ["search", "cats", "--index", index, "--json"])
    assert found.exit_code == 0 and found.output.strip()
    refused = runner.invoke(main, ["search", "cats", "--index", index, "--backend", "torch"])
    assert refused.exit_code == 1
    assert refused.output.count("\n") == 1 and "onnx-int8" in refused.output and "Traceback" not in refused.output


# options and errors ---------------------------------------------------------------------------------
def test_bad_backend_options_are_refused_in_one_line(tiny_model: str) -> None:
    with pytest.raises(RetrieverError, match="int8 quantization needs the onnx or openvino backend"):
        Encoder(tiny_model, quantize="int8")
    with pytest.raises(RetrieverError, match="unknown backend 'tensorrt'"):
        Encoder(tiny_model, backend="tensorrt")
    with pytest.raises(RetrieverError, match="unknown quantization"):
        parse_backend_label("onnx-int4")
    with pytest.raises(RetrieverError, match="workers must be at least 1"):
        Encoder(tiny_model, workers=0)


def test_missing_extra_says_what_to_install(tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_runtimes(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("onnxruntime", "openvino", "nncf"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_runtimes)
    with pytest.raises(MissingExtraError, match=r"pip install 'retriever\[onnx\]'"):
        Encoder(tiny_model, backend="onnx")
    with pytest.raises(MissingExtraError, match=r"pip install 'retriever\[openvino\]'"):
        Encoder(tiny_model, backend="openvino")


def test_devices_resolve_to_what_the_machine_has() -> None:
    import torch

    assert resolve_device("cpu", "torch") == "cpu"
    assert resolve_device("auto", "torch") == ("cuda" if torch.cuda.is_available() else
                                               "mps" if torch.backends.mps.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RetrieverError, match="device 'cuda' is not available to the torch backend"):
            resolve_device("cuda", "torch")
    with pytest.raises(RetrieverError, match="unknown device 'tpu'"):
        resolve_device("tpu", "torch")


def test_worker_processes_give_the_same_vectors(tiny_model: str) -> None:
    texts = [f"{DOCS[i % len(DOCS)]} number {i}" for i in range(80)]
    single = Encoder(tiny_model, batch_size=8).encode_documents(texts)
    pooled = Encoder(tiny_model, batch_size=8, workers=2)
    try:
        np.testing.assert_allclose(pooled.encode_documents(texts), single, atol=1e-5)
    finally:
        pooled.close()


def test_search_many_encodes_its_queries_in_one_call(tiny_model: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = Retriever.build([{"_id": str(i), "text": t} for i, t in enumerate(DOCS)], index_dir=tmp_path / "i",
                                model=tiny_model)
    calls: list[int] = []
    encode = retriever.encoder.encode_queries
    monkeypatch.setattr(retriever.encoder, "encode_queries", lambda texts: calls.append(len(texts)) or encode(texts))
    batches = retriever.search_many(QUERIES, k=2, mode="dense")
    assert calls == [len(QUERIES)]
    assert [[h.doc_id for h in hits] for hits in batches] == [
        [h.doc_id for h in retriever.search(q, k=2, mode="dense")] for q in QUERIES]


@needs_ort
def test_bench_encoding_table_has_a_row_per_backend(tiny_model: str, tmp_path: Path) -> None:
    from test_bench import make_beir

    from retriever.eval.bench import BenchConfig, run_bench

    out = tmp_path / "results"
    config = BenchConfig(make_beir(tmp_path / "beir"), model=tiny_model, systems=(), output=out,
                         cache=tmp_path / "cache", backends=("torch", "onnx-int8"), speed_docs=6)
    report = run_bench(config, log=lambda _: None, progress=False)
    rows = report["encoding"]["rows"]
    assert list(rows) == ["sentence-transformers", "torch", "onnx-int8"]
    for name in ("torch", "onnx-int8"):
        assert rows[name]["docs_per_second"] > 0 and rows[name]["dense_search_p50_ms"] > 0
        assert 0 <= rows[name]["quality"]["ndcg@10"] <= 1
    assert rows["torch"]["ndcg_delta_vs_torch"] == 0
    assert rows["sentence-transformers"]["docs_per_second_ratio"] == 1
    table = (out / "encoding-beir-test.md").read_text()
    assert "| onnx-int8 |" in table and "Fastest within 0.5 point" in table
    assert not (out / "beir-test.json").exists()  # no systems ran: the systems table is left alone


def test_bench_cli_runs_the_encoding_table_alone(tiny_model: str, tmp_path: Path) -> None:
    """`--systems ""` with --backends is the README's encoding-table command; without --backends it is refused."""
    from click.testing import CliRunner
    from test_bench import make_beir

    from retriever.cli import main

    data, out = make_beir(tmp_path / "beir"), tmp_path / "results"
    common = ["bench", str(data), "--base-model", tiny_model, "--output", str(out), "--cache", str(tmp_path / "cache"),
              "-q"]
    result = CliRunner().invoke(main, [*common, "--systems", "", "--backends", "torch", "--speed-docs", "4"])
    assert result.exit_code == 0, result.output
    assert "| torch |" in (out / "encoding-beir-test.md").read_text()
    refused = CliRunner().invoke(main, [*common, "--systems", ""])
    assert refused.exit_code == 1 and "--systems is empty" in refused.output


# the light query path ------------------------------------------------------------------------------
@pytest.mark.parametrize("label", BACKENDS)
def test_an_export_runs_without_sentence_transformers_and_gives_the_same_vectors(label: str, tiny_model: str) -> None:
    """A process that loaded the model writes the export's light path; the next one encodes queries and documents
    and chunks from it alone (``tokenizers`` and the runtime), with exactly the vectors and passages it gave."""
    light_file = encoder_for(tiny_model, "torch").exports / export_name(tiny_model, label) / "light.json"
    light_file.unlink(missing_ok=True)  # written by an earlier test into the run's export cache
    first = encoder_for(tiny_model, label)
    assert first.loaded and first.export_dir / "light.json" == light_file
    queries = QUERIES + ["  MIXED case, Punctuation!  ", "word " * 200]
    expected_queries, expected_docs = first.encode_queries(queries), first.encode_documents(DOCS + queries)
    assert light_file.is_file()
    light = encoder_for(tiny_model, label)
    assert not light.loaded
    assert (light.fingerprint, light.dimension, light.max_seq_length, light.architecture) == \
        (first.fingerprint, first.dimension, first.max_seq_length, first.architecture)
    np.testing.assert_array_equal(light.encode_queries(queries), expected_queries)
    np.testing.assert_array_equal(light.encode_documents(DOCS + queries), expected_docs)
    long_doc = [Document("d", " ".join(DOCS * 4), "A title, Long enough")]
    chunker = Chunker(light.tokenizer, 24, 4)
    assert chunker.split_many(long_doc) == Chunker(first.tokenizer, 24, 4).split_many(long_doc)
    assert len(chunker.split_many(long_doc)[0]) > 3
    assert not light.loaded


@pytest.mark.parametrize("label", [pytest.param("onnx-int8", marks=needs_ort),
                                   pytest.param("openvino-int8", marks=needs_ov)])  # the engine's default
def test_a_search_and_an_update_with_an_exported_encoder_do_not_import_sentence_transformers(
        label: str, tiny_model: str, tmp_path: Path) -> None:
    """Nor torch: NNCF, which imports it, is for calibrating a static int8 export, not for loading one."""
    import subprocess
    import sys

    backend, quantize = parse_backend_label(label)
    index = tmp_path / "index"
    built = Retriever.build([{"_id": str(i), "text": t} for i, t in enumerate(DOCS)], index_dir=index,
                            model=tiny_model, backend=backend, quantize=quantize)
    want = [h.doc_id for h in built.search(QUERIES[1], mode="dense")]
    built.close()
    script = ("import sys; from retriever import Retriever; r = Retriever.load(sys.argv[1]); "
              "print([h.doc_id for h in r.search(sys.argv[2], mode='dense')]); "
              "print(r.add([{'_id': 'new', 'text': sys.argv[2] + ' ' + sys.argv[2]}]).added); "
              "print(r.rerank_head); "  # what retriever serve asks at start
              "print(sorted(m for m in ('sentence_transformers', 'torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script, str(index), QUERIES[1]], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.splitlines() == [str(want), "1", "None", "[]"]
    with Retriever.load(index) as reopened:  # the update's vector is the model's own
        reference = Retriever.build([{"_id": "new", "text": QUERIES[1] + " " + QUERIES[1]}],
                                    index_dir=tmp_path / "reference", model=tiny_model, backend=backend,
                                    quantize=quantize)
        np.testing.assert_allclose(reopened.snapshot.vectors_of(reopened.snapshot.passage_keys("new")),
                                   reference.snapshot.vectors_of(reference.snapshot.passage_keys("new")), atol=1e-6)


@needs_ort
def test_no_light_path_is_written_when_it_would_tokenize_differently(tiny_model: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.encoding import light

    features = light.LightTokenizer.features

    def cut_short(self: light.LightTokenizer, texts: list[str], task: str) -> dict[str, np.ndarray]:
        """As a tokenizer that truncates one token earlier than the model would."""
        return {name: array[:, :-1] for name, array in features(self, texts, task).items()}

    encoder = Encoder(tiny_model, backend="onnx", exports=copy_of_run_export(tiny_model, "onnx", tmp_path / "exports"))
    monkeypatch.setattr(light.LightTokenizer, "features", cut_short)
    encoder.prepare()
    monkeypatch.undo()
    assert not (encoder.export_dir / "light.json").exists()
    assert Encoder(tiny_model, backend="onnx", exports=tmp_path / "exports").loaded


@needs_ort
def test_an_export_cache_that_cannot_be_written_is_used_without_a_light_path(
        tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports on shared read-only storage: the light path cannot be written there, and encoding goes on."""
    from retriever.encoding import light

    exports = copy_of_run_export(tiny_model, "onnx", tmp_path / "exports")
    made = Encoder(tiny_model, backend="onnx", exports=exports)
    made.prepare()
    (made.export_dir / "light.json").unlink()

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(light.tempfile, "TemporaryDirectory", read_only)
    reader = Encoder(tiny_model, backend="onnx", exports=exports)
    assert reader.loaded
    np.testing.assert_array_equal(reader.encode_queries(QUERIES), made.encode_queries(QUERIES))
    assert not (made.export_dir / "light.json").exists()


@needs_ort
def test_a_damaged_light_path_is_ignored_and_the_model_loads(tiny_model: str, tmp_path: Path) -> None:
    """A truncated ``tokenizer.json`` in the export (a full disk, a bad copy) costs the light path, not the search."""
    exports = copy_of_run_export(tiny_model, "onnx", tmp_path / "exports")
    made = Encoder(tiny_model, backend="onnx", exports=exports)
    expected = made.encode_queries(QUERIES)
    (made.export_dir / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    reader = Encoder(tiny_model, backend="onnx", exports=exports)
    assert reader.loaded
    np.testing.assert_array_equal(reader.encode_queries(QUERIES), expected)
