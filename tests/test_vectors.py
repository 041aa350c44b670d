"""Per-segment vectors (retriever/index/vectors.py): exact scores from float16, filters at any selectivity,
compressed kinds rescored exactly, damaged files detected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retriever.errors import CorruptIndexError, RetrieverError
from retriever.index import vectors as vectors_module
from retriever.index.scan import SCAN_CHOICES, SCAN_ENV, SQ8_MIN_ROWS, scan_for
from retriever.index.vectors import (
    ANN_FILE,
    MIN_TRAIN_ROWS,
    SMALL_SEGMENT_ROWS,
    VECTORS_FILE,
    SegmentFileError,
    SegmentVectors,
    segment_kind,
)
from retriever.machine import ISA_CLASSES

ROWS, DIM, K = 6_000, 64, 10
KINDS = ("flat", "hnsw", "ivf", "ivf-pq", "sq8", "binary")
EXACT_KINDS = ("flat",)
FRACTIONS = (0.01, 0.05, 0.5, 0.9)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """FAISS's OpenMP training slows down 40-fold on a shared 2-core machine whose other core is busy
    (0.04 s -> 5 s for a small PQ): these tests check behaviour, not speed, so they train on one thread."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rows: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 60 centres: structure an ANN can use, as real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((60, dim))
    return unit(centres[rng.integers(0, 60, rows)] + 0.6 * rng.standard_normal((rows, dim)))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered(ROWS, DIM, seed=0)
    rng = np.random.default_rng(1)
    # a query lies near the passages that answer it: here, a stored row moved by noise of norm ~0.3
    queries = unit(vectors[rng.integers(0, ROWS, 25)] + 0.3 / np.sqrt(DIM) * rng.standard_normal((25, DIM)))
    return vectors, queries


