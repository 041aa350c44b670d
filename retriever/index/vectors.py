"""The vectors of one immutable segment: float16 on disk, memory-mapped, plus an in-RAM ANN over row numbers.

Why this shape (issue 10, items 5-8):

- ``vectors.f16.npy`` is the source of truth. Vectors are rounded to float16 once, when written, and every
  score this module returns is the inner product of the query with those float16 values (upcast to
  float32), computed per (query, row) pair by ``exact_scores``. A score therefore depends on the query and
  the row only, never on the ANN kind, the batch or the segment's size: a segment rebuilt by a merge from the
  float16 file scores exactly like a fresh build, and results of several segments merge exactly.
- The file is memory-mapped, so opening a segment reads a header, and the vectors cost page cache, not RAM.
- A "flat" segment (exact search) scans 8-bit codes of its rows built when it opens and rescores the top
  ``2k + 80`` from the float16 file (``scan.py``: half the time of a float32 product, a quarter of its RAM,
  the same top k); segments under 1,000 rows, or ``RETRIEVER_FLAT_SCAN=fp32``, keep a float32 copy instead.
- ``ann.faiss`` (when the kind needs one) is a FAISS index whose ids are the local row numbers 0..n-1; it
  only proposes candidates. Compressed kinds (``ivf-pq``, ``sq8``, ``binary``) fetch ``depth`` candidates
  per requested result and rescore them exactly from the float16 file.
- Deleted rows and metadata filters arrive as one boolean mask over rows. A selective mask goes straight to
  exact search over the allowed rows (Lucene's approach); otherwise the ANN runs with a FAISS
  ``IDSelectorBitmap`` and efSearch/nprobe raised by the mask's selectivity, and any query that still
  comes back short is answered exactly (faiss issue 3186), so every query gets ``min(k, allowed)`` results.

Damaged files: ``SegmentVectors.open`` raises ``SegmentFileError`` (a ``CorruptIndexError``, with the
damaged file in ``.path``) for a missing, truncated or garbled ``vectors.f16.npy`` or ``ann.faiss``, or
one that does not match its meta (rows, dimension, size, SHA-256 of ``ann.faiss``). The float16 file's
SHA-256 is recorded at write time but only checked by ``verify_files`` (hashing it on every open would
defeat memory-mapping); its size, header, dtype and shape are checked on every open.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from retriever.errors import CorruptIndexError
from retriever.index import scan

VECTORS_FILE = "vectors.f16.npy"
ANN_FILE = "ann.faiss"

ANN_CHOICES = ("auto", "flat", "hnsw", "ivf", "ivf-pq", "sq8", "binary")  # or a FAISS factory string
COMPRESSED_KINDS = ("ivf-pq", "sq8", "binary")

HNSW_THRESHOLD = 50_000  # "auto": exact search up to this many rows, HNSW above
SMALL_SEGMENT_ROWS = 1_000  # below this, every kind is searched exactly: an ANN saves nothing
MIN_TRAIN_ROWS = 5_000  # ivf-pq and factory strings: fewer rows train poor codebooks (see segment_kind)
PROBE_COVER = 4  # an IVF probes lists holding about this many times the candidates it must return
SELECTIVE_FRACTION = 0.02  # a mask allowing at most this share of the rows is searched exactly ...
SELECTIVE_ROWS = 4_096  # ... and so is one allowing at most this many rows
RESCORE_MARGIN = 8  # extra candidates rescored beyond k, so float32 rounding never changes the top k
FEW_QUERIES = 8  # exact search of at most this many queries runs on one BLAS thread (see _blas_threads)
DEEP_RESULTS = 200  # the rescoring depth multiplies the first this many results; deeper ones are rescored 1:1
SCAN_DETAILS = {"sq8": "sq8 (signed 8-bit codes)", "fp32": "fp32 (float32 copy)"}  # a flat segment's scan, in words
EXACT_BLOCK_ROWS = 32_768  # rows scored per block by exact search (bounds its memory)
RESCORE_BLOCK_QUERIES = 128  # queries rescored per block (bounds the gathered candidate vectors)

# Per kind: FAISS settings and ``depth``, the candidates fetched per requested result for exact rescoring.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "flat": {},
    "hnsw": {"M": 32, "efConstruction": 200, "efSearch": 128, "depth": 1},
    # nlist 0: chosen from the rows (ivf_nlist); train_per_list: rows sampled per list to train the centroids
    "ivf": {"nlist": 0, "nprobe": 32, "train_per_list": 64, "depth": 1},
    # m 0: one sub-quantizer per 8 dimensions (PQ48 for 384)
    "ivf-pq": {"nlist": 0, "nprobe": 32, "train_per_list": 64, "m": 0, "nbits": 8, "depth": 10},
    "sq8": {"depth": 2},
    "binary": {"depth": 20},
    "factory": {"nprobe": 32, "efSearch": 128, "depth": 10},
}


class SegmentFileError(CorruptIndexError):
    """A segment's vector file is missing, truncated, garbled or does not match its meta.

    ``path`` names the file, so the caller can say "index X is corrupt: <file>".
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def segment_kind(requested: str, rows: int) -> str:
    """What a segment of ``rows`` rows is searched with.

    Segments under ``SMALL_SEGMENT_ROWS`` are searched exactly ("flat"): at that size exact search costs
    well under a millisecond and needs no training. "auto" gives exact search up to ``HNSW_THRESHOLD``
    rows and HNSW above. ``ivf-pq`` and FAISS factory strings (which may train IVF centroids and product
    quantizers of 256 codes) need ``MIN_TRAIN_ROWS``; a smaller segment gets "binary" instead, which needs
    no training and is as small in RAM, so a compressed index stays compressed while it is young.
    ``sq8`` trains only a range per dimension and ``binary`` nothing, so they need no minimum beyond
    ``SMALL_SEGMENT_ROWS``.
    """
    if requested == "flat" or rows < SMALL_SEGMENT_ROWS:
        return "flat"
    if requested == "auto":
        return "hnsw" if rows > HNSW_THRESHOLD else "flat"
    if requested in ("hnsw", "ivf", "sq8", "binary"):
        return requested
    if rows < MIN_TRAIN_ROWS:
        return "binary"
    return requested  # "ivf-pq" or a factory string


