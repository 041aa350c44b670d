"""What matched, for a reader and for a citation: ``Hit.highlights`` and ``Hit.snippet``.

Highlights are the character spans, in ``Hit.text``, of the words whose stems are the query's BM25 terms
(the lexical index's own tokenizer and stemmer, ``retriever.index.lexical``), so "sleeping cats" marks
"Cats" and "sleep". The snippet is the passage's best-matching sentence (most distinct query terms, then
most matches, then earliest), followed or preceded by a second sentence when that one matches terms the
first does not; with no word in common (a dense match by meaning) it is the passage's first sentence.
Both cost a regular expression and a stemmer call per hit (~1.2 ms for ten SciFact abstracts), paid when a caller
first reads them (``annotate``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from functools import partial

from retriever.index.lexical import matching_spans, query_terms
from retriever.search.results import Hit

# After . ! ? (and closing quotes), or a line break: r"[.!?][\"')\]]*(\s+)|\n\s*" written to begin with one character
# class, so that the regular expression engine skips to the next . ! ? or line break instead of trying every position.
SENTENCE_END = re.compile(r"[.!?\n](?:(?<=[.!?])[\"')\]]*(\s+)|(?<=\n)\s*)")
SNIPPET_CHARS = 300  # a longer sentence is cut around its first match
GAP = " … "

Span = tuple[int, int]


def sentence_spans(text: str) -> list[Span]:
    """Sentences of a text as (start, end) character spans, surrounding whitespace left out."""
    out, start = [], 0
    for boundary in SENTENCE_END.finditer(text):
        end = boundary.start(1) if boundary.start(1) >= 0 else boundary.start()
        _add_trimmed(out, text, start, end)
        start = boundary.end()
    _add_trimmed(out, text, start, len(text))
    return out


def _add_trimmed(out: list[Span], text: str, begin: int, end: int) -> None:
    """Append ``text[begin:end]`` less its surrounding whitespace, unless nothing is left."""
    if end > begin and not text[begin].isspace() and not text[end - 1].isspace():
        out.append((begin, end))  # the usual case: no piece of text copied to find that out
        return
    piece = text[begin:end]
    if piece and not piece.isspace():
        out.append((begin + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))))


def matches(text: str, terms: set[str] | frozenset[str]) -> list[tuple[int, int, str]]:
    """(start, end, stem) of every word of ``text`` that is one of the query's terms."""
    return matching_spans(text, terms)


def snippet(text: str, found: list[tuple[int, int, str]]) -> str:
    """The best-matching sentence(s) of a passage, given its matched words (in text order)."""
    sentences = sentence_spans(text)
    if not sentences:
        return ""
    stems_in: list[set[str]] = [set() for _ in sentences]
    counts = [0] * len(sentences)
    starts = [begin for begin, _ in sentences]
    for start, _, stem in found:  # each matched word to the sentence it starts in, if any
        i = bisect_right(starts, start) - 1
        if i >= 0 and start < sentences[i][1]:
            stems_in[i].add(stem)
            counts[i] += 1
    best = max(range(len(sentences)), key=lambda i: (len(stems_in[i]), counts[i], -i))
    chosen = [best]
    more = [i for i in range(len(sentences)) if stems_in[i] - stems_in[best]]
    if more:
        chosen.append(max(more, key=lambda i: (len(stems_in[i] - stems_in[best]), counts[i], -i)))
    pieces = [_cut(text, sentences[i], found) for i in sorted(chosen)]
    if len(chosen) == 2 and abs(chosen[0] - chosen[1]) == 1:
        return " ".join(pieces)
    return GAP.join(pieces)


def _cut(text: str, span: Span, found: list[tuple[int, int, str]]) -> str:
    """One sentence, flattened; a long one is cut to ``SNIPPET_CHARS`` around its first matched word."""
    begin, end = span
    if end - begin > SNIPPET_CHARS:
        first = next((start for start, _, _ in found if begin <= start < end), begin)
        left = max(begin, min(first - SNIPPET_CHARS // 3, end - SNIPPET_CHARS))
        begin, end, prefix, suffix = left, left + SNIPPET_CHARS, "…" if left > span[0] else "", "…"
        if end >= span[1]:
            end, suffix = span[1], ""
        return prefix + " ".join(text[begin:end].split()) + suffix
    return " ".join(text[begin:end].split())


def annotate(hits: list[Hit], query: str, passages: list[str] | None = None) -> list[Hit]:
    """Have each hit fill its ``highlights`` (spans in ``hit.text``) and ``snippet`` (from its matched passage) when
    one of them is first read (``Hit.mark_on_read``): a caller that reads only the text does not pay for them.

    ``passages``: the matched passage of each hit when ``hit.text`` is wider (context expansion); the snippet
    comes from the passage itself, the highlights cover the whole text.
    """
    terms = frozenset(query_terms(query))  # hashed once: its regular expression is looked up per hit
    for position, hit in enumerate(hits):
        passage = passages[position] if passages is not None else None
        hit.mark_on_read(partial(mark, terms=terms, passage=passage))
    return hits


def mark(hit: Hit, terms: frozenset[str], passage: str | None = None) -> None:
    """Set ``hit.highlights`` and ``hit.snippet`` for the query ``terms`` (``passage``: see ``annotate``)."""
    found = matches(hit.text, terms)
    hit.highlights = [{"start": start, "end": end} for start, end, _ in found]
    if passage is None or passage == hit.text:
        hit.snippet = snippet(hit.text, found)
    else:
        hit.snippet = snippet(passage, matches(passage, terms))
