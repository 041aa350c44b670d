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

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever import validation
from retriever.encoding.backends import AUTO, backend_label
from retriever.encoding.encoder import DEFAULT_MODEL, Encoder, model_fingerprint, resolve_model_path
from retriever.errors import ModelMismatchError, RetrieverError, RetrieverWarning
from retriever.index.backend import IndexReader, IndexUpdater, parse_store
from retriever.index.layout import IndexLayout
from retriever.index.manifest import Manifest
from retriever.index.opening import open_reader
from retriever.index.transaction import writing
from retriever.index.updates import delete, sync_folder, upsert
from retriever.index.vectors import ANN_CHOICES, check_ann
from retriever.index.writer import IndexWriter, collect_garbage_if_idle
from retriever.ingest.chunking import Chunker
from retriever.ingest.documents import Document, documents_from_records
from retriever.ingest.pipeline import LocalEmbedder
from retriever.ingest.sync import IndexReport
from retriever.judgments import Judgment, JudgmentStore
from retriever.search.context import DEFAULT_CONTEXT_TOKENS, token_counter
from retriever.search.filters import filter_warnings, parse_filters
from retriever.search.ranking import SearchOptions, search_batch
from retriever.search.results import ContextPassage, Hit

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
        self._encoder_options: dict[str, Any] = {}  # device and workers of the encoder loaded on first use
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
        strict: bool = False,
        backend: str | None = None,
        quantize: str | None = None,
        device: str = "auto",
        workers: int | None = None,
        store: str | None = None,
        ray: str | None = None,
    ) -> Retriever:
        """Index a folder, a file or records into ``index_dir``; updates the index if it exists.

        Re-running on the same folder is incremental: unchanged files are not re-encoded, changed ones are,
        deleted ones disappear. ``last_report`` says what was done. ``overlap`` (tokens shared by consecutive
        passages) defaults to 32, or a quarter of the passage length if that is less; an existing index keeps
        its own. ``encoder`` reuses an already loaded model (e.g. across several builds in one process).
        ``wait``: seconds to wait for another process writing the same index (None: as long as it takes).
        Unreadable files, records with no text and no title and duplicate ids are skipped with one
        ``RetrieverWarning`` per kind; ``strict=True`` refuses to write anything instead.
        ``backend`` (torch, onnx, openvino) and ``quantize`` (none, int8) say how a new index is encoded
        (default: the engine's default backend) and must match an existing index's; ``device`` (auto, cpu,
        cuda, mps) and ``workers`` (encoding processes, default 1) say where.
        ``store``: where a new index keeps passages, vectors and BM25: ``"local"`` (default), ``"milvus:PATH.db"``
        (Milvus Lite) or ``"milvus:http://host:19530"``; an existing index keeps its own. ``ray``: chunk and encode
        on Ray (``"local"`` starts one on this machine, ``"auto"`` or ``"ray://host:10001"`` joins a cluster) with
        ``workers`` actors, one model each (default: one per GPU, else one per CPU).
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
        processes = 1 if ray is not None else workers or 1  # local encoding processes (Ray has its own actors)
        layout = IndexLayout(index_dir)
        if layout.exists():
            retriever = cls.load(layout.root, model=model, wait=wait, backend=backend, quantize=quantize,
                                 device=device, workers=processes)
            if encoder is not None:
                retriever._use_encoder(encoder)
            retriever._check_build_options(chunk_tokens, overlap)
            if store is not None and parse_store(retriever.manifest.store) != spec:
                raise RetrieverError(f"index {layout.name} is stored in {retriever.manifest.store}, not {store}; "
                                     "build a new index to use another store")
        else:
            layout.check_folder()
            if encoder is None:  # how a new index is encoded: backend (auto: measured), quantization, device, workers
                from retriever.encoding.auto import make_encoder

                encoder = make_encoder(model or DEFAULT_MODEL, backend, quantize, device=device, workers=processes,
                                       progress=progress)
            retriever = cls._new(layout, model or DEFAULT_MODEL, ann, chunk_tokens, overlap, encoder, wait, spec)
            retriever._asked = (chunk_tokens, overlap, store)  # checked if another run creates the index first
        retriever.ray, retriever.workers = ray, workers
        if isinstance(source, (str, Path)):
            retriever.index_folder(Path(source), progress=progress, ann=ann, strict=strict)
        else:
            retriever.add(source, progress=progress, ann=ann, strict=strict)
        return retriever

    @classmethod
    def create(cls, index_dir: str | Path, model: str | None = None, ann: str = "auto", chunk_tokens: int | None = None,
               overlap: int | None = None, encoder: Encoder | None = None, wait: float | None = None,
               backend: str | None = None, quantize: str | None = None, device: str = "auto",
               store: str | None = None) -> Retriever:
        """An empty index in ``index_dir``, written now, for documents added later (a framework's vector store).

        Options as ``build``. An index that already exists there is refused: open it with ``load``.
        """
        check_ann(ann)
        spec = parse_store(store)
        layout = IndexLayout(index_dir)
        if layout.exists():
            raise RetrieverError(f"index {layout.name} already exists; open it with Retriever.load")
        layout.check_folder()
        if encoder is None:
            from retriever.encoding.auto import make_encoder

            encoder = make_encoder(model or DEFAULT_MODEL, backend, quantize, device=device, progress=False)
        retriever = cls._new(layout, model or DEFAULT_MODEL, ann, chunk_tokens, overlap, encoder, wait, spec)
        with writing(layout, retriever._template, wait=wait):  # commits the empty first generation
            if layout.exists():  # another run created it while this one waited for the lock
                raise RetrieverError(f"index {layout.name} was created meanwhile by another run; open it with load")
        retriever.refresh()
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
        retriever._encoder_options = {}
        retriever.last_report = None
        retriever.ray, retriever.workers = None, None
        retriever.snapshot = None
        retriever._template = manifest
        return retriever

    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None, wait: float | None = None,
             encoder: Encoder | None = None, backend: str | None = None, quantize: str | None = None,
             device: str = "auto", workers: int = 1) -> Retriever:
        """Open an index; ``model``, ``backend`` and ``quantize``, if given, must be those that built it.

        ``encoder`` reuses an already loaded model (a server opening each new version of an index, a benchmark's
        ``SyntheticEncoder``), and must be the model that built it. ``device`` and ``workers`` say where its
        queries (and new documents) are encoded.
        """
        layout = IndexLayout(index_dir)
        snapshot = open_reader(layout)
        try:
            _check_backend(snapshot.manifest.model, backend, quantize, layout.name)
        except ModelMismatchError:
            snapshot.close()
            raise
        if model is not None:
            recorded = snapshot.manifest.model
            built_with = recorded.get("weights_fingerprint", recorded["fingerprint"])
            given = model_fingerprint(resolve_model_path(model))
            if given != built_with:
                snapshot.close()
                raise ModelMismatchError(
                    f"index {layout.name} was built with model {snapshot.manifest.model['name']!r} "
                    f"(fingerprint {built_with}), not {model!r} (fingerprint {given}); "
                    "search it with its own model or rebuild it"
                )
        retriever = cls(layout, snapshot, wait=wait)
        retriever._encoder_options = {"device": device, "workers": workers}
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
            self._use_encoder(Encoder.from_description(self.manifest.model, self.layout.root,
                                                        **self._encoder_options))
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
    def index_folder(self, path: Path, progress: bool = False, ann: str = "auto", strict: bool = False) -> IndexReport:
        """Bring the index in step with a folder (or file): add, update and remove documents.

        What would be skipped (unreadable files, records with no text and no title, duplicate ids) is known
        before anything is written: a warning per kind, or with ``strict`` an error and no write at all.
        """
        path = Path(path)
        if not path.exists():
            raise RetrieverError(f"path not found: {path}")

        def apply(writer: IndexWriter, embed: Any, report: IndexReport, bar: Any) -> None:
            sync_folder(writer, writer.base, path, embed, report, bar, planned=lambda r: _report_skips(r, strict))

        return self._update(apply, progress, ann)

    def add(self, records: Iterable[dict[str, Any] | Document], progress: bool = False, ann: str = "auto",
            strict: bool = False) -> IndexReport:
        """Add or replace documents given as records (``_id``/``id``, ``title``, ``text``, metadata).

        A malformed record is refused (nothing is written); records with no text and no title and
        repeated ids are skipped with a warning, or refused too when ``strict``.
        """
        if isinstance(records, (dict, Document, str, bytes)):
            raise RetrieverError("add takes a list of records; wrap a single record in a list")
        skipped: list[tuple[str, str]] = []
        docs = documents_from_records(((f"record {i}", r) for i, r in enumerate(records)), skipped=skipped)
        if not docs and self.snapshot is None:
            raise RetrieverError("nothing to index: no records given")

        def apply(writer: IndexWriter, embed: Any, report: IndexReport, bar: Any) -> None:
            report.skipped_records += skipped
            upsert(writer, writer.base, docs, embed, report, bar, planned=lambda r: _report_skips(r, strict))

        return self._update(apply, progress, ann)

    def remove(self, ids: str | Iterable[str]) -> int:
        """Remove documents by id (one id, or several); returns how many existed."""
        wanted = validation.document_ids(ids)
        if self.snapshot is None:
            return 0
        removed = [0]

        def apply(writer: IndexUpdater, embed: Any, report: IndexReport, bar: Any) -> None:
            removed[0] = delete(writer, writer.base, wanted)
            report.removed = removed[0]

        self._update(apply, progress=False)
        return removed[0]

    def optimize(self) -> int:
        """Merge every segment into one and drop deleted rows (``retriever optimize``); returns the merges done."""
        from retriever.index.merge import merge_if_needed

        if self.snapshot is None:
            return 0
        with writing(self.layout, wait=self.wait, reuse=self.snapshot) as writer:
            if not isinstance(writer, IndexWriter):  # Milvus merges its own segments
                writer.compact()
                return 0
            done = merge_if_needed(self.layout, writer, force=True)
        self.refresh()
        return done

    def _update(self, apply: Callable[[IndexUpdater, Any, IndexReport, Any], None], progress: bool,
                ann: str = "auto") -> IndexReport:
        """Run one update under the writer lock; ``self`` moves to the new version if it succeeds."""
        if self.closed:
            raise RetrieverError(f"index {self.layout.name} was closed; load it again")
        started = time.perf_counter()
        report = IndexReport()
        bar = _progress_bar() if progress else None
        new = self._template if self.snapshot is None else None
        try:
            with writing(self.layout, new, wait=self.wait, reuse=self.snapshot) as writer:
                if new is not None and self.layout.exists():  # another run created the index while we waited
                    self._adopt(writer.manifest)
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

    def _adopt(self, manifest: Manifest) -> None:
        """A first build found, under the writer lock, that another run created the index meanwhile: go on as an
        update of that index (concurrent runs queue), encoded by the model it records.

        Nothing was encoded yet (encoding happens under the lock), so no document meets another encoder. A build
        that asked for another model, backend or quantization, or other passages or store, is refused.
        """
        recorded, asked = manifest.model, self._template.model
        built = (recorded.get("weights_fingerprint", recorded["fingerprint"]),
                 recorded.get("backend", "torch"), recorded.get("quantize", "none"))
        wanted = (asked.get("weights_fingerprint", asked["fingerprint"]),
                  asked.get("backend", "torch"), asked.get("quantize", "none"))
        if built != wanted:
            raise ModelMismatchError(
                f"index {self.layout.name} was created meanwhile by another run with {recorded['name']!r} "
                f"({backend_label(*built[1:])}, fingerprint {built[0]}), not {asked['name']!r} "
                f"({backend_label(*wanted[1:])}, fingerprint {wanted[0]}); build it with that model or use another "
                "index"
            )
        chunk_tokens, overlap, store = getattr(self, "_asked", (None, None, None))
        if store is not None and parse_store(manifest.store) != parse_store(store):
            raise RetrieverError(f"index {self.layout.name} was created meanwhile by another run, stored in "
                                 f"{manifest.store}, not {store}; build a new index to use another store")
        template, self._template = self._template, copy.deepcopy(manifest)
        try:
            self._check_build_options(chunk_tokens, overlap)
        except RetrieverError:
            self._template = template
            raise
        encoder = self._encoder
        if encoder is not None and encoder.fingerprint != recorded["fingerprint"]:
            # the same weights and backend, but an index an older version calibrated on its corpus: use its export
            options = {key: getattr(encoder, attr) for key, attr in (
                ("device", "requested_device"), ("workers", "workers"), ("batch_size", "batch_size"),
                ("threads", "threads"), ("exports", "exports")) if hasattr(encoder, attr)}
            self._encoder = Encoder.from_description(recorded, self.layout.root, **options)

    def _embedder(self) -> Any:
        """Where passages are chunked and encoded: in this process, or on Ray when ``ray`` is set.

        Ray's actors load exactly the encoder the index records, from the export the driver made (once) here.
        """
        if self.ray is None:
            return LocalEmbedder(lambda: self.encoder, self._chunker)
        from retriever.ingest.ray_embedder import RayEmbedder

        def describe() -> dict[str, Any]:
            self.encoder.prepare()
            return {**self.encoder.describe(), "exports": str(self.encoder.exports)}

        return RayEmbedder(describe, self.manifest.chunking, address=self.ray, workers=self.workers)

    def _chunker(self) -> Chunker:
        chunking = self.manifest.chunking
        return Chunker(self.encoder.tokenizer, chunking["max_tokens"], chunking["overlap_tokens"])

    # searching ----------------------------------------------------------------------------------------------------
    @cached_property
    def rerank_head(self) -> Any:
        """The learned metric head stored with the model, or None (read once, not on every search)."""
        from retriever.search.head_files import has_head

        if not has_head(self.encoder.path):
            return None  # without importing torch, which the head needs
        from retriever.search.rerank import RerankHead

        return RerankHead.load(self.encoder.path)

    @property
    def default_alpha(self) -> float:
        """Convex fusion weight when a search gives none: the model's own (``retriever adapt``), else 0.5."""
        return float(self.manifest.model.get("search_defaults", {}).get("alpha", SearchOptions.alpha))

    @property
    def default_fusion(self) -> str:
        """Hybrid fusion when a search gives none: the one ``retriever tune`` kept, else convex."""
        fusion = self.manifest.model.get("search_defaults", {}).get("fusion")
        return fusion if fusion in ("rrf", "convex") else SearchOptions.fusion

    def search(self, query: str, k: int = 10, passages: bool = False, diversity: float | None = None,
               fetch_k: int | None = None, context: int | str | None = None, **options: Any) -> list[Hit]:
        """The k best documents for a query (best passage of each), or k passages.

        Options: ``mode`` (dense, lexical, hybrid), ``fusion`` (rrf, convex), ``alpha`` (weight of the dense side
        in convex fusion), ``where`` (filters such as ``"year>=2020"``), ``rerank`` (rerank that many top
        candidates with the model's learned metric head). ``diversity``: maximal marginal relevance with this
        lambda (1.0 pure relevance, lower values drop near-copies) over ``fetch_k`` candidates (default
        ``max(4 * k, 20)``); None (default) ranks by relevance alone. ``context``: each hit's passage with up to
        that many neighbouring passages of its document on each side, or ``"document"``: the whole document if it
        has at most ``context_tokens`` tokens (default 2000), else as many neighbours as fit. Every hit carries
        ``snippet`` and ``highlights``, worked out when first read; ``explain=True`` adds its ``explanation``: each
        side's score, rank and normalised value, and the fused score with the fusion and alpha used.
        """
        return self.search_many([query], k=k, passages=passages, diversity=diversity, fetch_k=fetch_k,
                                context=context, **options)[0]

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
        diversity: float | None = None,
        fetch_k: int | None = None,
        context: int | str | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        explain: bool = False,
    ) -> list[list[Hit]]:
        """Search several queries at once: one encoding call, one search per segment, one text lookup.

        ``explain``: attach to each hit its ``explanation`` (``retriever.search.explain``).
        """
        if isinstance(queries, str):
            raise TypeError("search_many takes a list of queries; use search() for one")
        planned = self._plan(queries, k=k, passages=passages, mode=mode, fusion=fusion, alpha=alpha, where=where,
                             rerank=rerank, diversity=diversity, fetch_k=fetch_k, context=context,
                             context_tokens=context_tokens, explain=explain)
        return search_batch(*planned, count_tokens=self._count_tokens) if planned[0] else []

    def context_for(self, query: str, max_tokens: int = DEFAULT_CONTEXT_TOKENS, k: int = 10, context: int = 1,
                    **options: Any) -> list[ContextPassage]:
        """The passages a prompt should get for ``query``, within ``max_tokens`` tokens of the model's tokenizer.

        The k best passages (search ``options`` as in ``search``), each widened by ``context`` neighbouring
        passages on each side, near-copies (cosine >= 0.95) and repeated text kept once, in rank order, each
        with a citation. See ``retriever.search.assembly``.
        """
        from retriever.search.assembly import assemble

        planned = self._plan([query], k=k, passages=True, **options)
        return assemble(*planned, tokenizer=self.encoder.tokenizer, max_tokens=max_tokens, context=context)

    def _plan(self, queries: Sequence[str], where: str | Sequence[str] | None = None, rerank: int = 0,
              mode: str | None = None, fusion: str | None = None, alpha: float | None = None,
              **settings: Any) -> tuple[list[str], np.ndarray | None, SearchOptions, IndexReader, Any]:
        """What a search needs: checked queries, their vectors (None in lexical mode), options, snapshot, head."""
        queries = [validation.query_text(q) for q in queries]
        defaults = SearchOptions()
        snapshot = self._snapshot()
        conditions = parse_filters(where)
        options = SearchOptions(
            mode=defaults.mode if mode is None else mode,
            fusion=self.default_fusion if fusion is None else fusion,
            alpha=self.default_alpha if alpha is None else alpha,
            allowed=snapshot.allowed(conditions) if conditions else None,
            rerank=rerank, **settings,
        )
        options.validate()
        if conditions and snapshot.available(options.allowed) == 0:
            for message in filter_warnings(conditions, snapshot.field_types):  # say why, when it is a mistake
                warnings.warn(message, RetrieverWarning, stacklevel=3)
        head = None
        if rerank:  # refused with no queries too: the same options give the same answer whatever the batch
            head = self.rerank_head
            if head is None:
                raise RetrieverError(
                    f"model {self.manifest.model['name']!r} has no learned metric head; "
                    "train one with 'retriever train --head mlp'"
                )
        vectors = self.encoder.encode_queries(queries) if options.mode != "lexical" and queries else None
        return queries, vectors, options, snapshot, head

    def _count_tokens(self, text: str) -> int:
        """Tokens of a text by the model's tokenizer (context budgets)."""
        return token_counter(self.encoder.tokenizer)(text)

    def _snapshot(self) -> IndexReader:
        if self.closed:
            raise RetrieverError(f"index {self.layout.name} was closed; load it again")
        if self.snapshot is None:
            raise RetrieverError(f"index {self.layout.name} is empty")
        return self.snapshot

    # verification ------------------------------------------------------------------------------------------------
    def verify(self, query: str, doc_id: str) -> Verdict:
        """Is document ``doc_id`` a match for ``query``? Its best passage's cosine against the threshold."""
        from retriever.verification.verdict import DEFAULT_THRESHOLD, Verdict

        query = validation.query_text(query)
        doc_id = validation.document_id(doc_id)
        if not self._snapshot().passage_keys(doc_id):
            raise RetrieverError(f"no document {doc_id!r} in index {self.layout.name}")
        score = float(self.similarities([query], [doc_id])[0])
        calibration = self.manifest.extras.get("verification")
        threshold = calibration["threshold"] if calibration else DEFAULT_THRESHOLD
        return Verdict(score, score >= threshold, float(threshold), calibration is not None)

    def similarities(self, queries: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """Cosine of each (query, document) pair, taking the document's best passage (-1 if it is not indexed)."""
        if isinstance(queries, str) or isinstance(doc_ids, str) or len(queries) != len(doc_ids):
            raise RetrieverError("similarities takes two lists of the same length: queries and document ids")
        queries = [validation.query_text(q) for q in queries]
        doc_ids = [validation.document_id(d) for d in doc_ids]
        snapshot = self._snapshot()
        unique = list(dict.fromkeys(queries))
        encoded = dict(zip(unique, self.encoder.encode_queries(unique)))
        out = np.zeros(len(queries), dtype=np.float32)
        for row, (query, doc_id) in enumerate(zip(queries, doc_ids)):
            keys = snapshot.passage_keys(doc_id)
            out[row] = float((snapshot.vectors_of(keys) @ encoded[query]).max()) if keys else -1.0
        return out

    def set_calibration(self, calibration: dict[str, Any]) -> None:
        """Store a verification threshold (and how it was chosen) in the index, atomically."""
        for key, value in calibration.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise RetrieverError(f"calibration {key} is not a finite number")
        with writing(self.layout, wait=self.wait, reuse=self.snapshot) as writer:
            writer.commit(extras={"verification": calibration})
        self.refresh()

    # judgments -----------------------------------------------------------------------------------------------------
    def judge(self, query: str, doc_id: str, grade: int) -> Judgment:
        """Grade a document for a query: 0 not relevant, 1 relevant, 2 highly relevant (the latest grade wins).

        Stored durably in the index folder (``retriever.judgments``). An id that is not (or no longer) in the
        index is accepted: a judgment is about the query and the id, and outlives the document.
        """
        return self.judgment_store.judge(query, doc_id, grade)

    def judgments(self, query: str | None = None) -> list[Judgment]:
        """The judgments given on this index (or on one query), oldest first."""
        return self.judgment_store.all(query)

    @property
    def judgment_store(self) -> JudgmentStore:
        return JudgmentStore(self.layout.root)

    # documents and lifetime ------------------------------------------------------------------------------------------
    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id (title, text, source, metadata), or None."""
        doc_id = validation.document_id(doc_id)
        return self.snapshot.document(doc_id) if self.snapshot is not None else None

    def refresh(self) -> bool:
        """Move to the newest committed version if another writer committed one; True if it moved."""
        if self.closed or not self.layout.exists():
            return False
        if self.snapshot is not None and self.layout.current() == self.snapshot.generation:
            return False
        old = self.snapshot
        self.snapshot = open_reader(self.layout, reuse=old)
        if old is not None:
            old.close()
        if self._encoder is not None and self._encoder.fingerprint != self.manifest.model["fingerprint"]:
            self._encoder = None  # re-encoded with another model (retriever tune): load it from the manifest
        return True

    def close(self) -> None:
        """Let go of the open version (writers may then remove its files); the object cannot search afterwards."""
        if self.snapshot is not None:
            self._template = self.snapshot.manifest
            self.snapshot.close()
            self.snapshot = None
        if self._encoder is not None and hasattr(self._encoder, "close"):
            self._encoder.close()  # stops encoding worker processes, if any
        self._closed = True

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", False)

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
                    "ram_bytes": snapshot.ram_bytes(), "ram_bytes_per_passage": snapshot.ram_bytes() / passages,
                    "flat_scans": snapshot.flat_scans()},
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


def _check_backend(recorded: dict[str, Any], backend: str | None, quantize: str | None, name: str) -> None:
    """Refuse to encode queries differently from the index's documents, naming both ways."""
    built = (recorded.get("backend", "torch"), recorded.get("quantize", "none"))
    backend = None if backend == AUTO else backend  # an existing index is searched the way it was built
    asked = (backend or built[0], quantize or (built[1] if backend in (None, built[0]) else "none"))
    if asked != built:
        raise ModelMismatchError(
            f"index {name} was encoded with {backend_label(*built)} ({recorded['name']}), not "
            f"{backend_label(*asked)}; search it with --backend {built[0]} --quantize {built[1]} or rebuild it"
        )


def _report_skips(report: IndexReport, strict: bool) -> None:
    """Refuse the run if it is strict and something would be skipped; otherwise warn once per kind."""
    error = report.strict_error() if strict else None
    if error is not None:
        raise error
    for line in report.warnings():
        warnings.warn(line, RetrieverWarning, stacklevel=4)


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
