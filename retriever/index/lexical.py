"""BM25 lexical search with bm25s's tokenizer and scoring: one index, or immutable segments.

bm25s is used rather than a hand-written BM25: it is fast (sparse matrices), well kept, and
its scores match Lucene's. ``LexicalIndex`` maps bm25s's row numbers to our own ids.

Stopwords are bm25s's 179-word English list rather than Lucene's 33 words: with the short
list, words such as "my" or "can" give spurious matches that hybrid fusion then promotes,
and on SciFact the longer list scores as well or better (test nDCG@10 0.689 vs 0.686).

Segments (``LexicalSegment``, ``LexicalSearcher``) keep BM25 exact under incremental writes:
a segment stores postings (per term, its rows and term frequencies) and row lengths, never
scores, and the searcher applies global statistics (row count, document frequencies, average
length, over the live rows of all segments) at query time, so scores equal those of a fresh
``bm25s.BM25()`` over the live passages after any adds, changes and deletes.

Why not tantivy (measured by ``benchmarks/lexical_segments.py``, results in
``benchmarks/results/lexical_segments.json``): tantivy is as fast at 1M passages (k=10 p50
6.4 ms vs 6.1 ms over 10 segments here) and smaller on disk, but it keeps document
frequencies per segment and counts deleted documents until a merge, so after deleting 10% of
SciFact its scores differed from a fresh index by up to 1.47 and 126 of 300 queries changed
their top 10; these segments differ by at most 6e-6 with no top-10 change. Exact scores after
any write were the requirement, so the postings stay ours and the scoring stays bm25s's.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from functools import cache, lru_cache
from itertools import chain
from pathlib import Path

import numpy as np

from retriever.errors import CorruptIndexError

IDS_FILE = "ids.json"

# bm25s.BM25()'s defaults (method "lucene"): idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
# term score = idf * tf / (tf + k1 * (1 - b + b * length / average length)); tests check they still agree.
K1 = 1.5
B = 0.75
TOKENIZE_BATCH = 50_000  # texts per bm25s.tokenize call when writing: bounds the Python objects alive at once

SEGMENT_META = "lexical.json"
VOCABULARY = "vocabulary.json"
INDPTR, ROWS, TERM_FREQUENCIES, LENGTHS = "indptr.npy", "rows.npy", "tf.npy", "lengths.npy"
SEGMENT_FORMAT = 1


_per_thread = threading.local()


def _stemmer():  # noqa: ANN202 - PyStemmer has no type hints
    """One English stemmer per thread: building one costs more than stemming a query, and a PyStemmer
    stemmer (which caches stems) must not be shared between threads."""
    stemmer = getattr(_per_thread, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _per_thread.stemmer = Stemmer.Stemmer("english")
    return stemmer


@cache
def _stopwords() -> tuple[str, ...]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return tuple(STOPWORDS_EN_PLUS)


TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's default token_pattern


def query_terms(query: str) -> set[str]:
    """The stemmed terms BM25 searches for in a query (stopwords and one-letter words left out).

    bm25s.tokenize's steps (lowercase, split, drop stopwords, stem) without its per-call set-up, which costs
    more than the work for one short query.
    """
    stopwords = _stopword_set()
    words = [word for word in TOKEN_PATTERN.findall(query.lower()) if word not in stopwords]
    return set(_stemmer().stemWords(words))


def term_spans(text: str) -> list[tuple[int, int, str]]:
    """Every word of ``text`` as BM25 sees it: (start, end, stem), stopwords left out.

    Words are found in the original text (not a lowercased copy, whose offsets can differ), then lowercased
    and stemmed one by one, so that spans point into ``text`` and stems equal those of ``query_terms``.
    """
    stopwords = _stopword_set()
    words = [(m.start(), m.end(), m.group().lower()) for m in TOKEN_PATTERN.finditer(text)]
    words = [w for w in words if w[2] not in stopwords]
    stems = _stemmer().stemWords([w[2] for w in words])
    return [(start, end, stem) for (start, end, _), stem in zip(words, stems)]


def matching_spans(text: str, terms: set[str] | frozenset[str]) -> list[tuple[int, int, str]]:
    """The words of ``text`` whose stems are among ``terms``: (start, end, stem), in text order.

    The same words as filtering ``term_spans``, several times faster: only words that begin like a term are
    found (``str.find`` on the lowercased text) and stemmed. An English stem keeps the start of its word up to
    its last letters (sky/skies, die/dying, possibl/possibility), so a word whose stem is a term begins with the
    term less its last three letters (at least two letters); Snowball's exceptions dying/lying/tying are listed.
    """
    if not terms:
        return []
    lower = text.lower()
    if len(lower) != len(text):  # a letter whose lowercase is longer (İ): offsets would differ
        return [span for span in term_spans(text) if span[2] in terms]
    candidates: dict[int, int] = {}
    for prefix in _word_prefixes(frozenset(terms)):
        at = lower.find(prefix)
        while at >= 0:
            if at == 0 or not _is_word_char(lower[at - 1]):
                candidates[at] = _WORD_REST.match(lower, at + len(prefix)).end()
            at = lower.find(prefix, at + 1)
    stopwords = _stopword_set()
    words = [(start, end, lower[start:end]) for start, end in sorted(candidates.items())]
    words = [w for w in words if w[1] - w[0] >= 2 and w[2] not in stopwords and TOKEN_PATTERN.fullmatch(w[2])]
    stems = _stemmer().stemWords([w[2] for w in words])
    return [(start, end, stem) for (start, end, _), stem in zip(words, stems) if stem in terms]


_IRREGULAR = {"die": "dy", "lie": "ly", "tie": "ty"}  # Snowball English: dying -> die, lying -> lie, tying -> tie
_WORD_REST = re.compile(r"\w*")  # \w is exactly str.isalnum() or "_", TOKEN_PATTERN's word characters


@lru_cache(maxsize=1024)
def _word_prefixes(terms: frozenset[str]) -> tuple[str, ...]:
    """What a word whose stem is one of ``terms`` begins with (see ``matching_spans``): once per query."""
    prefixes = {term[: max(2, len(term) - 3)] for term in terms} | {_IRREGULAR[t] for t in terms if t in _IRREGULAR}
    return tuple(sorted(prefixes))


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@cache
def _stopword_set() -> frozenset[str]:
    return frozenset(_stopwords())


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's tokenization: lowercase, words of 2+ characters, stopwords removed, English stems."""
    import bm25s

    return bm25s.tokenize(
        list(texts), stopwords=list(_stopwords()), stemmer=_stemmer(), return_ids=False, show_progress=False
    )


