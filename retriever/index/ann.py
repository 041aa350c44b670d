"""The approximate-nearest-neighbour index: passage vectors by stable integer id.

``AnnIndex`` is the small interface the rest of the engine uses (add, remove, search, save,
load); ``FaissIndex`` implements it with FAISS on one machine. Another backend (a Milvus
collection, say) implements the same five methods and slots in through ``open_ann``.

Vectors are unit length and compared by inner product, i.e. cosine similarity.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ANN_KINDS = ("auto", "flat", "hnsw", "ivf")
HNSW_THRESHOLD = 50_000  # "auto" switches from exact search to HNSW above this many passages
DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 32, "efConstruction": 200, "efSearch": 128},
    "ivf": {"nlist": 0, "nprobe": 16},  # nlist 0: chosen from the size at first build
}


class AnnIndex(Protocol):
    """What the engine needs from a vector index."""

    kind: str
    params: dict[str, Any]

    def __len__(self) -> int: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def save(self, path: Path) -> None: ...
    def get(self, ids: np.ndarray) -> np.ndarray: ...


def choose_kind(requested: str, n_vectors: int) -> str:
    """Resolve "auto": exact search for small collections, HNSW for large ones."""
    if requested != "auto":
        return requested
    return "hnsw" if n_vectors > HNSW_THRESHOLD else "flat"


class FaissIndex:
    """FAISS index wrapped in an ``IDMap2`` so ids are stable across updates and deletes."""

    def __init__(self, kind: str, dimension: int, params: dict[str, Any] | None = None) -> None:
        import faiss

        if kind not in DEFAULT_PARAMS:
            raise ValueError(f"unknown ANN kind {kind!r}; choose one of flat, hnsw, ivf")
        self.kind = kind
        self.dimension = dimension
        self.params = {**DEFAULT_PARAMS[kind], **(params or {})}
        self._faiss = faiss
        self.index = None if kind == "ivf" and not self.params["nlist"] else self._new_index()

    @property
    def factory_string(self) -> str:
        inner = {"flat": "Flat", "hnsw": f"HNSW{self.params.get('M', 32)}"}.get(self.kind)
        if inner is None:
            inner = f"IVF{self.params['nlist']},Flat"
        return f"IDMap2,{inner}"

    def _new_index(self) -> Any:
        faiss = self._faiss
        index = faiss.index_factory(self.dimension, self.factory_string, faiss.METRIC_INNER_PRODUCT)
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efConstruction = self.params["efConstruction"]
        self._apply_search_params(index)
        self._keep_direct_map(index)
        return index

    def _keep_direct_map(self, index: Any) -> None:
        """IVF lists can give back a stored vector (for rebuilds) only with a direct map."""
        if self.kind == "ivf":
            ivf = self._faiss.extract_index_ivf(index)
            if ivf.direct_map.type == self._faiss.DirectMap.NoMap:
                ivf.make_direct_map(True)

    def _apply_search_params(self, index: Any) -> None:
        faiss = self._faiss
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.params["efSearch"]
        elif self.kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = self.params["nprobe"]

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index is None:  # IVF: size the coarse quantizer on the first batch
            self.params["nlist"] = max(1, min(int(4 * math.sqrt(len(vectors))), len(vectors) // 39))
            self.index = self._new_index()
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0 or self.index is None:
            return
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == "flat":
            self.index.remove_ids(ids)
            return
        # HNSW graphs cannot delete, and an IVF inside the ID map would map the remaining
        # vectors to the wrong ids after a delete: refill from the vectors that remain,
        # keeping IVF's trained centroids.
        all_ids = self._faiss.vector_to_array(self.index.id_map)
        vectors = self.index.index.reconstruct_n(0, self.index.ntotal)
        keep = ~np.isin(all_ids, ids)
        self.index.reset()
        self.add(all_ids[keep], vectors[keep])

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of some ids (for reranking and verification)."""
        if len(ids) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self.index.reconstruct(int(i)) for i in ids])

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors), e.g. to rebuild as another kind."""
        if not len(self):
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), dtype=np.float32)
        ids = self._faiss.vector_to_array(self.index.id_map)
        return ids, np.vstack([self.index.reconstruct(int(i)) for i in ids])

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; missing slots have id -1. ``allowed_ids`` filters inside the search."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not len(self) or k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = min(k, len(self))
        if allowed_ids is None:
            return self.index.search(queries, k)
        faiss = self._faiss
        selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
        params_class = {
            "flat": faiss.SearchParameters,
            "hnsw": faiss.SearchParametersHNSW,
            "ivf": faiss.SearchParametersIVF,
        }[self.kind]
        params = params_class(sel=selector)
        if self.kind == "hnsw":
            params.efSearch = max(self.params["efSearch"], k)
        elif self.kind == "ivf":
            params.nprobe = self.params["nprobe"]
        return self.index.search(queries, k, params=params)

    def save(self, path: Path) -> None:
        if self.index is not None:
            self._faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, dimension: int, params: dict[str, Any]) -> FaissIndex:
        ann = cls(kind, dimension, params)
        if path.exists():
            ann.index = ann._faiss.read_index(str(path))
            ann._apply_search_params(ann.index)
            ann._keep_direct_map(ann.index)
        return ann

    def clone(self) -> FaissIndex:
        """An independent copy, so a failed update leaves this one untouched."""
        other = FaissIndex.__new__(FaissIndex)
        other.__dict__.update(self.__dict__)
        other.params = dict(self.params)
        other.index = None if self.index is None else self._faiss.clone_index(self.index)
        return other