def check_ann(requested: str) -> None:
    """Refuse, in one line, a vector index that is neither one of ``ANN_CHOICES`` nor a FAISS factory string."""
    from retriever.errors import RetrieverError

    if not isinstance(requested, str) or not requested.strip():
        raise RetrieverError(f"unknown ANN type {requested!r}; choose one of {', '.join(ANN_CHOICES)}")
    if requested in ANN_CHOICES:
        return
    import faiss

    try:
        faiss.index_factory(8 if "PQ" not in requested else 64, requested, faiss.METRIC_INNER_PRODUCT)
    except Exception:  # noqa: BLE001 - FAISS reports a bad factory string as a RuntimeError with C++ text
        raise RetrieverError(
            f"unknown ANN type {requested!r}; choose one of {', '.join(ANN_CHOICES)} or a FAISS factory string "
            "such as 'IVF1024,PQ48'"
        ) from None


def ivf_nlist(rows: int) -> int:
    """Coarse lists for an IVF of ``rows`` rows: 4 sqrt(n), at most one per 39 rows (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(rows)), rows // 39))


def exact_scores(queries: np.ndarray, vectors16: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inner products of each query with the float16 vectors of its own candidate rows; -inf where row is -1.

    ``rows`` is (q, c). Computed per pair (multiply, then sum along the dimension) rather than by a matrix
    product, whose rounding depends on how BLAS blocks the batch: the score of a (query, row) pair is
    then the same bits whatever else is in the batch, the segment or the kind.
    """
    out = np.full(rows.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(rows), RESCORE_BLOCK_QUERIES):
        block = rows[start : start + RESCORE_BLOCK_QUERIES]
        valid = block >= 0
        if not valid.any():
            continue
        gathered = np.asarray(vectors16[np.where(valid, block, 0)], dtype=np.float32)
        scores = (gathered * queries[start : start + RESCORE_BLOCK_QUERIES, None, :]).sum(axis=-1, dtype=np.float32)
        out[start : start + RESCORE_BLOCK_QUERIES] = np.where(valid, scores, -np.inf)
    return out