class LexicalIndex:
    """A BM25 index over texts identified by arbitrary ids (document ids or passage ids)."""

    def __init__(self) -> None:
        self.ids: list = []
        self.model = None

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Sequence, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        self.ids = list(ids)
        self.model = bm25s.BM25()
        if self.ids:
            self.model.index(tokenize(texts), show_progress=False)
        return self

    def retrieve(
        self, queries: Sequence[str], k: int = 10, allowed_ids: np.ndarray | None = None, keep_zero: bool = False
    ) -> list[list[tuple[object, float]]]:
        """Top-k (id, score) per query, best first; texts with score 0 are left out unless ``keep_zero``.

        ``allowed_ids`` restricts the search itself (a weight mask), so k results come back
        whenever k allowed texts match.
        """
        if not self.ids:
            return [[] for _ in queries]
        k = min(k, len(self.ids))
        mask = None
        if allowed_ids is not None:
            mask = np.isin(np.asarray(self.ids), allowed_ids).astype(np.float32)
        rows, scores = self.model.retrieve(
            tokenize(queries), k=k, show_progress=False, n_threads=1, weight_mask=mask
        )
        out = []
        for row_ids, row_scores in zip(rows, scores):
            out.append([(self.ids[int(r)], float(s)) for r, s in zip(row_ids, row_scores) if keep_zero or s > 0])
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / IDS_FILE).write_text(json.dumps(self.ids))
        if self.ids:
            self.model.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import bm25s

        index = cls()
        index.ids = json.loads((directory / IDS_FILE).read_text())
        if index.ids:
            index.model = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return index