@pytest.fixture(scope="module")
def segments(data, tmp_path_factory) -> dict[str, SegmentVectors]:
    vectors, _ = data
    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(kind)
        meta = SegmentVectors.write(folder, vectors, kind)
        assert meta["kind"] == kind
        out[kind] = SegmentVectors.open(folder, json.loads(json.dumps(meta)))  # the meta survives JSON
    return out


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
    """Reference: float64 inner products with the float16-rounded vectors, best first, ties by row."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float16).astype(np.float64).T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(vectors)), scores.shape), -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def mask(fraction: float, seed: int = 2) -> np.ndarray:
    allowed = np.random.default_rng(seed).random(ROWS) < fraction
    assert allowed.any()
    return allowed


def assert_complete_and_allowed(scores, rows, allowed, k):
    want = min(k, int(allowed.sum()))
    assert ((rows >= 0).sum(axis=1) == want).all(), "a query came back short"
    assert (rows[:, want:] == -1).all() and np.isneginf(scores[:, want:]).all()
    found = rows[:, :want]
    assert allowed[found].all(), "a result outside the filter"
    assert all(len(set(r)) == want for r in found), "a row returned twice"
    assert (np.diff(scores[:, :want], axis=1) <= 0).all(), "not best first"


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_filters_return_min_k_allowed_results(segments, data, kind, fraction):
    vectors, queries = data
    allowed = mask(fraction)
    for k in (K, 100):
        scores, rows = segments[kind].search(queries, k, allowed)
        assert_complete_and_allowed(scores, rows, allowed, k)
        if kind in EXACT_KINDS or allowed.sum() <= ROWS * 0.05:  # exact kinds, and selective masks, are exact
            truth_scores, truth_rows = brute_force(vectors, queries, k, allowed)
            np.testing.assert_array_equal(rows, np.where(np.isfinite(truth_scores), truth_rows, -1))


@pytest.mark.parametrize("kind", KINDS)
def test_forced_ann_on_a_selective_filter_still_fills_every_query(segments, data, kind, monkeypatch):
    """With the exact shortcut disabled, IVF and HNSW with 1% of rows allowed come back short inside FAISS
    (faiss issue 3186); the short queries must be answered exactly."""
    monkeypatch.setattr(vectors_module, "SELECTIVE_ROWS", 0)
    monkeypatch.setattr(vectors_module, "SELECTIVE_FRACTION", 0.0)
    vectors, queries = data
    allowed = mask(0.01, seed=5)
    scores, rows = segments[kind].search(queries, K, allowed)
    assert_complete_and_allowed(scores, rows, allowed, K)


def spy_on_exact(monkeypatch) -> list[int]:
    """Record the number of queries of every exact search (the fallback the ANN should rarely need)."""
    calls: list[int] = []
    original = SegmentVectors._exact

    def spy(self, queries, k, rows):
        calls.append(len(queries))
        return original(self, queries, k, rows)

    monkeypatch.setattr(SegmentVectors, "_exact", spy)
    return calls


@pytest.mark.parametrize("kind", ("hnsw", "ivf", "ivf-pq"))
def test_queries_the_ann_leaves_short_are_answered_exactly(segments, data, kind, monkeypatch):
    """Make FAISS come back short on purpose (1% of rows allowed, nprobe 1, efSearch 16, not raised):
    the short queries must get exact results, the others stay as they were."""
    import faiss

    monkeypatch.setattr(vectors_module, "SELECTIVE_ROWS", 0)
    monkeypatch.setattr(vectors_module, "SELECTIVE_FRACTION", 0.0)

    def starved(self, selector, selectivity, fetch):
        params = faiss.SearchParametersHNSW() if self.kind == "hnsw" else faiss.SearchParametersIVF()
        if self.kind == "hnsw":
            params.efSearch = 16
        else:
            params.nprobe = 1
        params.sel = selector
        return params

    monkeypatch.setattr(SegmentVectors, "_search_params", starved)
    exact_calls = spy_on_exact(monkeypatch)
    vectors, queries = data
    allowed = mask(0.01, seed=6)
    scores, rows = segments[kind].search(queries, K, allowed)
    assert exact_calls and 0 < exact_calls[0] <= len(queries), "FAISS was expected to come back short here"
    assert_complete_and_allowed(scores, rows, allowed, K)


@pytest.mark.parametrize("kind", ("ivf", "ivf-pq"))
def test_a_deep_fetch_probes_enough_lists_to_need_no_exact_search(segments, data, kind, monkeypatch):
    """Hybrid search asks each segment for hundreds of passages: the IVF must probe enough lists to return them
    all, not come back short and pay an exact search of the whole segment (the 1M run's p95 of 711 ms)."""
    exact_calls = spy_on_exact(monkeypatch)
    _, queries = data
    deep = ROWS // 4  # more rows than 32 of its lists hold
    scores, rows = segments[kind].search(queries, deep)
    assert not exact_calls
    assert_complete_and_allowed(scores, rows, np.ones(ROWS, bool), deep)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_are_the_inner_products_with_float16_vectors(segments, data, kind):
    vectors, queries = data
    scores, rows = segments[kind].search(queries, K)
    truth = np.einsum("qkd,qd->qk", vectors.astype(np.float16).astype(np.float64)[rows], queries.astype(np.float64))
    np.testing.assert_allclose(scores, truth, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_recall_against_exact_search(segments, data, kind):
    """Compressed kinds, rescored, find (nearly) what exact search finds on clustered data."""
    vectors, queries = data
    _, rows = segments[kind].search(queries, K)
    _, truth = brute_force(vectors, queries, K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, truth)])
    assert recall >= (1.0 if kind in EXACT_KINDS else 0.9)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_scores_like_one_query_at_a_time(segments, data, kind):
    _, queries = data
    batch_scores, batch_rows = segments[kind].search(queries, K)
    for i in range(0, len(queries), 7):
        scores, rows = segments[kind].search(queries[i : i + 1], K)
        np.testing.assert_array_equal(rows[0], batch_rows[i])
        np.testing.assert_array_equal(scores[0], batch_scores[i])


