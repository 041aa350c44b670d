"""How a flat segment finds its candidates: a scan of 8-bit codes of every row, rescored from the float16 file.

A "flat" segment promises exact search. Its scan only has to *propose* the true top k: every score the
segment returns is recomputed per (query, row) from the float16 vectors (``vectors.exact_scores``), so the
scan may be approximate as long as it ranks each true top-k row within the candidates it returns.

Two scans (issue 18, item 4; ``benchmarks/scan_variants.py``, ``benchmarks/results/scale_classes.json``):

- ``fp32``: a float32 copy of the rows in RAM (1,536 bytes a 384-d row), scored by a BLAS product, top
  ``k + RESCORE_MARGIN`` rescored. What every flat segment used before.
- ``sq8``: 8-bit codes of the rows (384 bytes a row, a quarter of the float32 copy; ``Sq8Scan``), top
  ``sq8_fetch(k)`` rescored. Built when the segment opens, from the float16 file (nothing new on disk, so every
  existing index opens with it and no write can leave it half done). They were first FAISS's uniform
  quantizer; they are now signed codes scored in integers, and a dense search rescores the best proposals of
  all its segments together (``benchmarks/scan_codes.py``, ``benchmarks/results/scan_codes.json``).

Measured one query at a time, variants interleaved, on 100,000 synthetic passages (the scale benchmark's
corpus) with FAISS, NumPy and OpenBLAS capped to AVX2 and uncapped (AVX-512 VNNI + AMX), on a 2-core machine
shared with other jobs (load 17-28), so CPU time is the steady figure:

- one segment (``benchmarks/results/scan_variants.json``): CPU ms per query, float32 product against 8-bit
  scan, AVX2 19.5 against 10.1, AVX-512 12.8 against 6.6, recall@10 1.000 for both; every ANN that was
  cheaper stayed below recall@10 0.99 (HNSW32 0.79, IVF-SQ8 0.95, fast-scan PQ + 1,000 rescored 0.97);
- the engine, three flat segments (``benchmarks/results/scale_classes.json``): dense CPU ms AVX2 14.7
  against 9.4, AVX-512 15.2 against 9.0, recall@10 1.000; RAM 1,536 against 384 bytes a passage.

The 8-bit codes cut the bytes a query reads fourfold and FAISS scores them with plain integer SIMD (no float16
arithmetic, which AVX2 lacks), so the gain is the same on both classes. ``scan_for`` therefore answers "sq8"
for every class; it takes the class so that a CPU where measurement says otherwise gets its own answer here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCAN_CHOICES = ("fp32", "sq8")
SCAN_ENV = "RETRIEVER_FLAT_SCAN"  # forces a scan for every flat segment opened by this process
SQ8_MIN_ROWS = 1_000  # below this the float32 copy is a few hundred kB and the product takes microseconds
SQ8_EXTRA = 80  # candidates rescored beyond 2 k: 8-bit rounding moves scores by ~1e-3, far less than that
TRAIN_ROWS = 65_536  # rows the quantizer's range is taken from (values outside are clipped, then rescored)
ENCODE_BLOCK_ROWS = 32_768  # rows upcast at a time while encoding (bounds the float32 memory of opening)


def scan_for(isa: str, rows: int, override: str | None = None) -> str:
    """The scan a flat segment of ``rows`` rows uses on a CPU of instruction-set class ``isa``.

    Rule (evidence in the module docstring): 8-bit codes for every class from ``SQ8_MIN_ROWS`` rows up,
    the float32 product below, where it costs microseconds and the codes would save nothing worth a
    rescoring pass. ``override`` (``RETRIEVER_FLAT_SCAN``, one of ``SCAN_CHOICES``) forces one: what the
    benchmarks compare, and a way back to the float32 copy.
    """
    if override:
        if override not in SCAN_CHOICES:
            from retriever.errors import RetrieverError

            raise RetrieverError(f"{SCAN_ENV}={override!r}: choose one of {', '.join(SCAN_CHOICES)}")
        return override
    del isa  # measured the same way on AVX2 and AVX-512; kept so a class that differs can be told apart
    return "sq8" if rows >= SQ8_MIN_ROWS else "fp32"


def sq8_fetch(k: int, rows: int) -> int:
    """Candidates the 8-bit scan returns for ``k`` results, all rescored exactly."""
    return min(rows, 2 * k + SQ8_EXTRA)


class Sq8Scan:
    """8-bit codes of a flat segment's rows and the scan that proposes its candidates.

    Codes are FAISS's ``QT_8bit_direct_signed``: each component times one scale for the whole segment
    (``127 / max |x|`` over the training rows), rounded and clipped to [-127, 127]. FAISS scores them against
    the query in integers (it truncates the query's components to int8), so the query is scaled the same way
    per query and rounded first: the score is the inner product of the two rounded vectors, whose order is all
    a scan must get right, and every candidate is rescored exactly. The integer dot product skips the affine
    decode of the uniform quantizer that came before, at the same step on the rows (``benchmarks/scan_codes.py``).
    """

    def __init__(self, vectors16: np.ndarray) -> None:
        import faiss

        rows, dimension = vectors16.shape
        step = max(1, rows // TRAIN_ROWS)
        largest = float(np.abs(np.asarray(vectors16[::step], dtype=np.float32)).max(initial=0.0))
        self.scale = 127.0 / largest if largest > 0 else 1.0
        self.index = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit_direct_signed,
                                                faiss.METRIC_INNER_PRODUCT)
        for start in range(0, rows, ENCODE_BLOCK_ROWS):
            block = np.asarray(vectors16[start : start + ENCODE_BLOCK_ROWS], dtype=np.float32)
            self.index.add(np.clip(np.rint(block * self.scale), -127, 127))

    @property
    def code_bytes(self) -> int:
        return int(self.index.sa_code_size()) * int(self.index.ntotal)

    def candidates(self, queries: np.ndarray, fetch: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The scan's top ``fetch`` (approximate scores, rows) per query, each (q, fetch), best first, padded with
        -inf / -1; only ``allowed`` rows when given.

        The scores are the inner products up to the codes' rounding (the integer score divided by both scales),
        so candidates of segments with different scales compare: ``Snapshot.dense`` pools them.
        """
        codes, query_scale = as_codes(queries)
        scores, rows = _search(self.index, codes, fetch, allowed)
        scores = np.where(rows >= 0, scores / (query_scale * self.scale), -np.inf).astype(np.float32)
        return scores, rows


def as_codes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vector scaled so its largest component is 127, rounded (the int8 values FAISS's scan reads), and
    each one's scale, (q, 1)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    largest = np.abs(vectors).max(axis=1, keepdims=True, initial=0.0)
    scale = np.divide(127.0, largest, out=np.ones_like(largest), where=largest > 0)
    return np.clip(np.rint(vectors * scale), -127, 127), scale


def _search(index: Any, queries: np.ndarray, fetch: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The index's top ``fetch`` (integer scores, rows), filtered by ``allowed`` over its rows."""
    import faiss

    params = bitmap = selector = None
    if allowed is not None:
        # FAISS does not own the selector nor the selector its bitmap: both stay referenced here until the
        # search returns.
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        params = faiss.SearchParameters()
        params.sel = selector
    scores, rows = index.search(queries, fetch, params=params)
    return scores, rows.astype(np.int64, copy=False)