# segments ------------------------------------------------------------------------------------
def _tokenize_to_ids(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(terms by id, every token's term id in text order, token count per text), in bounded batches."""
    import bm25s

    vocabulary: dict[str, int] = {}
    flat: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for start in range(0, len(texts), TOKENIZE_BATCH):
        batch = bm25s.tokenize(
            list(texts[start:start + TOKENIZE_BATCH]), stopwords=list(_stopwords()), stemmer=_stemmer(),
            return_ids=True, show_progress=False,
        )
        local_terms = sorted(batch.vocab, key=batch.vocab.__getitem__)
        to_global = np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in local_terms), np.int32,
                                count=len(local_terms))
        counts = np.fromiter(map(len, batch.ids), np.int32, count=len(batch.ids))
        tokens = np.fromiter(chain.from_iterable(batch.ids), np.int32, count=int(counts.sum()))
        flat.append(to_global[tokens])
        lengths.append(counts)
    terms = list(vocabulary)
    tokens = np.concatenate(flat) if flat else np.zeros(0, np.int32)
    return terms, tokens, np.concatenate(lengths) if lengths else np.zeros(0, np.int32)


def _postings(term_of: np.ndarray, row_of: np.ndarray, vocabulary_size: int) -> tuple[np.ndarray, ...]:
    """Postings grouped by term, rows ascending, from one (term, row) pair per token or posting.

    ``row_of`` must be ascending: a stable sort by term then keeps rows in order, and repeated
    (term, row) pairs, being adjacent, collapse into one posting with their count.
    """
    indptr = np.zeros(vocabulary_size + 1, np.int64)
    if not len(term_of):
        return indptr, np.zeros(0, np.int32), np.zeros(0, np.uint8)
    order = np.argsort(term_of, kind="stable")
    terms, rows = term_of[order], row_of[order]
    starts = np.flatnonzero(np.r_[True, (terms[1:] != terms[:-1]) | (rows[1:] != rows[:-1])])
    tf = np.diff(np.r_[starts, len(terms)])
    np.cumsum(np.bincount(terms[starts], minlength=vocabulary_size), out=indptr[1:])
    return indptr, rows[starts].astype(np.int32), tf


def _save_segment(folder: Path, terms: list[str], indptr: np.ndarray, rows: np.ndarray, tf: np.ndarray,
                  lengths: np.ndarray) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    tf = tf.astype(np.min_scalar_type(int(tf.max(initial=1))))
    for name, array in ((INDPTR, indptr), (ROWS, rows), (TERM_FREQUENCIES, tf), (LENGTHS, lengths.astype(np.int32))):
        np.save(folder / name, array)
    (folder / VOCABULARY).write_text(json.dumps(terms, ensure_ascii=False))
    meta = {"format": SEGMENT_FORMAT, "rows": len(lengths), "terms": len(terms), "postings": len(rows),
            "total_length": int(lengths.sum())}
    (folder / SEGMENT_META).write_text(json.dumps(meta))
    return {**meta, "bytes": sum(f.stat().st_size for f in folder.iterdir())}


def _sorted_vocabulary(terms: list[str]) -> tuple[list[str], np.ndarray]:
    """Terms in sorted order (deterministic files) and each old term id's new id."""
    order = sorted(range(len(terms)), key=terms.__getitem__)
    new_id = np.empty(len(terms), np.int32)
    new_id[order] = np.arange(len(terms), dtype=np.int32)
    return [terms[i] for i in order], new_id