@pytest.mark.parametrize("kind", KINDS)
def test_rewriting_from_the_float16_file_gives_identical_scores(segments, data, kind, tmp_path):
    """A segment written twice, or rewritten from its own float16 file (as a merge does), scores the same bits."""
    vectors, queries = data
    original = segments[kind]
    again = SegmentVectors.open(tmp_path / "again", SegmentVectors.write(tmp_path / "again", vectors, kind))
    reread = original.get(np.arange(ROWS))
    assert reread.dtype == np.float32
    rewritten = SegmentVectors.open(tmp_path / "merged", SegmentVectors.write(tmp_path / "merged", reread, kind))
    expected = original.search(queries, K)
    for other in (again, rewritten):
        scores, rows = other.search(queries, K)
        np.testing.assert_array_equal(rows, expected[1])
        np.testing.assert_array_equal(scores, expected[0])


def test_a_merged_segment_scores_each_row_like_its_source_segments(data, tmp_path):
    """Rows keep their exact score when two segments merge into one (rows shift, bits do not)."""
    vectors, queries = data
    half = ROWS // 2
    parts = []
    for name, chunk in (("a", vectors[:half]), ("b", vectors[half:])):
        parts.append(SegmentVectors.open(tmp_path / name, SegmentVectors.write(tmp_path / name, chunk, "flat")))
    merged_vectors = np.vstack([p.get(np.arange(len(p))) for p in parts])
    merged = SegmentVectors.open(tmp_path / "m", SegmentVectors.write(tmp_path / "m", merged_vectors, "sq8"))
    scores, rows = merged.search(queries, K)
    for q in range(len(queries)):
        for score, row in zip(scores[q], rows[q]):
            part, local = (parts[0], row) if row < half else (parts[1], row - half)
            single = part.search(queries[q : q + 1], len(part))
            assert single[0][0][single[1][0] == local][0] == score


def test_segment_kind_by_size():
    assert segment_kind("auto", 10) == "flat"
    assert segment_kind("auto", 50_000) == "flat"
    assert segment_kind("auto", 50_001) == "hnsw"
    assert segment_kind("hnsw", SMALL_SEGMENT_ROWS - 1) == "flat"
    assert segment_kind("hnsw", SMALL_SEGMENT_ROWS) == "hnsw"
    assert segment_kind("flat", 10**7) == "flat"
    assert segment_kind("ivf-pq", MIN_TRAIN_ROWS - 1) == "binary"  # too few rows to train: still compressed
    assert segment_kind("ivf-pq", MIN_TRAIN_ROWS) == "ivf-pq"
    assert segment_kind("IVF64,PQ8", MIN_TRAIN_ROWS) == "IVF64,PQ8"
    assert segment_kind("sq8", SMALL_SEGMENT_ROWS) == "sq8"


def test_small_segments_are_flat_and_padded(tmp_path):
    vectors = clustered(50, DIM, seed=3)
    meta = SegmentVectors.write(tmp_path, vectors, "ivf-pq")
    assert meta["kind"] == "flat" and ANN_FILE not in meta["files"]
    segment = SegmentVectors.open(tmp_path, meta)
    scores, rows = segment.search(vectors[:2], 80)
    assert (rows[:, :50] >= 0).all() and (rows[:, 50:] == -1).all() and np.isneginf(scores[:, 50:]).all()
    assert (rows[:, 0] == [0, 1]).all()


def test_an_empty_segment_returns_only_padding(tmp_path):
    meta = SegmentVectors.write(tmp_path, np.zeros((0, DIM), np.float32), "auto")
    segment = SegmentVectors.open(tmp_path, meta)
    scores, rows = segment.search(clustered(3, DIM, seed=4), K)
    assert len(segment) == 0 and (rows == -1).all() and scores.shape == (3, K)


