"""``Retriever``: the one object a user needs, over small one-job modules.

corpus (readers, sync) -> chunks (chunking) -> vectors (encoder) -> index (ann, store,
storage) -> search (results). Build or update an index, load it, search it::

    from retriever import Retriever
    r = Retriever.build("docs/", index_dir="indexes/docs")
    for hit in r.search("how do I reset my password", k=5):
        print(hit.score, hit.doc_id, hit.text[:80])
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever.encoding.backends import backend_label, resolve_backend
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder, model_fingerprint, resolve_model_path
from retriever.errors import CorruptIndexError, ModelMismatchError, RetrieverError
from retriever.index.ann import ANN_KINDS, FaissIndex, choose_kind
from retriever.index.lexical import LexicalIndex
from retriever.index.manifest import Manifest, now_iso
from retriever.index.storage import LEXICAL, STORE, VECTORS, IndexDirectory
from retriever.index.store import MetadataStore
from retriever.ingest.chunking import Chunker, Passage, encoding_text
from retriever.ingest.documents import Document, document_from_record
from retriever.ingest.sync import IndexReport, scan_folder
from retriever.search.filters import parse_filters
from retriever.search.ranking import SearchOptions, search_one
from retriever.search.results import Hit

if TYPE_CHECKING:
    from retriever.verification.verdict import Verdict

DEFAULT_OVERLAP = 32


class Retriever:
    """A dense index over a corpus, built once and searched by meaning."""

    def __init__(self, directory: IndexDirectory, manifest: Manifest, encoder: Encoder | None = None) -> None:
        self.directory = directory
        self.manifest = manifest
        self._encoder = encoder
        self._encoder_options: dict[str, Any] = {}  # encoding: device and workers of the encoder loaded on use
        self.last_report: IndexReport | None = None
        self._lexical: LexicalIndex | None = None
        self._open_generation()

    # construction ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        source: str | Path | Iterable[dict[str, Any]],
        index_dir: str | Path | None = None,
        model: str | None = None,
        ann: str = "auto",
        chunk_tokens: int | None = None,
        overlap: int | None = None,
        progress: bool = False,
        encoder: Encoder | None = None,
        backend: str | None = None,
        quantize: str | None = None,
        device: str = "auto",
        workers: int = 1,
    ) -> Retriever:
        """Index a folder, a file or records into ``index_dir``; updates it if it exists.

        Re-running on the same folder is incremental: unchanged files are not re-encoded,
        changed ones are, deleted ones disappear. ``last_report`` says what was done.
        ``overlap`` (tokens shared by consecutive passages) defaults to 32, or a quarter of
        the passage length if that is less; an existing index keeps its own.
        ``encoder`` reuses an already loaded model (e.g. across several builds in one process).
        ``backend`` (torch, onnx, openvino) and ``quantize`` (none, int8) say how a new index is
        encoded (default: the engine's default backend) and must match an existing index's;
        ``device`` (auto, cpu, cuda, mps) and ``workers`` (encoding processes) say where.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.exists():
                raise RetrieverError(f"path not found: {path}")
            index_dir = index_dir or default_index_dir(path)
        elif index_dir is None:
            raise RetrieverError("index_dir is required when building from records")
        directory = IndexDirectory(index_dir)
        if directory.exists():
            retriever = cls.load(directory.root, model=model, backend=backend, quantize=quantize, device=device,
                                 workers=workers)
            retriever._check_build_options(ann, chunk_tokens, overlap)
        else:
            if encoder is None:  # encoding: the backend, quantization, device and workers of a new index
                backend, quantize = resolve_backend(backend, quantize)
                encoder = Encoder(model or DEFAULT_MODEL, backend=backend, quantize=quantize, device=device,
                                  workers=workers)
            retriever = cls._create(directory, model or DEFAULT_MODEL, ann, chunk_tokens, overlap, encoder)
        if isinstance(source, (str, Path)):
            retriever.index_folder(Path(source), progress=progress)
        else:
            retriever.add(source, progress=progress)
        return retriever

    @classmethod
    def _create(
        cls,
        directory: IndexDirectory,
        model: str,
        ann: str,
        chunk_tokens: int | None,
        overlap: int | None,
        encoder: Encoder | None = None,
    ) -> Retriever:
        if ann not in ANN_KINDS:
            raise RetrieverError(f"unknown ANN type {ann!r}; choose one of {', '.join(ANN_KINDS)}")
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
            ann={"requested": ann, "kind": choose_kind(ann, 0), "params": {}, "factory": ""},
        )
        retriever = cls.__new__(cls)
        retriever.directory, retriever.manifest, retriever._encoder = directory, manifest, encoder
        retriever._encoder_options = {}
        retriever.last_report = None
        retriever.store, retriever.ann, retriever._lexical = None, None, None
        return retriever

    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None, backend: str | None = None,
             quantize: str | None = None, device: str = "auto", workers: int = 1) -> Retriever:
        """Open an index; ``model``, ``backend`` and ``quantize``, if given, must be those that built it.

        ``device`` and ``workers`` say where its queries (and new documents) are encoded.
        """
        directory = IndexDirectory(index_dir)
        manifest = Manifest.load(directory.current(), directory.name)
        _check_backend(manifest.model, backend, quantize, directory.name)  # encoding
        if model is not None:
            built_with = manifest.model.get("weights_fingerprint", manifest.model["fingerprint"])  # encoding
            given = model_fingerprint(resolve_model_path(model))
            if given != built_with:
                raise ModelMismatchError(
                    f"index {directory.name} was built with model {manifest.model['name']!r} "
                    f"(fingerprint {built_with}), not {model!r} (fingerprint {given}); "
                    "search it with its own model or rebuild it"
                )
        retriever = cls(directory, manifest)
        retriever._encoder_options = {"device": device, "workers": workers}  # encoding
        return retriever

    def _open_generation(self) -> None:
        folder = self.directory.current()
        self._lexical = None
        self._generation = folder.name
        self.manifest = Manifest.load(folder, self.directory.name)
        _verify_vectors(folder, self.manifest, self.directory.name)
        try:
            self.store = MetadataStore(folder / STORE, readonly=True)
            stored = self.store.count_passages()
        except Exception as exc:  # noqa: BLE001 - sqlite reports corruption in many ways
            raise CorruptIndexError(f"index {self.directory.name} is corrupt: {STORE} ({exc})") from None
        ann = self.manifest.ann
        try:
            self.ann = FaissIndex.load(folder / VECTORS, ann["kind"], self.manifest.model["dimension"], ann["params"])
        except RuntimeError as exc:
            raise CorruptIndexError(f"index {self.directory.name} is corrupt: {VECTORS} ({str(exc)[:80]})") from None
        if len(self.ann) != stored:
            raise CorruptIndexError(
                f"index {self.directory.name} is corrupt: {len(self.ann)} vectors but {stored} passages"
            )

    # the model -----------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The index's model, loaded on first use (``info`` never needs it).

        It is loaded from the directory recorded at build time, or by name if that directory
        is gone (a name given as a relative path may not resolve from another folder).
        """
        if self._encoder is None:
            recorded = self.manifest.model
            encoder = Encoder.from_description(recorded, **self._encoder_options)  # encoding: backend as recorded
            if encoder.fingerprint != recorded["fingerprint"]:
                raise ModelMismatchError(
                    f"index {self.directory.name} was built with model {recorded['name']!r} "
                    f"(fingerprint {recorded['fingerprint']}), but that model now has fingerprint "
                    f"{encoder.fingerprint}; rebuild the index or restore the model"
                )
            self._encoder = encoder
        return self._encoder

    def _check_build_options(self, ann: str, chunk_tokens: int | None, overlap: int | None) -> None:
        chunking = self.manifest.chunking
        max_tokens = None if chunk_tokens is None else min(chunk_tokens, self.manifest.model["max_seq_length"])
        if max_tokens is not None and max_tokens != chunking["max_tokens"]:
            raise RetrieverError(
                f"index {self.directory.name} uses {chunking['max_tokens']}-token passages; "
                "build a new index to change the chunk size"
            )
        if overlap is not None and overlap != chunking["overlap_tokens"]:
            raise RetrieverError(
                f"index {self.directory.name} uses an overlap of {chunking['overlap_tokens']} tokens; "
                "build a new index to change it"
            )
        if ann != "auto" and ann != self.manifest.ann["requested"]:
            self.manifest.ann["requested"] = ann  # applied by the next write

    # writing --------------------------------------------------------------------------------
    def index_folder(self, path: Path, progress: bool = False) -> IndexReport:
        """Bring the index in step with a folder (or file): add, update and remove documents."""
        started = time.perf_counter()
        known = self.store.file_hashes() if self.store else {}
        changes = scan_folder(path, known)
        report = IndexReport(skipped_files=changes.skipped, unsupported_files=changes.unsupported)
        report.unchanged = sum(len(self.store.documents_of_file(f)) for f in changes.unchanged) if self.store else 0
        if self.store is None and not any(changes.documents.values()):
            raise RetrieverError(
                f"nothing to index in {path}: no readable .txt, .md, .rst, .html, .json(l) or .pdf files"
            )
        new_ids_of = {file: {d.doc_id for d in docs} for file, docs in changes.documents.items()}
        claimed: dict[str, str] = {}  # document id -> the file that holds it after this run

        def held_elsewhere(doc_id: str, file: str) -> bool:
            """Whether another file keeps this document id (a duplicate here), rather than giving it up."""
            if doc_id in claimed:
                return claimed[doc_id] != file
            owner = self.store.document_file(doc_id) if self.store else None
            if owner is None or owner == file or owner in changes.deleted:
                return False
            return owner not in changes.documents or doc_id in new_ids_of[owner]

        dropped: set[str] = set()  # documents no longer in their file (they may have moved to another)
        for file in changes.deleted:
            dropped.update(self.store.documents_of_file(file))
        removals: list[str] = []
        additions: list[tuple[Document, str | None]] = []
        for file, docs in changes.documents.items():
            hashes = self.store.document_hashes(d.doc_id for d in docs) if self.store else {}
            new_ids = set()
            for doc in docs:
                if doc.doc_id in new_ids or held_elsewhere(doc.doc_id, file):
                    report.duplicate_ids.append(doc.doc_id)
                    continue
                new_ids.add(doc.doc_id)
                claimed[doc.doc_id] = file
                _plan_upsert(doc, file, hashes, report, removals, additions)
            if self.store:
                dropped.update(set(self.store.documents_of_file(file)) - new_ids)
        report.removed = len(dropped - claimed.keys())
        removals += sorted(dropped - set(removals))
        self._write(removals, additions, changes.hashes, changes.deleted, report, progress)
        report.seconds = time.perf_counter() - started
        self.last_report = report
        return report

    def add(self, records: Iterable[dict[str, Any] | Document], progress: bool = False) -> IndexReport:
        """Add or replace documents given as records (``_id``/``id``, ``title``, ``text``, metadata)."""
        started = time.perf_counter()
        docs = [r if isinstance(r, Document) else document_from_record(r, f"record {i}") for i, r in enumerate(records)]
        report = IndexReport()
        hashes = self.store.document_hashes(d.doc_id for d in docs) if self.store else {}
        removals, additions, seen = [], [], set()
        for doc in docs:
            if doc.doc_id in seen:
                report.duplicate_ids.append(doc.doc_id)
                continue
            seen.add(doc.doc_id)
            _plan_upsert(doc, None, hashes, report, removals, additions)
        if not docs and self.store is None:
            raise RetrieverError("nothing to index: no records given")
        self._write(removals, additions, {}, [], report, progress)
        report.seconds = time.perf_counter() - started
        self.last_report = report
        return report

    def remove(self, ids: Iterable[str]) -> int:
        """Remove documents by id; returns how many existed."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        present = list(self.store.document_hashes(wanted)) if self.store else []
        if present:
            self._write(present, [], {}, [], IndexReport(removed=len(present)), False)
        return len(present)

    def _write(
        self,
        removals: list[str],
        additions: list[tuple[Document, str | None]],
        file_hashes: dict[str, str],
        deleted_files: list[str],
        report: IndexReport,
        progress: bool,
    ) -> None:
        """Apply one update as a new generation of the index: all of it or none of it.

        ``self`` is left as it was if the write fails; it moves to the new generation if it succeeds.
        """
        wanted_kind = choose_kind(self.manifest.ann["requested"], len(self.ann)) if self.ann is not None else None
        kind_changes = self.ann is not None and wanted_kind != self.ann.kind
        if self.store is not None and not (removals or additions or file_hashes or deleted_files or kind_changes):
            return
        started = time.perf_counter()
        docs = [doc for doc, _ in additions]
        passages: list[list[Passage]] = []
        vectors = np.zeros((0, self.manifest.model["dimension"]), dtype=np.float32)
        if docs:
            encoder = self.encoder
            chunking = self.manifest.chunking
            chunker = Chunker(encoder.tokenizer, chunking["max_tokens"], chunking["overlap_tokens"])
            passages = chunker.split_many(docs)
            texts = [encoding_text(p.title, p.text) for ps in passages for p in ps]
            vectors = encoder.encode_documents(texts, progress=progress)
        report.passages_encoded = len(vectors)
        manifest = copy.deepcopy(self.manifest)
        if docs:  # encoding: a static int8 encoder is calibrated by its first documents, which names it
            manifest.model = self.encoder.describe()
        with self.directory.writing() as staging:
            store = MetadataStore(staging / STORE)
            try:
                ann = self.ann.clone() if self.ann is not None else self._new_ann(0)
                ann.remove(np.asarray(store.remove_documents(removals), dtype=np.int64))
                ids: list[int] = []
                for (doc, file), doc_passages in zip(additions, passages):
                    ids += store.add_document(doc, doc_passages, file)
                ann.add(np.asarray(ids, dtype=np.int64), vectors)
                ann = self._maybe_change_kind(ann)
                for file in deleted_files:
                    store.remove_file(file)
                for file, digest in file_hashes.items():
                    store.set_file(file, digest)
                manifest.counts = {
                    "documents": store.count_documents(),
                    "passages": store.count_passages(),
                    "files": store.count_files(),
                }
                store.commit()
                LexicalIndex().index(*store.passage_texts()).save(staging / LEXICAL)
            finally:
                store.close()
            ann.save(staging / VECTORS)
            manifest.ann.update(kind=ann.kind, params=ann.params, factory=ann.factory_string)
            manifest.files = {VECTORS: _file_record(staging / VECTORS)}
            manifest.extras["lexical"] = {
                "kind": "bm25s", "stemmer": "english", "stopwords": "en_plus", "unit": "passage"
            }
            manifest.updated_at = now_iso()
            manifest.last_build_seconds = round(time.perf_counter() - started, 3)
            manifest.save(staging)
        if self.store is not None:
            self.store.close()
        self._open_generation()

    def _new_ann(self, size: int) -> FaissIndex:
        kind = choose_kind(self.manifest.ann["requested"], size)
        return FaissIndex(kind, self.manifest.model["dimension"])

    def _maybe_change_kind(self, ann: FaissIndex) -> FaissIndex:
        kind = choose_kind(self.manifest.ann["requested"], len(ann))
        if kind == ann.kind:
            return ann
        ids, vectors = ann.vectors()
        rebuilt = FaissIndex(kind, ann.dimension)
        rebuilt.add(ids, vectors)
        return rebuilt

    # searching -----------------------------------------------------------------------------
    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index over the same passages, loaded on first use."""
        if self._lexical is None:
            folder = self.directory.current()
            if not (folder / LEXICAL).is_dir():
                raise CorruptIndexError(
                    f"index {self.directory.name} has no BM25 index; rebuild it with 'retriever index'"
                )
            self._lexical = LexicalIndex.load(folder / LEXICAL)
        return self._lexical

    @cached_property
    def rerank_head(self) -> Any:
        """The learned metric head stored with the model, or None (read once, not on every search)."""
        from retriever.search.rerank import RerankHead

        return RerankHead.load(self.encoder.path)

    def search(self, query: str, k: int = 10, passages: bool = False, **options: Any) -> list[Hit]:
        """The k best documents for a query (best passage of each), or k passages.

        Options: ``mode`` (dense, lexical, hybrid), ``fusion`` (rrf, convex), ``alpha`` (weight of the
        dense side in convex fusion), ``where`` (filters such as ``"year>=2020"``), ``rerank`` (rerank
        that many top candidates with the model's learned metric head).
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
        """Search several queries at once (batched encoding)."""
        if isinstance(queries, str):
            raise TypeError("search_many takes a list of queries; use search() for one")
        if any(not isinstance(q, str) or not q.strip() for q in queries):
            raise RetrieverError("empty query: give some text to search for")
        defaults = SearchOptions()
        conditions = parse_filters(where)
        options = SearchOptions(
            k=k,
            passages=passages,
            mode=mode or defaults.mode,
            fusion=fusion or defaults.fusion,
            alpha=defaults.alpha if alpha is None else alpha,
            allowed_ids=self.store.passage_ids_where(conditions) if conditions else None,
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
        lexical = self.lexical if options.mode != "dense" else None
        vectors: Any = [None] * len(queries)
        if options.mode != "lexical":
            vectors = self.encoder.encode_queries(list(queries))
        return [
            search_one(query, vector, options, self.ann, lexical, self.store, head)
            for query, vector in zip(queries, vectors)
        ]

    # verification ----------------------------------------------------------------------------
    def verify(self, query: str, doc_id: str) -> Verdict:
        """Is document ``doc_id`` a match for ``query``? Its best passage's cosine against the threshold."""
        from retriever.verification.verdict import DEFAULT_THRESHOLD, Verdict

        if not query.strip():
            raise RetrieverError("empty query: give some text to verify")
        ids = self.store.passage_ids_of([doc_id])
        if not ids:
            raise RetrieverError(f"no document {doc_id!r} in index {self.directory.name}")
        score = float(self.similarities([query], [doc_id])[0])
        calibration = self.manifest.extras.get("verification")
        threshold = calibration["threshold"] if calibration else DEFAULT_THRESHOLD
        return Verdict(score, score >= threshold, float(threshold), calibration is not None)

    def similarities(self, queries: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """Cosine of each (query, document) pair, taking the document's best passage."""
        unique = list(dict.fromkeys(queries))
        encoded = dict(zip(unique, self.encoder.encode_queries(unique)))
        out = np.zeros(len(queries), dtype=np.float32)
        for row, (query, doc_id) in enumerate(zip(queries, doc_ids)):
            vector = encoded[query]
            ids = np.asarray(self.store.passage_ids_of([doc_id]), dtype=np.int64)
            out[row] = float((self.ann.get(ids) @ vector).max()) if len(ids) else -1.0
        return out

    def set_calibration(self, calibration: dict[str, Any]) -> None:
        """Store a verification threshold (and how it was chosen) in the index, atomically."""
        manifest = copy.deepcopy(self.manifest)
        manifest.extras["verification"] = calibration
        manifest.updated_at = now_iso()
        with self.directory.writing(carry=(STORE, VECTORS, LEXICAL)) as staging:
            manifest.save(staging)
        self.store.close()
        self._open_generation()

    # documents and lifetime ----------------------------------------------------------------------
    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id (title, source, metadata and its text), or None.

        The text is put back together from the document's passages, so it spans from the first
        word to the last one of the original.
        """
        if self.store is None:
            return None
        ids = self.store.passage_ids_of([str(doc_id)])
        if not ids:
            return None
        stored = sorted(self.store.passages(ids).values(), key=lambda p: p.start)
        text, end = "", 0
        for passage in stored:
            if passage.end > end:
                text += passage.text[max(0, end - passage.start):]
                end = passage.end
        first = stored[0]
        return Document(first.doc_id, text, first.title, first.source, dict(first.metadata))

    def refresh(self) -> bool:
        """Move to the newest committed version if another writer committed one; True if it moved."""
        if self.directory.current().name == self._generation:
            return False
        old = self.store
        self._open_generation()
        if old is not None:
            old.close()
        return True

    def close(self) -> None:
        """Release the open index files; the object cannot search afterwards."""
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._encoder is not None:  # encoding: stops encoding worker processes, if any
            self._encoder.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reporting -------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Everything about the index that a user may want to see, without loading the model."""
        m = self.manifest
        return {
            "index": str(self.directory.root),
            "model": m.model,
            "similarity": m.similarity,
            "normalized": m.normalized,
            "chunking": m.chunking,
            "ann": m.ann,
            "counts": m.counts,
            "size_bytes": self.directory.size_bytes(),
            "created_at": m.created_at,
            "updated_at": m.updated_at,
            "last_build_seconds": m.last_build_seconds,
            "format_version": m.format_version,
            "extras": m.extras,
        }

    def __len__(self) -> int:
        return self.store.count_documents() if self.store else 0


def _plan_upsert(doc: Document, file: str | None, hashes: dict[str, str], report: IndexReport, removals: list[str],
                 additions: list[tuple[Document, str | None]]) -> None:
    """Count a document as unchanged, updated (old version removed) or added, and queue its encoding."""
    if hashes.get(doc.doc_id) == doc.content_hash():
        report.unchanged += 1
        return
    if doc.doc_id in hashes:
        report.updated += 1
        removals.append(doc.doc_id)
    else:
        report.added += 1
    additions.append((doc, file))


def default_index_dir(path: Path, home: Path = Path("indexes")) -> Path:
    """``indexes/<folder name>``: the default home of the index built from ``path``."""
    resolved = path.resolve()
    name = resolved.name if resolved.is_dir() else resolved.stem
    return home / (name or "index")


def _check_backend(recorded: dict[str, Any], backend: str | None, quantize: str | None, name: str) -> None:
    """encoding: refuse to encode queries differently from the index's documents, naming both ways."""
    built = (recorded.get("backend", "torch"), recorded.get("quantize", "none"))
    asked = (backend or built[0], quantize or (built[1] if backend in (None, built[0]) else "none"))
    if asked != built:
        raise ModelMismatchError(
            f"index {name} was encoded with {backend_label(*built)} ({recorded['name']}), not {backend_label(*asked)}; "
            f"search it with --backend {built[0]} --quantize {built[1]} or rebuild it"
        )


def _file_record(path: Path) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    if path.exists():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def _verify_vectors(folder: Path, manifest: Manifest, name: str) -> None:
    expected = manifest.files.get(VECTORS)
    if expected is None:
        return
    actual = _file_record(folder / VECTORS)
    if actual != expected:
        raise CorruptIndexError(f"index {name} is corrupt: {VECTORS} does not match its checksum")