class LexicalSegment:
    """BM25 postings of one immutable segment: per term the rows that contain it and their term frequencies,
    plus each row's length, tokenized exactly as bm25s tokenizes (English stemmer, bm25s's 179 stopwords).

    Files: ``indptr.npy`` (term t's postings are ``[indptr[t], indptr[t+1])``), ``rows.npy``, ``tf.npy``,
    ``lengths.npy`` (tokens per row), ``vocabulary.json`` (sorted terms; a term's id is its position) and
    ``lexical.json`` (counts). Scores are not stored: they depend on statistics of the whole index.
    """

    def __init__(self, folder: Path, meta: dict, vocabulary: dict[str, int], indptr: np.ndarray,
                 rows: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> None:
        self.folder = folder
        self.meta = meta
        self.vocabulary = vocabulary
        self.indptr, self.rows, self.tf, self.lengths = indptr, rows, tf, lengths
        self.total_length = int(meta["total_length"])

    def __len__(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        return f"LexicalSegment({str(self.folder)!r}, rows={len(self)}, terms={len(self.vocabulary)})"

    @staticmethod
    def write(folder: Path, texts: Sequence[str]) -> dict:
        """Tokenize ``texts`` (row i is texts[i]) and save their postings in ``folder``; returns the counts."""
        terms, tokens, lengths = _tokenize_to_ids(texts)
        terms, new_id = _sorted_vocabulary(terms)
        rows_of_tokens = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
        indptr, rows, tf = _postings(new_id[tokens], rows_of_tokens, len(terms))
        return _save_segment(Path(folder), terms, indptr, rows, tf, lengths)

    @staticmethod
    def merge(folder: Path, parts: Sequence[tuple[LexicalSegment, np.ndarray | None]]) -> dict:
        """Write one segment of the live rows of ``parts``, in order, from their postings (no re-tokenizing).

        Row r of the result is the r-th live row counting through the parts in the order given,
        the same order in which a merge would copy vectors and metadata.
        """
        terms = sorted(set().union(*(segment.vocabulary for segment, _ in parts)))
        term_id = {term: i for i, term in enumerate(terms)}
        term_of, row_of, tf_of, lengths = [], [], [], []
        offset = 0
        for segment, live in parts:
            keep = np.ones(len(segment), bool) if live is None else np.asarray(live, bool)
            new_row = np.cumsum(keep, dtype=np.int64) - 1 + offset
            old_terms = sorted(segment.vocabulary, key=segment.vocabulary.__getitem__)
            to_new = np.fromiter((term_id[t] for t in old_terms), np.int32, count=len(old_terms))
            rows = np.asarray(segment.rows)
            live_postings = keep[rows]
            term_of.append(np.repeat(to_new, np.diff(segment.indptr))[live_postings])
            row_of.append(new_row[rows[live_postings]])
            tf_of.append(np.asarray(segment.tf)[live_postings])
            lengths.append(np.asarray(segment.lengths)[keep])
            offset += int(keep.sum())
        all_terms = np.concatenate(term_of) if term_of else np.zeros(0, np.int32)
        all_rows = np.concatenate(row_of) if row_of else np.zeros(0, np.int64)
        all_tf = np.concatenate(tf_of) if tf_of else np.zeros(0, np.uint8)
        # Parts' postings are already grouped by term, rows ascending: ordering by (term, new row) is one stable
        # sort of the segment-major concatenation by term, since new rows grow with the part index.
        order = np.argsort(all_terms, kind="stable")
        in_use = np.zeros(len(terms), bool)
        in_use[all_terms] = True  # terms found only in deleted rows are dropped
        kept_terms = [t for t, used in zip(terms, in_use) if used]
        renumber = np.cumsum(in_use, dtype=np.int64) - 1
        indptr = np.zeros(len(kept_terms) + 1, np.int64)
        np.cumsum(np.bincount(renumber[all_terms], minlength=len(kept_terms)), out=indptr[1:])
        merged_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
        return _save_segment(Path(folder), kept_terms, indptr, all_rows[order].astype(np.int32), all_tf[order],
                             merged_lengths)

    @classmethod
    def open(cls, folder: Path) -> LexicalSegment:
        """Memory-map a written segment; only the vocabulary is parsed, nothing is recomputed."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / SEGMENT_META).read_text())
            if meta.get("format") != SEGMENT_FORMAT:
                raise CorruptIndexError(f"BM25 segment {folder} has format {meta.get('format')}, expected "
                                        f"{SEGMENT_FORMAT}; rebuild the index with 'retriever index'")
            terms = json.loads((folder / VOCABULARY).read_text())
            arrays = [np.load(folder / name, mmap_mode="r") for name in (INDPTR, ROWS, TERM_FREQUENCIES, LENGTHS)]
        except (OSError, ValueError) as error:
            raise CorruptIndexError(f"BM25 segment {folder} is unreadable ({error}); rebuild the index") from error
        indptr, rows, tf, lengths = (array.view(np.ndarray) for array in arrays)  # slicing a memmap is slow
        if len(indptr) != len(terms) + 1 or len(rows) != len(tf) or len(lengths) != meta["rows"]:
            raise CorruptIndexError(f"BM25 segment {folder} has inconsistent files; rebuild the index")
        return cls(folder, meta, {t: i for i, t in enumerate(terms)}, indptr, rows, tf, lengths)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows containing ``term`` (ascending) and its frequency in each; empty if the term is absent."""
        i = self.vocabulary.get(term)
        if i is None:
            return self.rows[:0], self.tf[:0]
        start, end = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.rows[start:end], self.tf[start:end]


Hit = tuple[int, int, float]  # (segment index, row, score)


class LexicalSearcher:
    """BM25 over several segments with global statistics (live rows only).

    A searcher is a snapshot: the segments and live masks it is given must not change while it
    is used (build a new searcher after a commit). Document frequencies are counted on first use
    of a term and cached.
    """

    def __init__(self, segments: Sequence[tuple[LexicalSegment, np.ndarray | None]]) -> None:
        self.segments = [segment for segment, _ in segments]
        self.live: list[np.ndarray | None] = []
        total_length = 0
        self.rows = 0
        for segment, live in segments:
            if live is not None:
                live = np.asarray(live, dtype=bool)
                if live.shape != (len(segment),):
                    raise ValueError(f"live mask of {segment!r} has shape {live.shape}, expected ({len(segment)},)")
                if live.all():
                    live = None
            self.live.append(live)
            if live is None:
                self.rows += len(segment)
                total_length += segment.total_length
            else:
                self.rows += int(np.count_nonzero(live))
                total_length += int(np.asarray(segment.lengths)[live].sum(dtype=np.int64))
        self.average_length = total_length / self.rows if self.rows else 0.0
        self._document_frequency: dict[str, int] = {}
        self._norms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.rows

    def document_frequency(self, term: str) -> int:
        """Live rows, over all segments, that contain ``term``."""
        df = self._document_frequency.get(term)
        if df is None:
            df = 0
            for segment, live in zip(self.segments, self.live):
                rows, _ = segment.postings(term)
                df += len(rows) if live is None else int(np.count_nonzero(live[rows]))
            self._document_frequency[term] = df
        return df

    def idf(self, term: str) -> float:
        """bm25s's (Lucene's) idf from global statistics; 0 for a term no live row contains."""
        df = self.document_frequency(term)
        return math.log(1 + (self.rows - df + 0.5) / (df + 0.5)) if df else 0.0

    def search(self, queries: Sequence[str], k: int, allowed: Sequence[np.ndarray | None] | None = None
               ) -> list[list[Hit]]:
        """Per query, the best ``k`` (segment index, row, score), best first; rows scoring 0 are left out.

        ``allowed`` (one bool mask per segment or None, combined with the live mask) restricts the
        search itself, so k results come back whenever k allowed rows match. A query term counts as
        often as it occurs in the query, and terms absent from every live row score nothing, as in bm25s.
        """
        if allowed is not None and len(allowed) != len(self.segments):
            raise ValueError(f"allowed has {len(allowed)} masks for {len(self.segments)} segments")
        masks = [self._searchable(i, None if allowed is None else allowed[i]) for i in range(len(self.segments))]
        results = []
        for tokens in tokenize(queries):
            weights = {term: count * self.idf(term) for term, count in Counter(tokens).items()}
            weights = {term: w for term, w in weights.items() if w > 0}
            hits: list[Hit] = []
            if weights and k > 0:
                for i, (segment, mask) in enumerate(zip(self.segments, masks)):
                    if mask is not False:
                        hits += self._search_segment(i, segment, mask, weights, k)
            hits.sort(key=lambda hit: (-hit[2], hit[0], hit[1]))
            results.append(hits[:k])
        return results

    def _searchable(self, i: int, allowed: np.ndarray | None) -> np.ndarray | None | bool:
        """Rows of segment i that may be returned: a bool mask, None for all, or False for none."""
        live = self.live[i]
        if allowed is None:
            mask = live
        else:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (len(self.segments[i]),):
                raise ValueError(f"allowed mask {i} has shape {allowed.shape}, expected ({len(self.segments[i])},)")
            mask = allowed if live is None else live & allowed
        if mask is not None and not mask.any():
            return False
        return mask

    def _length_norms(self, index: int) -> np.ndarray:
        """k1 * (1 - b + b * length / average length) of every row of segment ``index``, computed on first use."""
        norms = self._norms.get(index)
        if norms is None:
            lengths = self.segments[index].lengths
            norms = lengths.astype(np.float32) * np.float32(K1 * B / self.average_length) + np.float32(K1 * (1 - B))
            self._norms[index] = norms
        return norms

    def _search_segment(self, index: int, segment: LexicalSegment, mask: np.ndarray | None,
                        weights: dict[str, float], k: int) -> list[Hit]:
        found = [(i, w) for i, w in ((segment.vocabulary.get(t), w) for t, w in weights.items()) if i is not None]
        if not found:
            return []
        term_ids = np.fromiter((i for i, _ in found), np.int64, count=len(found))
        starts, ends = segment.indptr[term_ids].tolist(), segment.indptr[term_ids + 1].tolist()
        # all query terms' postings at once, so that each step below is one numpy call per segment
        rows = np.concatenate([segment.rows[s:e] for s, e in zip(starts, ends)])
        tf = np.concatenate([segment.tf[s:e] for s, e in zip(starts, ends)]).astype(np.float32)
        weight = np.repeat(np.array([w for _, w in found], np.float32), np.subtract(ends, starts))
        # BM25 (Lucene variant, as bm25s): idf * tf / (tf + k1 * (1 - b + b * length / average length))
        contribution = weight * tf / (tf + self._length_norms(index)[rows])
        # one pass sums every term's contribution per row (float64 sums, then float32 as before)
        scores = np.bincount(rows, weights=contribution, minlength=len(segment)).astype(np.float32)
        if len(rows) >= len(segment):
            # Common terms: more postings than rows, so the best k are chosen among the rows themselves, not
            # among the postings (72,000 postings a query on a 50,000-row segment of the scale benchmark: the
            # lexical side went from 4.6 to 3.6 ms; with few postings this would cost more, hence the rule).
            if mask is not None:
                scores[~mask] = 0  # deleted or filtered out: scored (cheaper than removing), never returned
            # every row scoring at least the k-th best, so rows tied at the k-th place are all candidates and the
            # lowest rows win, as on the path below (argpartition alone would pick among the ties arbitrarily)
            kth = np.partition(scores, len(scores) - k)[len(scores) - k] if k < len(scores) else 0.0
            rows = np.flatnonzero((scores >= kth) & (scores > 0))
            values = scores[rows]
            order = np.lexsort((rows, -values))[:k]
            return [(index, int(r), float(v)) for r, v in zip(rows[order], values[order])]
        values = scores[rows]
        if mask is not None:
            values[~mask[rows]] = 0  # deleted or filtered out: scored (cheaper than removing), never returned
        # A row occurs once per matching term, so the best k * terms entries hold every copy of the best k rows.
        depth = k * len(found)
        if depth < len(rows):
            best = np.argpartition(values, len(values) - depth)[len(values) - depth:]
            rows, values = rows[best], values[best]
        rows, first = np.unique(rows, return_index=True)
        values = values[first]
        order = np.lexsort((rows, -values))[:k]
        return [(index, int(r), float(v)) for r, v in zip(rows[order], values[order]) if v > 0]