def test_compressed_kinds_hold_a_fraction_of_flat_in_ram(segments, flat_scans):
    flat = flat_scans["fp32"].ram_bytes
    assert flat == ROWS * DIM * 4
    assert flat_scans["sq8"].ram_bytes == ROWS * DIM  # one byte a dimension: a quarter of the float32 copy
    assert segments["binary"].ram_bytes < ROWS * (DIM // 8) + 1024
    for kind in ("ivf-pq", "binary"):
        assert segments[kind].ram_bytes < flat / 5


@pytest.fixture(scope="module")
def flat_scans(data, tmp_path_factory) -> dict[str, SegmentVectors]:
    """One flat segment opened with each scan (``RETRIEVER_FLAT_SCAN`` is read when a segment opens)."""
    vectors, _ = data
    folder = tmp_path_factory.mktemp("flat-scans")
    meta = SegmentVectors.write(folder, vectors, "flat")
    out = {}
    for choice in SCAN_CHOICES:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(SCAN_ENV, choice)
            out[choice] = SegmentVectors.open(folder, meta)
        assert out[choice].scan == choice
    assert out["sq8"].scan_detail == "sq8 (signed 8-bit codes)" and out["fp32"].scan_detail == "fp32 (float32 copy)"
    return out


@pytest.mark.parametrize("fraction", (None, 0.01, 0.5))
@pytest.mark.parametrize("choice", SCAN_CHOICES)
def test_every_flat_scan_returns_the_exact_top_k(flat_scans, data, choice, fraction):
    """The 8-bit scan only proposes candidates; rescored from float16 they give exactly the exact top k, with
    the same score bits as the float32 scan (k=100: hybrid search's depth), filtered or not."""
    vectors, queries = data
    allowed = None if fraction is None else mask(fraction)
    for k in (K, 100):
        scores, rows = flat_scans[choice].search(queries, k, allowed)
        truth_scores, truth_rows = brute_force(vectors, queries, k, allowed)
        np.testing.assert_array_equal(rows, np.where(np.isfinite(truth_scores), truth_rows, -1))
        reference = flat_scans["fp32"].search(queries, k, allowed)
        np.testing.assert_array_equal(scores, reference[0])


@pytest.mark.parametrize("isa", (*ISA_CLASSES, "NEON", "SVE"))
def test_the_flat_scan_rule_per_cpu_class(isa):
    """Measured on AVX2 and AVX-512 alike (scan.py): 8-bit codes from SQ8_MIN_ROWS rows, the float32 copy below."""
    assert scan_for(isa, SQ8_MIN_ROWS) == "sq8"
    assert scan_for(isa, 10**6) == "sq8"
    assert scan_for(isa, SQ8_MIN_ROWS - 1) == "fp32"
    assert scan_for(isa, 10**6, override="fp32") == "fp32"


def test_a_search_of_few_queries_leaves_the_faiss_thread_count_as_it_was(flat_scans, segments, data):
    """FAISS searches one query on one OpenMP thread (a busy second thread stalls it), then restores the count."""
    import faiss

    _, queries = data
    faiss.omp_set_num_threads(2)
    try:
        for segment in (flat_scans["sq8"], segments["hnsw"]):
            segment.search(queries[:1], K)
            assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(1)


def test_a_small_flat_segment_keeps_the_float32_copy(tmp_path):
    vectors = clustered(SQ8_MIN_ROWS - 1, DIM, seed=7)
    segment = SegmentVectors.open(tmp_path, SegmentVectors.write(tmp_path, vectors, "flat"))
    assert segment.scan == "fp32" and segment.ram_bytes == len(vectors) * DIM * 4


def test_an_unknown_flat_scan_is_refused_in_one_line(data, tmp_path, monkeypatch):
    meta = SegmentVectors.write(tmp_path, data[0][:2_000], "flat")
    monkeypatch.setenv(SCAN_ENV, "fp8")
    with pytest.raises(RetrieverError, match="RETRIEVER_FLAT_SCAN='fp8': choose one of fp32, sq8"):
        SegmentVectors.open(tmp_path, meta)


def test_custom_factory_string(data, tmp_path):
    vectors, queries = data
    meta = SegmentVectors.write(tmp_path, vectors, "IVF32,PQ8x4", params={"nprobe": 8, "depth": 20})
    assert meta["factory"] == "IVF32,PQ8x4" and meta["params"]["depth"] == 20
    scores, rows = SegmentVectors.open(tmp_path, meta).search(queries, K, mask(0.5))
    assert_complete_and_allowed(scores, rows, mask(0.5), K)


def test_bad_input_is_refused(data, segments, tmp_path):
    vectors, queries = data
    with pytest.raises(ValueError, match="NaN"):
        SegmentVectors.write(tmp_path / "nan", np.full((3, DIM), np.nan), "flat")
    with pytest.raises(ValueError, match="2-D"):
        SegmentVectors.write(tmp_path / "1d", np.ones(DIM), "flat")
    with pytest.raises(ValueError, match="cannot build"):
        SegmentVectors.write(tmp_path / "bad", vectors, "NoSuchIndex123")
    with pytest.raises(ValueError, match="unknown parameters"):
        SegmentVectors.write(tmp_path / "p", vectors, "hnsw", params={"efsearch": 10})
    with pytest.raises(ValueError, match="dimension"):
        segments["flat"].search(np.ones((1, DIM + 1), np.float32), K)
    with pytest.raises(ValueError, match="mask"):
        segments["flat"].search(queries, K, np.ones(ROWS - 1, bool))
    with pytest.raises(IndexError):
        segments["flat"].get(np.array([-1]))


@pytest.fixture()
def written(data, tmp_path) -> tuple[Path, dict]:
    vectors, _ = data
    return tmp_path, SegmentVectors.write(tmp_path, vectors[:2_000], "binary")


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "header":
        path.write_bytes(b"garbage!" + data[8:])
    elif how == "middle":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(data)
    elif how == "delete":
        path.unlink()


@pytest.mark.parametrize("how", ("truncate", "header", "delete"))
def test_a_damaged_float16_file_is_named(written, how):
    folder, meta = written
    _damage(folder / VECTORS_FILE, how)
    with pytest.raises(SegmentFileError) as caught:
        SegmentVectors.open(folder, meta)
    assert caught.value.path == folder / VECTORS_FILE
    assert isinstance(caught.value, CorruptIndexError) and "\n" not in str(caught.value)


@pytest.mark.parametrize("how", ("truncate", "header", "middle", "delete"))
def test_a_damaged_ann_file_is_named(written, how):
    folder, meta = written
    _damage(folder / ANN_FILE, how)
    with pytest.raises(SegmentFileError) as caught:
        SegmentVectors.open(folder, meta)
    assert caught.value.path == folder / ANN_FILE


def test_verify_files_finds_a_changed_vector(written):
    folder, meta = written
    SegmentVectors.verify_files(folder, meta)
    _damage(folder / VECTORS_FILE, "middle")
    SegmentVectors.open(folder, meta)  # same size and header: opening stays fast and does not hash
    with pytest.raises(SegmentFileError, match="checksum"):
        SegmentVectors.verify_files(folder, meta)


def test_a_factory_index_that_cannot_filter_answers_filters_exactly(data, tmp_path):
    """FAISS's fast-scan PQ without IVF refuses an id selector: filtered candidates then come from exact search."""
    vectors, queries = data
    allowed = mask(0.5)
    segment = SegmentVectors.open(tmp_path, SegmentVectors.write(tmp_path, vectors, "PQ8x4fs"))
    scores, rows = segment.search(queries, K, allowed)
    assert_complete_and_allowed(scores, rows, allowed, K)
    np.testing.assert_array_equal(rows, brute_force(vectors, queries, K, allowed)[1])
