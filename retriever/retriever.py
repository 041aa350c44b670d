"""``Retriever``: the one object a user needs, a thin facade over an index writer and a snapshot searcher.

corpus (``ingest``) -> passages and vectors (``ingest.pipeline``, ``encoding``) -> segments (``index.writer``)
-> snapshot (``index.snapshot``) -> ranked hits (``search.ranking``). Build or update an index, load it,
search it::

    from retriever import Retriever
    with Retriever.build("docs/", index_dir="indexes/docs") as r:
        for hit in r.search("how do I reset my password", k=5):
            print(hit.score, hit.doc_id, hit.text[:80])

A ``Retriever`` reads the version of the index it opened (or last wrote, or refreshed to) while other
processes commit newer ones; ``refresh()`` moves it to the newest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.encoding.encoder import DEFAULT_MODEL, Encoder, model_fingerprint, resolve_model_path
from retriever.errors import ModelMismatchError, RetrieverError
from retriever.index.backend import IndexReader, IndexUpdater, open_reader, parse_store
from retriever.index.layout import IndexLayout
from retriever.index.manifest import Manifest
from retriever.index.updates import delete, sync_folder, upsert
from retriever.index.vectors import ANN_CHOICES, check_ann
from retriever.index.writer import IndexWriter, collect_garbage_if_idle, writing
from retriever.ingest.chunking import Chunker
from retriever.ingest.documents import Document, document_from_record
from retriever.ingest.pipeline import LocalEmbedder
from retriever.ingest.sync import IndexReport
from retriever.search.filters import parse_filters
from retriever.search.ranking import SearchOptions, search_batch
from retriever.search.results import Hit

if TYPE_CHECKING:
    from retriever.verification.verdict import Verdict

DEFAULT_OVERLAP = 32


class Retriever:
    """A searchable index over a corpus: built once, updated incrementally, searched by meaning and by words."""

    def __init__(self, layout: IndexLayout, snapshot: IndexReader, encoder: Encoder | None = None,
                 wait: float | None = None) -> None:
        self.layout = layout
        self.snapshot = snapshot
        self._encoder = encoder
        self.wait = wait  # seconds a write waits for another writer (None: as long as it takes)
        self.last_report: IndexReport | None = None
        self.ray: str | None = None  # encode on Ray: "local", "auto" or "ray://host:10001" (None: in this process)
        self.workers: int | None = None  # Ray encoding actors (None: one per GPU, else one per CPU)

    # construction ------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        source: str | Path | Iterable[dict[str, Any] | Document],
        index_dir: str | Path | None = None,
        model: str | None = None,
        ann: str = "auto",
        chunk_tokens: int | None = None,
        overlap: int | None = None,
        progress: bool = False,
        encoder: Encoder | None = None,
        wait: float | None = None,
        store: str | None = None,
        ray: str | None = None,
        workers: int | None = None,
    ) -> Retriever:
        """Index a folder, a file or records into ``index_dir``; updates the index if it exists.

        Re-running on the same folder is incremental: unchanged files are not re-encoded, changed ones are,
        deleted ones disappear. ``last_report`` says what was done. ``overlap`` (tokens shared by consecutive
        passages) defaults to 32, or a quarter of the passage length if that is less; an existing index keeps
        its own. ``encoder`` reuses an already loaded model (e.g. across several builds in one process).
        ``wait``: seconds to wait for another process writing the same index (None: as long as it takes).
        ``store``: where a new index keeps passages, vectors and BM25: ``"local"`` (default), ``"milvus:PATH.db"``
        (Milvus Lite) or ``"milvus:http://host:19530"``; an existing index keeps its own. ``ray``: chunk and encode
        on Ray (``"local"`` starts one on this machine, ``"auto"`` or ``"ray://host:10001"`` joins a cluster) with
        ``workers`` actors, one model each.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.exists():
                raise RetrieverError(f"path not found: {path}")
            index_dir = index_dir or default_index_dir(path)
        elif index_dir is None:
            raise RetrieverError("index_dir is required when building from records")
        check_ann(ann)
        spec = parse_store(store)
        if ray is not None:
            from retriever.ingest.ray_embedder import check_ray

            check_ray(workers, ray)
        layout = IndexLayout(index_dir)
        if layout.exists():
            retriever = cls.load(layout.root, model=model, wait=wait)
            if encoder is not None:
                retriever._use_encoder(encoder)
            retriever._check_build_options(chunk_tokens, overlap)
            if store is not None and parse_store(retriever.manifest.store) != spec:
                raise RetrieverError(f"index {layout.name} is stored in {retriever.manifest.store}, not {store}; "
                                     "build a new index to use another store")
        else:
            layout.check_folder()
            retriever = cls._new(layout, model or DEFAULT_MODEL, ann, chunk_tokens, overlap, encoder, wait, spec)
        retriever.ray, retriever.workers = ray, workers
        if isinstance(source, (str, Path)):
            retriever.index_folder(Path(source), progress=progress, ann=ann)
        else:
            retriever.add(source, progress=progress, ann=ann)
        return retriever

    @classmethod
    def _new(cls, layout: IndexLayout, model: str, ann: str, chunk_tokens: int | None, overlap: int | None,
             encoder: Encoder | None, wait: float | None, store: Any = None) -> Retriever:
        """A Retriever for an index not written yet: its first write creates it."""
        encoder = encoder or Encoder(model)
        max_tokens = min(chunk_tokens or encoder.max_seq_length, encoder.max_seq_length)
        if overlap is None:
            overlap = min(DEFAULT_OVERLAP, max_tokens // 4)
        try:
            Chunker(encoder.tokenizer, max_tokens, overlap)  # validates the parameters
        except ValueError as exc:
            raise RetrieverError(
                f"cannot split into {max_tokens}-token passages overlapping by {overlap} tokens: {exc}"
            ) from None
        manifest = Manifest(
            model=encoder.describe(),
            chunking={"max_tokens": max_tokens, "overlap_tokens": overlap, "title_prefix": True},
            ann={"requested": ann, "params": {}},
            store=str(store) if store is not None else "local",
        )
        if store is not None and not store.is_local:
            from retriever.index.milvus.collections import vector_index

            vector_index(ann)  # refuse, before any encoding, an ANN kind Milvus does not have
        retriever = cls.__new__(cls)
        retriever.layout, retriever._encoder, retriever.wait = layout, encoder, wait
        retriever.last_report = None
        retriever.ray, retriever.workers = None, None
        retriever.snapshot = None
        retriever._template = manifest
        return retriever

    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None, wait: float | None = None,
             encoder: Encoder | None = None) -> Retriever:
        """Open an index; ``model``, if given, must be the model that built it.

        ``encoder`` reuses an already loaded model (a server opening each new version of an index, a benchmark's
        ``SyntheticEncoder``), and must be the model that built it.
        """
        layout = IndexLayout(index_dir)
        snapshot = open_reader(layout)
        if model is not None:
            built_with = snapshot.manifest.model["fingerprint"]
            given = model_fingerprint(resolve_model_path(model))
            if given != built_with:
                snapshot.close()
                raise ModelMismatchError(
                    f"index {layout.name} was built with model {snapshot.manifest.model['name']!r} "
                    f"(fingerprint {built_with}), not {model!r} (fingerprint {given}); "
                    "search it with its own model or rebuild it"
                )
        retriever = cls(layout, snapshot, wait=wait)
        if encoder is not None:
            try:
                retriever._use_encoder(encoder)
            except ModelMismatchError:
                snapshot.close()
                raise
        return retriever

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest if self.snapshot is not None else self._template

    # the model -------------------------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The index's model, loaded on first use (``info`` and lexical search never need it).

        It is loaded from the directory recorded at build time, or by name if that directory is gone (a name
        given as a relative path may not resolve from another folder).
        """
        if self._encoder is None:
            recorded = self.manifest.model
            path = recorded.get("path")
            self._use_encoder(Encoder(path if path and Path(path).is_dir() else recorded["name"]))
        return self._encoder

    def _use_encoder(self, encoder: Encoder) -> None:
        recorded = self.manifest.model
        if encoder.fingerprint != recorded["fingerprint"]:
            raise ModelMismatchError(
                f"index {self.layout.name} was built with model {recorded['name']!r} "
                f"(fingerprint {recorded['fingerprint']}), but that model now has fingerprint "
                f"{encoder.fingerprint}; rebuild the index or restore the model"
            )
        self._encoder = encoder

    def _check_build_options(self, chunk_tokens: int | None, overlap: int | None) -> None:
        chunking = self.manifest.chunking
        max_tokens = None if chunk_tokens is None else min(chunk_tokens, self.manifest.model["max_seq_length"])
        if max_tokens is not None and max_tokens != chunking["max_tokens"]:
            raise RetrieverError(
                f"index {self.layout.name} uses {chunking['max_tokens']}-token passages; "
                "build a new index to change the chunk size"
            )
        if overlap is not None and overlap != chunking["overlap_tokens"]:
            raise RetrieverError(
                f"index {self.layout.name} uses an overlap of {chunking['overlap_tokens']} tokens; "
                "build a new index to change it"
            )

    # writing ----------------------------------------------------------------------------------------------------
    def index_folder(self, path: Path, progress: bool = False, ann: str = "auto") -> IndexReport:
        """Bring the index in step with a folder (or file): add, update and remove documents."""
        path = Path(path)
        if not path.exists():
            raise RetrieverError(f"path not found: {path}")
        return self._update(lambda writer, embed, report, bar: sync_folder(writer, writer.base, path, embed, report,
                                                                            bar), progress, ann)

    def add(self, records: Iterable[dict[str, Any] | Document], progress: bool = False,
            ann: str = "auto") -> IndexReport:
        """Add or replace documents given as records (``_id``/``id``, ``title``, ``text``, metadata)."""
        if isinstance(records, (str, bytes, dict)):
            raise RetrieverError("add() takes a list of records (dicts with '_id' and 'text'), not a single one")
        docs = [r if isinstance(r, Document) else document_from_record(r, f"record {i}")
                for i, r in enumerate(records)]
        if not docs and self.snapshot is None:
            raise RetrieverError("nothing to index: no records given")
        return self._update(lambda writer, embed, report, bar: upsert(writer, writer.base, docs, embed, report, bar),
                            progress, ann)

    def remove(self, ids: str | Iterable[str]) -> int:
        """Remove documents by id (one id, or several); returns how many existed."""
        wanted = [ids] if isinstance(ids, (str, int)) and not isinstance(ids, bool) else list(ids)
        for doc_id in wanted:
            if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or not str(doc_id).strip():
                raise RetrieverError(f"document ids are non-empty strings; got {doc_id!r}")
        if self.snapshot is None:
            return 0
        removed = [0]

        def apply(writer: IndexUpdater, embed: Any, report: IndexReport, bar: Any) -> None:
            removed[0] = delete(writer, writer.base, [str(i) for i in wanted])
            report.removed = removed[0]

        self._update(apply, progress=False)
        return removed[0]

    def optimize(self) -> int:
        """Merge every segment into one and drop deleted rows (``retriever optimize``); returns the merges done."""
        from retriever.index.merge import merge_if_needed

        if self.snapshot is None:
            return 0
        with writing(self.layout, wait=self.wait) as writer:
            if not isinstance(writer, IndexWriter):  # Milvus merges its own segments
                writer.compact()
                return 0
            done = merge_if_needed(self.layout, writer, force=True)
        self.refresh()
        return done

    def _update(self, apply: Callable[[IndexUpdater, Any, IndexReport, Any], None], progress: bool,
                ann: str = "auto") -> IndexReport:
        """Run one update under the writer lock; ``self`` moves to the new version if it succeeds."""
        started = time.perf_counter()
        report = IndexReport()
        bar = _progress_bar() if progress else None
        new = self._template if self.snapshot is None else None
        try:
            with writing(self.layout, new, wait=self.wait) as writer:
                recorded = writer.manifest.model["fingerprint"]
                if recorded != self.manifest.model["fingerprint"]:
                    raise ModelMismatchError(
                        f"index {self.layout.name} was rebuilt with another model while it was open; load it again"
                    )
                if ann != "auto" and ann != writer.manifest.ann["requested"]:
                    writer.manifest.ann["requested"] = ann
                    writer.rekind = True
                apply(writer, self._embedder(), report, bar)
        finally:
            if bar is not None:
                bar.close()
        self.refresh()
        collect_garbage_if_idle(self.layout)  # the generation this object held until now can go
        report.seconds = time.perf_counter() - started
        self.last_report = report
        return report

    def _embedder(self) -> Any:
        """Where passages are chunked and encoded: in this process, or on Ray when ``ray`` is set."""
        if self.ray is None:
            return LocalEmbedder(lambda: self.encoder, self._chunker)
        from retriever.ingest.ray_embedder import RayEmbedder

        recorded = self.manifest.model
        path = recorded.get("path")
        model = path if path and Path(path).is_dir() else recorded["name"]
        return RayEmbedder(model, recorded["fingerprint"], self.manifest.chunking, address=self.ray,
                           workers=self.workers)

    def _chunker(self) -> Chunker:
        chunking = self.manifest.chunking
        return Chunker(self.encoder.tokenizer, chunking["max_tokens"], chunking["overlap_tokens"])

    # searching ----------------------------------------------------------------------------------------------------
    @cached_property
    def rerank_head(self) -> Any:
        """The learned metric head stored with the model, or None (read once, not on every search)."""
        from retriever.search.rerank import RerankHead

        return RerankHead.load(self.encoder.path)

    def search(self, query: str, k: int = 10, passages: bool = False, **options: Any) -> list[Hit]:
        """The k best documents for a query (best passage of each), or k passages.

        Options: ``mode`` (dense, lexical, hybrid), ``fusion`` (rrf, convex), ``alpha`` (weight of the dense side
        in convex fusion), ``where`` (filters such as ``"year>=2020"``), ``rerank`` (rerank that many top
        candidates with the model's learned metric head).
        """
        return self.search_many([query], k=k, passages=passages, **options)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        passages: bool = False,
        mode: str | None = None,
        fusion: str | None = None,
        alpha: float | None = None,
        where: str | Sequence[str] | None = None,
        rerank: int = 0,
    ) -> list[list[Hit]]:
        """Search several queries at once: one encoding call, one search per segment, one text lookup."""
        if isinstance(queries, str):
            raise TypeError("search_many takes a list of queries; use search() for one")
        queries = list(queries)
        if any(not isinstance(q, str) or not q.strip() for q in queries):
            raise RetrieverError("empty query: give some text to search for")
        defaults = SearchOptions()
        snapshot = self._snapshot()
        conditions = parse_filters(where)
        options = SearchOptions(
            k=k, passages=passages,
            mode=defaults.mode if mode is None else mode,
            fusion=defaults.fusion if fusion is None else fusion,
            alpha=defaults.alpha if alpha is None else alpha,
            allowed=snapshot.allowed(conditions) if conditions else None,
            rerank=rerank,
        )
        options.validate()
        if not queries:
            return []
        head = None
        if rerank:
            head = self.rerank_head
            if head is None:
                raise RetrieverError(
                    f"model {self.manifest.model['name']!r} has no learned metric head; "
                    "train one with 'retriever train --head mlp'"
                )
        vectors = self.encoder.encode_queries(queries) if options.mode != "lexical" else None
        return search_batch(queries, vectors, options, snapshot, head)

    def _snapshot(self) -> IndexReader:
        if self.snapshot is None:
            raise RetrieverError(f"index {self.layout.name} is empty or closed")
        return self.snapshot

    # verification ------------------------------------------------------------------------------------------------
    def verify(self, query: str, doc_id: str) -> Verdict:
        """Is document ``doc_id`` a match for ``query``? Its best passage's cosine against the threshold."""
        from retriever.verification.verdict import DEFAULT_THRESHOLD, Verdict

        if not isinstance(query, str) or not query.strip():
            raise RetrieverError("empty query: give some text to verify")
        if not self._snapshot().passage_keys(str(doc_id)):
            raise RetrieverError(f"no document {doc_id!r} in index {self.layout.name}")
        score = float(self.similarities([query], [str(doc_id)])[0])
        calibration = self.manifest.extras.get("verification")
        threshold = calibration["threshold"] if calibration else DEFAULT_THRESHOLD
        return Verdict(score, score >= threshold, float(threshold), calibration is not None)

    def similarities(self, queries: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """Cosine of each (query, document) pair, taking the document's best passage (-1 if it is not indexed)."""
        snapshot = self._snapshot()
        unique = list(dict.fromkeys(queries))
        encoded = dict(zip(unique, self.encoder.encode_queries(unique)))
        out = np.zeros(len(queries), dtype=np.float32)
        for row, (query, doc_id) in enumerate(zip(queries, doc_ids)):
            keys = snapshot.passage_keys(str(doc_id))
            out[row] = float((snapshot.vectors_of(keys) @ encoded[query]).max()) if keys else -1.0
        return out

    def set_calibration(self, calibration: dict[str, Any]) -> None:
        """Store a verification threshold (and how it was chosen) in the index, atomically."""
        for key, value in calibration.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise RetrieverError(f"calibration {key} is not a finite number")
        with writing(self.layout, wait=self.wait) as writer:
            writer.commit(extras={"verification": calibration})
        self.refresh()

    # documents and lifetime ------------------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id (title, text, source, metadata), or None."""
        return self.snapshot.document(str(doc_id)) if self.snapshot is not None else None

    def refresh(self) -> bool:
        """Move to the newest committed version if another writer committed one; True if it moved."""
        if not self.layout.exists():
            return False
        if self.snapshot is not None and self.layout.current() == self.snapshot.generation:
            return False
        old = self.snapshot
        self.snapshot = open_reader(self.layout, reuse=old)
        if old is not None:
            old.close()
        return True

    def close(self) -> None:
        """Let go of the open version (writers may then remove its files); the object cannot search afterwards."""
        if self.snapshot is not None:
            self.snapshot.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> list[str]:
        """Read every file of the open version against the checksums recorded when it was written.

        Loading checks sizes and structure only (so that opening stays fast); this reads everything.
        Returns the damaged files (empty if none).
        """
        from retriever.index.segment import check_segment

        return [problem for entry in self._snapshot().manifest.segments
                for problem in check_segment(self.layout, entry)]

    # reporting ----------------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Everything about the index that a user may want to see, without loading the model."""
        m = self.manifest
        snapshot = self._snapshot()
        kinds: dict[str, int] = {}
        for entry in m.segments:
            kinds[entry.vectors.get("kind", "?")] = kinds.get(entry.vectors.get("kind", "?"), 0) + 1
        passages = max(1, snapshot.passages)
        return {
            "index": str(self.layout.root),
            "store": m.store,
            "generation": m.generation,
            "model": m.model,
            "similarity": m.similarity,
            "normalized": m.normalized,
            "chunking": m.chunking,
            "ann": {**m.ann, "kind": _main_kind(m), "segments_by_kind": kinds,
                    "ram_bytes": snapshot.ram_bytes(), "ram_bytes_per_passage": snapshot.ram_bytes() / passages},
            "counts": m.counts,
            "segments": [{"name": e.name, "rows": e.rows, "deleted_rows": e.deleted_rows,
                          "kind": e.vectors.get("kind")} for e in m.segments],
            "size_bytes": snapshot.size_bytes(),
            "created_at": m.created_at,
            "updated_at": m.updated_at,
            "last_build_seconds": m.last_build_seconds,
            "format_version": m.format_version,
            "extras": m.extras,
        }

    def __len__(self) -> int:
        return self.snapshot.documents if self.snapshot is not None else 0


def _main_kind(manifest: Manifest) -> str:
    """The vector index kind that holds most passages (small segments may be searched exactly)."""
    if not manifest.segments:
        return manifest.ann["requested"]
    biggest = max(manifest.segments, key=lambda e: e.rows)
    return str(biggest.vectors.get("kind", manifest.ann["requested"]))


def _progress_bar() -> Any:
    from tqdm.auto import tqdm

    return tqdm(unit="doc", desc="indexing", smoothing=0.1, delay=0.5)  # silent for quick updates


def default_index_dir(path: Path, home: Path = Path("indexes")) -> Path:
    """``indexes/<folder name>``: the default home of the index built from ``path``."""
    resolved = path.resolve()
    name = resolved.name if resolved.is_dir() else resolved.stem
    return home / (name or "index")


__all__ = ["Retriever", "default_index_dir", "ANN_CHOICES"]