def best_first(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (scores, rows) of each query, best first, ties by row; padded with -inf / -1."""
    q = len(scores)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.hstack([scores, np.full((q, pad), -np.inf, np.float32)])
        rows = np.hstack([rows, np.full((q, pad), -1, np.int64)])
    order = np.lexsort((rows, -scores), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_rows = np.take_along_axis(rows, order, axis=1)
    top_rows[~np.isfinite(top_scores)] = -1
    return top_scores.astype(np.float32), top_rows.astype(np.int64)


def _partial_top(scores: np.ndarray, rows: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Some ``c`` best (scores, rows) per query, unordered (argpartition): the cheap step before rescoring."""
    if scores.shape[1] <= c:
        return scores, rows
    part = np.argpartition(-scores, c - 1, axis=1)[:, :c]
    return np.take_along_axis(scores, part, axis=1), np.take_along_axis(rows, part, axis=1)


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through, so a file is hashed as it is written."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)


def _write_durably(path: Path, write: Any) -> dict[str, Any]:
    """Write a file through ``write(handle)``, fsync it, and return its size and SHA-256."""
    with path.open("wb") as raw:
        handle = _HashingWriter(raw)
        write(handle)
        raw.flush()
        os.fsync(raw.fileno())
    return {"bytes": handle.size, "sha256": handle.digest.hexdigest()}


def _factory_string(kind: str, params: dict[str, Any]) -> str:
    """The FAISS factory string of a kind (``BFlat``: FAISS's name for a flat binary index)."""
    if kind == "hnsw":
        return f"HNSW{params['M']}"
    if kind == "ivf":
        return f"IVF{params['nlist']},Flat"
    if kind == "ivf-pq":
        return f"IVF{params['nlist']},PQ{params['m']}x{params['nbits']}"
    if kind == "sq8":
        return "SQ8"
    if kind == "binary":
        return "BFlat"
    return kind  # a factory string given by the user


def _resolve_params(kind: str, rows: int, dimension: int, params: dict[str, Any] | None) -> dict[str, Any]:
    defaults = DEFAULT_PARAMS.get(kind, DEFAULT_PARAMS["factory"])
    unknown = set(params or {}) - set(defaults)
    if unknown:
        raise ValueError(f"unknown parameters for {kind!r} vectors: {', '.join(sorted(unknown))}")
    resolved = {**defaults, **(params or {})}
    if "nlist" in resolved and not resolved["nlist"]:
        resolved["nlist"] = ivf_nlist(rows)
    if kind == "ivf-pq" and not resolved["m"]:
        if dimension % 8:
            raise ValueError(f"ivf-pq needs a dimension divisible by 8 (got {dimension}); pass params={{'m': ...}}")
        resolved["m"] = dimension // 8
    if kind == "binary" and dimension % 8:
        raise ValueError(f"binary vectors need a dimension divisible by 8 (got {dimension})")
    if resolved.get("depth", 1) < 1:
        raise ValueError("depth (candidates rescored per result) must be at least 1")
    return resolved


def _binary_codes(vectors: np.ndarray) -> np.ndarray:
    """One sign bit per dimension, packed: what the binary kind stores and compares by Hamming distance."""
    return np.packbits(vectors > 0, axis=1)


def _build_ann(kind: str, factory: str, params: dict[str, Any], vectors: np.ndarray) -> Any:
    """Train and fill the FAISS index of a kind over ``vectors`` (float32, the upcast float16 values)."""
    import faiss

    dimension = vectors.shape[1]
    if kind == "binary":
        index = faiss.IndexBinaryFlat(dimension)
        index.add(_binary_codes(vectors))
        return index
    index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = params["efConstruction"]
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        # Silence FAISS's "please provide at least 39 x k training points" on segments near MIN_TRAIN_ROWS.
        ivf.cp.min_points_per_centroid = 1
        # k-means cost grows with rows x lists; FAISS samples 256 rows per list, which at 1M rows and 4,000
        # lists is every row. A smaller sample bounds the training time of large segments (merges).
        ivf.cp.max_points_per_centroid = params.get("train_per_list", ivf.cp.max_points_per_centroid)
    for part in (faiss.downcast_index(index), ivf):
        if hasattr(part, "do_polysemous_training"):  # IndexPQ, IndexIVFPQ
            # The factory turns on polysemous training (codes ordered for Hamming pre-filtering), which
            # candidates rescored exactly do not use: it cost 15 of 15.4 s of training on 6,000 rows.
            part.do_polysemous_training = False
            part.pq.cp.min_points_per_centroid = 1
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


class SegmentVectors:
    """Vectors of one immutable segment: float16 on disk (memory-mapped) plus an in-RAM ANN over row numbers.

    Thread-safe for concurrent searches: nothing is mutated after ``open`` (search settings travel in
    per-call FAISS ``SearchParameters``).
    """

    def __init__(self, folder: Path, meta: dict[str, Any], vectors16: np.ndarray, ann: Any, flat: Any,
                 sq8: Any = None) -> None:
        self.folder = folder
        self.meta = meta
        self.kind: str = meta["kind"]
        self.params: dict[str, Any] = meta["params"]
        self.dimension: int = meta["dimension"]
        self._vectors16 = vectors16
        self._ann = ann  # FAISS index over row numbers, or None for "flat"
        self._flat = flat  # "flat" scanned in float32: the float32 upcast of the float16 vectors, in RAM
        self._sq8 = sq8  # "flat" scanned in 8 bits: FAISS scalar-quantizer codes of every row (see scan.py)
        self.scan = "sq8" if sq8 is not None else "fp32" if flat is not None else None
        self._ann_bytes = int(meta["files"].get(ANN_FILE, {}).get("bytes", 0))

    @property
    def scan_detail(self) -> str | None:
        """How this flat segment is scanned, for ``info`` and the benchmarks (None: it has an ANN)."""
        return SCAN_DETAILS.get(self.scan)

    # ------------------------------------------------------------------ writing and opening

    @staticmethod
    def write(folder: Path, vectors: np.ndarray, requested: str, params: dict | None = None) -> dict:
        """Write ``vectors`` (unit length, (n, d)) as a segment's vector files; return their JSON-able meta.

        ``requested`` is one of ``ANN_CHOICES`` or a FAISS factory string (inner product); ``segment_kind``
        decides what this segment actually gets. ``params`` override the kind's ``DEFAULT_PARAMS``.
        Raises ``ValueError`` for vectors that are not a finite 2-D float array or for a factory string
        FAISS cannot build.
        """
        started = time.perf_counter()
        folder = Path(folder)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.issubdtype(vectors.dtype, np.floating):
            raise ValueError(f"vectors must be a 2-D float array (n, d), got shape {vectors.shape} {vectors.dtype}")
        vectors16 = np.ascontiguousarray(vectors, dtype=np.float16)
        if not np.isfinite(vectors16).all():
            raise ValueError("vectors contain NaN or infinite values (or values beyond float16's range)")
        rows, dimension = vectors16.shape
        kind = segment_kind(requested, rows)
        resolved = _resolve_params(kind, rows, dimension, params if kind == requested else None)
        factory = "" if kind == "flat" else _factory_string(kind, resolved)
        folder.mkdir(parents=True, exist_ok=True)
        files = {VECTORS_FILE: _write_durably(folder / VECTORS_FILE, lambda f: np.save(f, vectors16))}
        if kind != "flat":
            ann = _checked_build(kind, factory, resolved, vectors16.astype(np.float32))
            files[ANN_FILE] = _write_durably(folder / ANN_FILE, lambda f: f.write(_serialize(ann, kind).data))
        return {
            "requested": requested,
            "kind": kind,
            "factory": factory,
            "params": resolved,
            "rows": rows,
            "dimension": dimension,
            "files": files,
            "build_seconds": round(time.perf_counter() - started, 3),
        }

    @classmethod
    def open(cls, folder: Path, meta: dict) -> SegmentVectors:
        """Memory-map the float16 file and read the ANN into RAM; ``SegmentFileError`` if either is damaged.

        A flat segment also gets the structure its scan reads (``scan.scan_for``: this CPU's class, the
        rows, ``RETRIEVER_FLAT_SCAN``), derived here from the float16 file: nothing on disk depends on it.
        """
        folder = Path(folder)
        rows, dimension = int(meta["rows"]), int(meta["dimension"])
        vectors16 = _open_vectors(folder / VECTORS_FILE, meta["files"][VECTORS_FILE], rows, dimension)
        ann = flat = sq8 = None
        if meta["kind"] != "flat":
            ann = _read_ann(folder / ANN_FILE, meta, rows, dimension)
        elif scan.scan_for(_isa(), rows, os.environ.get(scan.SCAN_ENV)) == "sq8":
            sq8 = scan.Sq8Scan(vectors16)
        else:
            flat = np.ascontiguousarray(vectors16, dtype=np.float32)
        return cls(folder, meta, vectors16, ann, flat, sq8)

    @staticmethod
    def verify_files(folder: Path, meta: dict) -> None:
        """Hash every file against the SHA-256 recorded at write time (slow: reads all of them)."""
        for name, expected in meta["files"].items():
            path = Path(folder) / name
            digest = hashlib.sha256()
            try:
                with path.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 22), b""):
                        digest.update(block)
            except OSError as exc:
                raise SegmentFileError(path, f"cannot be read ({exc.strerror or exc})") from None
            if digest.hexdigest() != expected["sha256"]:
                raise SegmentFileError(path, "its contents changed since it was written (checksum mismatch)")

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._vectors16)

    @property
    def ram_bytes(self) -> int:
        """Bytes held in RAM: the ANN (codes, graph, ids, centroids; FAISS holds what it serialized) or,
        for "flat", the float32 copy or the 8-bit codes. Memory-mapped float16 pages are not counted (they
        are page cache)."""
        if self._sq8 is not None:
            return self._sq8.code_bytes
        return int(self._flat.nbytes) if self._flat is not None else self._ann_bytes

    def get(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors (upcast float16) of some rows; IndexError for a row outside 0..n-1."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        return np.asarray(self._vectors16[rows], dtype=np.float32)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores (q, k) float32, rows (q, k) int64) per query, best first, padded with -inf / -1.

        ``queries`` is a (q, d) batch of unit vectors, searched in one call. ``allowed`` is a boolean mask
        over rows (deleted rows and filters), None for all. Every query gets ``min(k, allowed.sum())``
        results, all allowed; scores are the exact inner products with the float16 vectors. ``exact`` skips
        the ANN (the truth ANN recall is measured against).
        """
        queries, allowed, count = self._checked(queries, allowed)
        q, k = len(queries), max(int(k), 0)
        if k == 0 or q == 0 or count == 0:
            return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)
        if self._sq8 is not None and not exact:
            return self._scanned(queries, k, allowed)
        if exact or self._ann is None or (allowed is not None and self._selective(count, k)):
            rows = None if allowed is None else np.flatnonzero(allowed)
            return self._exact(queries, k, rows)
        return self._approximate(queries, k, allowed, count)

    def _checked(self, queries: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(queries as a float32 (q, d) batch, the mask or None when it allows every row, rows allowed)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dimension:
            raise ValueError(f"queries have dimension {queries.shape[1]}, the segment {self.dimension}")
        n = len(self)
        if allowed is None:
            return queries, None, n
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (n,):
            raise ValueError(f"allowed must be a boolean mask of {n} rows, got shape {allowed.shape}")
        count = int(allowed.sum())
        return queries, (None if count == n else allowed), count

    def _fetch(self, k: int) -> int:
        """ANN candidates rescored for ``k`` results: ``depth`` per result for the first ``DEEP_RESULTS``, one per
        result beyond. Hybrid search asks for 400 passages to fuse, where the order of the tail hardly counts;
        10 candidates for each would cost 4,000 exact rescores per segment (200: measured in the commit)."""
        depth = self.params.get("depth", 1)
        return k + (depth - 1) * min(k, DEEP_RESULTS)

    def _selective(self, count: int, k: int) -> bool:
        """Whether so few rows are allowed that scoring them all beats the ANN (Lucene's rule of thumb)."""
        fetch = self._fetch(k) + RESCORE_MARGIN
        return count <= max(SELECTIVE_ROWS, fetch) or count <= SELECTIVE_FRACTION * len(self)

    # ------------------------------------------------------------------ exact search

    def _exact(self, queries: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over ``rows`` (None: all rows), scored by blocks of rows, then rescored per pair."""
        total = len(self) if rows is None else len(rows)
        keep = min(total, k + RESCORE_MARGIN)
        q = len(queries)
        best_scores = np.zeros((q, 0), np.float32)
        best_rows = np.zeros((q, 0), np.int64)
        for start in range(0, total, EXACT_BLOCK_ROWS):
            stop = min(start + EXACT_BLOCK_ROWS, total)
            block_rows = np.arange(start, stop) if rows is None else rows[start:stop]
            if self._flat is not None:
                matrix = self._flat[start:stop] if rows is None else self._flat[block_rows]
            else:
                matrix = np.asarray(self._vectors16[start:stop] if rows is None else self._vectors16[block_rows],
                                    dtype=np.float32)
            with _blas_threads(q):
                scores = queries @ matrix.T
            candidates = np.broadcast_to(block_rows, scores.shape)
            scores, candidates = _partial_top(scores, candidates, keep)
            best_scores, best_rows = _partial_top(
                np.hstack([best_scores, scores]), np.hstack([best_rows, candidates]), keep
            )
        return best_first(exact_scores(queries, self._vectors16, best_rows), best_rows, k)

    def _scanned(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Flat search through the 8-bit scan: its top ``sq8_fetch(k)`` allowed rows, rescored exactly."""
        return self.rescore(queries, self._proposed(queries, k, allowed)[1], k)

    def proposals(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The 8-bit scan's top ``sq8_fetch(k)`` (approximate scores, rows) per query, not yet rescored.

        For a segment whose ``scan`` is "sq8" only. The scores compare across segments, so ``Snapshot.dense``
        pools the proposals of every such segment and rescores only the best ``sq8_fetch(k)`` of all of them.
        """
        queries, allowed, _ = self._checked(queries, allowed)
        return self._proposed(queries, k, allowed)

    def _proposed(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``proposals`` for queries and a mask already checked (``search`` has done it)."""
        with _faiss_threads(len(queries)):
            return self._sq8.candidates(queries, scan.sq8_fetch(k, len(self)), allowed)

    def rescore(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of ``rows`` (q, c; -1 for none) by their exact scores from the float16 vectors."""
        return best_first(exact_scores(queries, self._vectors16, rows), rows, k)

    # ------------------------------------------------------------------ ANN search

    def candidates(self, queries: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """The ANN's own top-``n`` rows per query (q, n), padded with -1: what rescoring starts from.

        Ranked by the ANN's approximate distances (Hamming for "binary"), filtered inside FAISS, with no
        exact fallback; exact search for "flat". For measuring what rescoring adds (benchmarks).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self._ann is None:
            return self._exact(queries, n, None if allowed is None else np.flatnonzero(allowed))[1]
        count = len(self) if allowed is None else int(np.count_nonzero(allowed))
        return self._ann_candidates(queries, min(n, count), allowed, count)

    def _ann_candidates(self, queries: np.ndarray, fetch: int, allowed: np.ndarray | None, count: int) -> np.ndarray:
        # FAISS does not own the selector, nor the selector its bitmap: both stay referenced here until
        # the search returns. One selector serves the whole batch.
        bitmap = selector = None
        if allowed is not None:
            import faiss

            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(bitmap))
        probe = _binary_codes(queries) if self.kind == "binary" else queries
        params = self._search_params(selector, count / len(self), fetch)
        try:
            with _faiss_threads(len(queries)):
                _, rows = self._ann.search(probe, fetch, params=params)
        except RuntimeError:
            if selector is None:
                raise
            # Some FAISS indexes given by factory string (fast-scan PQ without IVF, for one) cannot filter:
            # their candidates come from exact search over the allowed rows instead.
            return self._exact(queries, fetch, np.flatnonzero(allowed))[1]
        return rows.astype(np.int64, copy=False)

    def _approximate(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """ANN candidates (filtered inside FAISS), rescored exactly; short queries answered exactly."""
        fetch = min(count, max(self._fetch(k), k + RESCORE_MARGIN))
        candidates = self._ann_candidates(queries, fetch, allowed, count)
        scores, rows = best_first(exact_scores(queries, self._vectors16, candidates), candidates, k)
        want = min(k, count)
        short = np.flatnonzero((rows >= 0).sum(axis=1) < want)
        if len(short):
            allowed_rows = None if allowed is None else np.flatnonzero(allowed)
            scores[short], rows[short] = self._exact(queries[short], k, allowed_rows)
        return scores, rows

    def _search_params(self, selector: Any, selectivity: float, fetch: int) -> Any:
        """Per-call FAISS search parameters: the row filter, and nprobe/efSearch raised by its selectivity.

        With a fraction ``s`` of the rows allowed, an IVF probing ``nprobe / s`` lists or an HNSW graph
        exploring ``efSearch / s`` candidates meets about as many allowed rows as the plain search meets rows;
        an IVF also probes lists holding ``PROBE_COVER`` times the ``fetch`` candidates it must return.
        """
        import faiss

        ivf = None if self.kind == "binary" else faiss.try_extract_index_ivf(self._ann)
        if ivf is not None:
            # Deep fetches (hybrid search asks each segment for 400 passages, times the rescoring depth) probe
            # lists holding several times that many rows: a query that comes back short is answered by exact
            # search over the whole segment, 30 ms at 50,000 rows against a few ms for more probes.
            per_list = max(1.0, ivf.ntotal / ivf.nlist) * selectivity
            wanted = max(self.params.get("nprobe", ivf.nprobe) / selectivity, PROBE_COVER * fetch / per_list)
            params = faiss.SearchParametersIVF()
            params.nprobe = int(min(ivf.nlist, math.ceil(wanted)))
        elif self.kind != "binary" and isinstance(_inner(self._ann), faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW()
            ef = max(self.params.get("efSearch", 128), fetch) / selectivity
            params.efSearch = int(math.ceil(min(ef, max(len(self), fetch))))
        elif selector is None:
            return None  # nothing to set, and some indexes (fast-scan PQ) refuse any SearchParameters
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params


@lru_cache(maxsize=1)
def _isa() -> str:
    """This CPU's instruction-set class, read once (what ``scan.scan_for`` decides by)."""
    from retriever.machine import cpu_flags, isa_class

    return isa_class(cpu_flags())


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _blas_threads(queries: int) -> Any:
    """One BLAS thread for a product of a few queries (scores of one search), all of them for a batch.

    A single query's product gains nothing from threads, and OpenBLAS's threads then fight the threads PyTorch
    leaves spinning after encoding that query: on SciFact's 9,952 passages with the PyTorch encoder a dense
    search took 16.6-24 ms instead of 9.6 (measured in the commit that added this).
    """
    if queries > FEW_QUERIES:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def _faiss_threads(queries: int) -> Any:
    """One OpenMP thread for FAISS searching a few queries (this thread only: OpenMP's thread count is per thread).

    FAISS opens a parallel region even for one query; on a busy machine its second thread waits for a core,
    and the query with it: an 8-bit scan of 2,000 rows took 43 ms with two threads at load 10 on 2 cores,
    0.5 ms with one (measured in the commit that added this).
    """
    if queries > FEW_QUERIES:
        yield
        return
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _inner(index: Any) -> Any:
    """The index under an ``IndexPreTransform`` (e.g. OPQ), downcast to its real class."""
    import faiss

    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def _checked_build(kind: str, factory: str, params: dict[str, Any], vectors: np.ndarray) -> Any:
    try:
        return _build_ann(kind, factory, params, vectors)
    except RuntimeError as exc:  # FAISS reports a bad factory string or too few training rows this way
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot build a {factory!r} index over {len(vectors)} vectors: {reason}") from None


def _serialize(index: Any, kind: str) -> np.ndarray:
    import faiss

    return faiss.serialize_index_binary(index) if kind == "binary" else faiss.serialize_index(index)


def _open_vectors(path: Path, expected: dict[str, Any], rows: int, dimension: int) -> np.ndarray:
    """Memory-map the float16 file after checking its size, header, dtype and shape."""
    try:
        size = path.stat().st_size
    except OSError:
        raise SegmentFileError(path, "is missing") from None
    if size != expected["bytes"]:
        raise SegmentFileError(path, f"is {size} bytes, {expected['bytes']} were written (truncated or replaced)")
    try:
        vectors16 = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SegmentFileError(path, f"is not a readable .npy file ({exc})") from None
    if vectors16.dtype != np.float16 or vectors16.shape != (rows, dimension):
        raise SegmentFileError(
            path, f"holds {vectors16.dtype} {vectors16.shape}, expected float16 {(rows, dimension)}"
        )
    return vectors16.view(np.ndarray)  # the same mapping, without np.memmap's per-index Python overhead


def _read_ann(path: Path, meta: dict[str, Any], rows: int, dimension: int) -> Any:
    """Read ``ann.faiss`` into RAM, checking its size and SHA-256 first so FAISS never parses garbage."""
    import faiss

    expected = meta["files"][ANN_FILE]
    try:
        data = path.read_bytes()
    except OSError:
        raise SegmentFileError(path, "is missing or unreadable") from None
    if len(data) != expected["bytes"]:
        raise SegmentFileError(path, f"is {len(data)} bytes, {expected['bytes']} were written (truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise SegmentFileError(path, "its contents changed since it was written (checksum mismatch)")
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        if meta["kind"] == "binary":
            index = faiss.deserialize_index_binary(buffer)
        else:
            index = faiss.deserialize_index(buffer)
    except RuntimeError as exc:
        raise SegmentFileError(path, f"is not a FAISS index ({str(exc).strip().splitlines()[-1]})") from None
    if index.ntotal != rows or index.d != dimension:
        raise SegmentFileError(path, f"holds {index.ntotal} vectors of {index.d} dimensions, expected {rows} of "
                                     f"{dimension}")
    return index
