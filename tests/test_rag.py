"""Retrieval for RAG (issue 21): diversity (MMR), highlights and snippets, context expansion, context_for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retriever.errors import RetrieverError
from retriever.search.diversity import default_fetch_k, mmr_order, rescaled

# two exact copies (cats, cats-copy), one near-copy in other words and three distinct documents
RAG_RECORDS = [
    {"_id": "cats", "title": "Cats", "text": "cats sleep in the sun all day. cats hunt at night."},
    {"_id": "cats-copy", "title": "Cats", "text": "cats sleep in the sun all day. cats hunt at night."},
    {"_id": "dogs", "title": "Dogs", "text": "dogs love a walk in the garden. a dog can sleep in the sun too."},
    {"_id": "coffee", "title": "Coffee", "text": "grind the coffee before you brew the tea. water for tea."},
    {"_id": "trains", "title": "Trains", "text": "the train to the coast leaves at nine."},
    {"_id": "river", "title": "River", "text": "the river runs to the sea. boats sail on the river. fish swim "
     "under the boats. birds fly over the sea. the moon rises at night. stars shine over the water. owls call "
     "from the trees. the morning comes early."},
]


@pytest.fixture(scope="module")
def rag_index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny index of RAG_RECORDS in 16-token passages, opened once for the module.

    Its encoder is the bag-of-words ``SyntheticEncoder`` (real tokenizer): texts with other words get distant
    vectors, copies the same, as with a trained model and unlike the random tiny BERT, whose vectors all lie
    within a few degrees of each other.
    """
    from retriever import Retriever
    from retriever.encoding.synthetic import SyntheticEncoder

    folder = tmp_path_factory.mktemp("rag") / "idx"
    encoder = SyntheticEncoder(dimension=64, max_seq_length=128)
    Retriever.build(RAG_RECORDS, index_dir=folder, encoder=encoder, chunk_tokens=16, overlap=4).close()
    retriever = Retriever.load(folder, encoder=encoder)
    yield retriever
    retriever.close()


# diversity -------------------------------------------------------------------------------------------------
def test_mmr_picks_the_novel_candidate_over_a_copy_of_the_first() -> None:
    vectors = np.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    relevance = np.asarray([1.0, 0.95, 0.5], dtype=np.float32)
    assert mmr_order(relevance, vectors, 2, 1.0) == [0, 1]  # lambda 1: the plain ranking
    assert mmr_order(relevance, vectors, 2, 0.5) == [0, 2]  # the copy gains 0.475 - 0.5, the other 0.25 - 0
    assert mmr_order(relevance, vectors, 5, 0.5) == [0, 2, 1]  # never more than the candidates


def test_relevance_is_on_the_cosine_scale() -> None:
    assert rescaled(np.asarray([8.0, 4.0, 2.0])).tolist() == [1.0, 0.5, 0.25]  # BM25: proportions kept
    assert rescaled(np.asarray([0.5, -0.5])).tolist() == [1.0, 0.0]  # negatives: min-max
    assert rescaled(np.asarray([0.0, 0.0])).tolist() == [1.0, 1.0]


def test_default_candidate_depth() -> None:
    assert default_fetch_k(1) == 20
    assert default_fetch_k(10) == 40


def test_diversity_drops_the_copy_of_the_best_document(rag_index: Any) -> None:
    plain = rag_index.search("cats sleep", k=2, mode="lexical")
    assert {hit.doc_id for hit in plain} == {"cats", "cats-copy"}
    diverse = rag_index.search("cats sleep", k=2, mode="lexical", diversity=0.5)
    assert diverse[0].doc_id == plain[0].doc_id
    assert diverse[1].doc_id == "dogs"
    assert diverse[0].score == pytest.approx(plain[0].score)  # a hit keeps its relevance score


def test_diversity_one_is_the_plain_ranking(rag_index: Any) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        plain = [hit.doc_id for hit in rag_index.search("cats sleep in the sun", k=4, mode=mode)]
        same = [hit.doc_id for hit in rag_index.search("cats sleep in the sun", k=4, mode=mode, diversity=1.0)]
        assert same == plain


def test_diversity_over_passages_and_one_result_per_document(rag_index: Any) -> None:
    hits = rag_index.search("sun", k=3, diversity=0.3, fetch_k=5)
    assert len({hit.doc_id for hit in hits}) == len(hits) == 3
    passages = rag_index.search("sun", k=3, passages=True, diversity=0.3)
    assert len(passages) == 3


@pytest.mark.parametrize("options, message", [
    ({"diversity": 1.5}, "diversity must be between 0"),
    ({"diversity": "high"}, "diversity must be a number"),
    ({"diversity": 0.5, "fetch_k": 0}, "fetch_k must be at least 1, not 0"),
])
def test_bad_diversity_is_one_clear_error(rag_index: Any, options: dict, message: str) -> None:
    with pytest.raises(RetrieverError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rag_index.search("cats", k=2, **options)


def test_a_fetch_k_below_k_chooses_among_the_k_best(rag_index: Any) -> None:
    expected = rag_index.search("cats sun garden", k=3, passages=True, diversity=0.5, fetch_k=3)
    assert rag_index.search("cats sun garden", k=3, passages=True, diversity=0.5, fetch_k=1) == expected


def test_cli_diversity(rag_index: Any) -> None:
    import json

    from click.testing import CliRunner

    from retriever.cli import main

    folder = str(Path(rag_index.layout.root))
    args = ["search", "cats sleep", "--index", folder, "-k", "2", "--mode", "lexical", "--json"]
    plain = CliRunner().invoke(main, args)
    diverse = CliRunner().invoke(main, [*args, "--diversity", "0.5", "--fetch-k", "5"])
    assert plain.exit_code == 0 and diverse.exit_code == 0, plain.output + diverse.output
    plain_ids = [json.loads(line)["doc_id"] for line in plain.output.splitlines()]
    diverse_ids = [json.loads(line)["doc_id"] for line in diverse.output.splitlines()]
    assert set(plain_ids) == {"cats", "cats-copy"}
    assert diverse_ids[1] not in {"cats", "cats-copy"}


# highlights and snippets -------------------------------------------------------------------------------------
def test_highlights_mark_the_query_terms_as_bm25_stems_them() -> None:
    from retriever.search.highlights import annotate
    from retriever.search.results import Hit

    text = "The Cats were sleeping; CATS sleep. Nothing here. A dog barks."
    hit = annotate([Hit("d", 1.0, text)], "sleeping cats and the dogs")[0]
    marked = [text[span["start"]:span["end"]] for span in hit.highlights]
    assert marked == ["Cats", "sleeping", "CATS", "sleep", "dog"]  # "the", "and": stopwords, never marked
    assert hit.snippet == "The Cats were sleeping; CATS sleep. … A dog barks."  # the best sentence, then new terms
    assert annotate([Hit("d", 1.0, text)], "cats")[0].snippet == "The Cats were sleeping; CATS sleep."


def test_snippet_is_the_best_sentence_or_the_first_when_nothing_matches() -> None:
    from retriever.search.highlights import annotate, sentence_spans
    from retriever.search.results import Hit

    text = "Tea is grown on hills.\nCoffee is roasted, then ground.  Water boils at 100 degrees."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Tea is grown on hills.", "Coffee is roasted, then ground.", "Water boils at 100 degrees."]
    assert annotate([Hit("d", 1.0, text)], "grinding coffee")[0].snippet == "Coffee is roasted, then ground."
    unmatched = annotate([Hit("d", 1.0, text)], "espresso")[0]
    assert unmatched.highlights == [] and unmatched.snippet == "Tea is grown on hills."
    long = "word " * 200 + "coffee " + "word " * 200
    cut = annotate([Hit("d", 1.0, long)], "coffee")[0].snippet
    assert "coffee" in cut and cut.startswith("…") and cut.endswith("…") and len(cut) <= 302


def test_every_hit_carries_highlights_and_snippet(rag_index: Any) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        hits = rag_index.search("sleeping cats", k=3, mode=mode)
        assert hits
        for hit in hits:
            assert hit.snippet
            assert all(piece in " ".join(hit.text.split()) for piece in hit.snippet.split(" … "))
            for span in hit.highlights:
                assert hit.text[span["start"]:span["end"]].lower() in {"cats", "sleep"}
        assert hits[0].highlights and hits[0].to_dict()["highlights"] == hits[0].highlights


def test_highlights_are_marked_when_first_read_and_only_for_hits_read(rag_index: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A RAG pipeline that reads only the text pays nothing for highlights (~1.2 ms of a SciFact search)."""
    import pickle

    from retriever.search import highlights

    eager = [(hit.snippet, hit.highlights) for hit in rag_index.search("sleeping cats", k=3, mode="hybrid")]
    marked: list[str] = []
    real = highlights.matches
    monkeypatch.setattr(highlights, "matches", lambda text, terms: marked.append(text) or real(text, terms))
    hits = rag_index.search("sleeping cats", k=3, mode="hybrid")
    assert [hit.text for hit in hits] and marked == []
    assert (hits[1].snippet, hits[1].highlights) == eager[1] and marked == [hits[1].text]  # that hit, once
    copy = pickle.loads(pickle.dumps(hits[2]))  # a hit sent to another process is marked there alike
    assert [(hit.snippet, hit.highlights) for hit in (hits[0], hits[1], hits[2], copy)] == [*eager, eager[2]]
    hits[0].snippet = "set by a caller"
    assert hits[0].to_dict()["snippet"] == "set by a caller" and hits[0].to_dict()["highlights"] == eager[0][1]


def test_cli_marks_matches_in_bold_on_a_terminal_only(rag_index: Any) -> None:
    from click.testing import CliRunner

    from retriever.cli import main

    args = ["search", "sleeping cats", "--index", str(rag_index.layout.root), "-k", "1", "--mode", "lexical"]
    plain = CliRunner().invoke(main, args)
    terminal = CliRunner().invoke(main, args, color=True)
    assert plain.exit_code == 0 and "\x1b[" not in plain.output
    assert "cats sleep in the sun" in plain.output
    assert "\x1b[1mcats\x1b[0m \x1b[1msleep\x1b[0m" in terminal.output


# context expansion -------------------------------------------------------------------------------------------
def river_passages(rag_index: Any) -> list[Any]:
    keys = rag_index.snapshot.passage_keys("river")
    return sorted(rag_index.snapshot.hydrate(keys).values(), key=lambda p: p.ordinal)


def test_context_widens_a_passage_to_its_neighbours_without_repeating_text(rag_index: Any) -> None:
    document = rag_index.get("river").text
    passages = river_passages(rag_index)
    assert len(passages) >= 5  # the fixture's 16-token passages
    plain = rag_index.search("moon rises", k=1, mode="lexical", passages=True)[0]
    at = next(p.ordinal for p in passages if (p.start, p.end) == (plain.start, plain.end))
    assert 1 <= at < len(passages) - 1  # neighbours on both sides
    for n in (0, 1, 2):
        hit = rag_index.search("moon rises", k=1, mode="lexical", passages=True, context=n)[0]
        window = passages[max(0, at - n): at + n + 1]
        assert (hit.start, hit.end) == (window[0].start, window[-1].end)
        assert hit.text == document[hit.start:hit.end]  # one span of the document: overlaps not repeated
        assert [hit.text[s["start"]:s["end"]] for s in hit.highlights] == ["moon", "rises"]
        assert hit.snippet == plain.snippet  # the snippet stays the matched passage's
    whole = rag_index.search("moon rises", k=1, mode="lexical", context=100)[0]
    assert (whole.start, whole.end, whole.text) == (0, len(document), document)


def test_context_document_within_the_token_budget(rag_index: Any) -> None:
    document = rag_index.get("river").text
    count = rag_index._count_tokens
    whole = rag_index.search("moon rises", k=1, mode="lexical", context="document")[0]
    assert (whole.start, whole.end, whole.text) == (0, len(document), document)
    budget = count(document) - 10  # the document does not fit: the passage and as many neighbours as fit
    part = rag_index.search("moon rises", k=1, mode="lexical", context="document", context_tokens=budget)[0]
    passages = river_passages(rag_index)
    assert 0 < part.end - part.start < len(document) and count(part.text) <= budget
    assert sum(p.start >= part.start and p.end <= part.end for p in passages) >= 3
    tiny = rag_index.search("moon rises", k=1, mode="lexical", passages=True, context="document", context_tokens=1)
    plain = rag_index.search("moon rises", k=1, mode="lexical", passages=True)
    assert (tiny[0].start, tiny[0].end) == (plain[0].start, plain[0].end)  # never less than the passage


@pytest.mark.parametrize("context", [-1, "page", 1.5, True])
def test_bad_context_is_one_clear_error(rag_index: Any, context: Any) -> None:
    with pytest.raises(RetrieverError, match="context must be"):
        rag_index.search("moon", k=1, context=context)


def test_cli_context(rag_index: Any) -> None:
    import json

    from click.testing import CliRunner

    from retriever.cli import main

    args = ["search", "moon rises", "--index", str(rag_index.layout.root), "-k", "1", "--mode", "lexical", "--json"]
    hit = json.loads(CliRunner().invoke(main, [*args, "--context", "1"]).output)
    here = rag_index.search("moon rises", k=1, mode="lexical", context=1)[0]
    assert hit == here.to_dict()
    bad = CliRunner().invoke(main, [*args, "--context", "page"])
    assert bad.exit_code != 0 and "neither a number of passages nor 'document'" in bad.output


# over the server ---------------------------------------------------------------------------------------------
def test_server_and_client_carry_diversity_context_and_highlights(records_index: Path, start_server: Any) -> None:
    pytest.importorskip("httpx", reason="the client needs the 'serve' extra")
    from retriever import Retriever
    from retriever.client import Client
    from retriever.serve.app import create_app

    url = start_server(create_app(records_index))
    options = {"k": 3, "diversity": 0.5, "fetch_k": 4, "context": "document", "context_tokens": 50}
    with Client(url) as remote, Retriever.load(records_index) as local:
        for query in ("cats sleep in the sun", "coffee and tea"):
            got, want = remote.search(query, **options), local.search(query, **options)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
            assert [{**h.to_dict(), "score": 0} for h in got] == [{**h.to_dict(), "score": 0} for h in want]
            assert got[0].highlights and got[0].snippet
        assert remote.search_many(["train coast"], context=1)[0][0].highlights
        with pytest.raises(Exception, match="fetch_k"):
            remote.search("cats", k=3, diversity=0.5, fetch_k=0)
        with pytest.raises(Exception, match="context"):
            remote.search("cats", context="page")
        for query in ("cats sleep in the sun", "coffee and tea"):
            got = remote.context_for(query, max_tokens=30, k=4, mode="lexical")
            assert got == local.context_for(query, max_tokens=30, k=4, mode="lexical")
            assert got and sum(p.tokens for p in got) <= 30


# context_for -------------------------------------------------------------------------------------------------
def test_context_for_ranks_merges_and_keeps_copies_once(rag_index: Any) -> None:
    from retriever import ContextPassage

    parts = rag_index.context_for("cats sleep in the sun", max_tokens=2000, k=10, context=1)
    assert parts and all(isinstance(p, ContextPassage) for p in parts)
    assert parts[0].doc_id in {"cats", "cats-copy"}
    assert not {"cats", "cats-copy"} <= {p.doc_id for p in parts}  # the copy's passages are near-copies: left out
    for part in parts:
        document = rag_index.get(part.doc_id).text
        assert part.text == document[part.start:part.end]
        assert part.citation == f'"{part.title}" ({part.doc_id}, characters {part.start}-{part.end})'
    spans: dict[str, list[tuple[int, int]]] = {}
    for part in parts:  # passages of one document are merged: no two spans overlap or touch
        for start, end in spans.get(part.doc_id, []):
            assert part.end < start or end < part.start
        spans.setdefault(part.doc_id, []).append((part.start, part.end))
    river = [p for p in parts if p.doc_id == "river"]
    assert len(river) <= 1


def test_context_for_stays_within_the_token_budget(rag_index: Any) -> None:
    count = rag_index._count_tokens
    everything = rag_index.context_for("the river and the sea at night", max_tokens=10_000, k=20)
    total = sum(count(p.text) for p in everything)
    for budget in (20, 40, total - 5):
        parts = rag_index.context_for("the river and the sea at night", max_tokens=budget, k=20)
        assert parts and sum(count(p.text) for p in parts) <= budget
        assert all(p.tokens == count(p.text) for p in parts)
        assert parts[0].doc_id == everything[0].doc_id and parts[0].start >= everything[0].start
    assert rag_index.context_for("the river", max_tokens=5) == []  # not even a worthwhile piece of one passage


@pytest.mark.parametrize("options, message", [
    ({"max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"context": "document"}, "context must be a number"),
])
def test_context_for_bad_budget_is_one_clear_error(rag_index: Any, options: dict, message: str) -> None:
    with pytest.raises(RetrieverError, match=message):
        rag_index.context_for("cats", **options)


def test_rag_example_assembles_its_sources_with_context_for(tmp_path: Path, tiny_model: str,
                                                           capsys: pytest.CaptureFixture) -> None:
    import importlib.util
    import sys

    from retriever import Retriever

    path = Path(__file__).resolve().parent.parent / "examples" / "rag_pipeline.py"
    spec = importlib.util.spec_from_file_location("rag_pipeline_context", path)
    example = importlib.util.module_from_spec(spec)
    sys.modules["rag_pipeline_context"] = example
    spec.loader.exec_module(example)
    index, question = tmp_path / "sample", "How long until my parcel arrives?"
    prompt = example.main([question, "-k", "4", "--index", str(index), "--model", tiny_model, "--max-tokens", "300"])
    assert prompt == capsys.readouterr().out.rstrip("\n")
    with Retriever.load(index) as retriever:
        parts = retriever.context_for(question, max_tokens=300, k=4)
    assert parts
    for number, part in enumerate(parts, start=1):
        assert f"[{number}] " in prompt and f"({part.doc_id}, characters {part.start}-{part.end})" in prompt


def test_fast_matching_finds_the_words_of_the_full_tokenizer() -> None:
    from retriever.index.lexical import matching_spans, query_terms, term_spans

    text = ("Cells were dying, or died; the dye dried. Possibility: possibly possible. Skies, sky, "
            "organizations organized_data İstanbul lying liars tied ties tying 2-dimensional 3D")
    for query in ("dying cell", "possibility", "sky organization", "lie tie", "istanbul dimensional 3d", "the"):
        terms = query_terms(query)
        assert matching_spans(text, terms) == [span for span in term_spans(text) if span[2] in terms], query


# the fast highlights and expansion return what the simple implementations they replaced returned ---------------
# A varied corpus: unicode (accents, ß, İ whose lowercase is longer, CJK, non-breaking and em spaces), stems and
# irregular stems, words inside words, closing quotes and brackets, runs of punctuation, line breaks, blank text.
VARIED_TEXTS = [
    "", "   ", "\n\n", "cats", "Cats.", "…", "No sentence end", " leading and trailing spaces. ",
    "The Cats were sleeping; CATS sleep. Nothing here. A dog barks.",
    'He said "dying cells died." Then (the dye dried.) [Lying ties!] tying? tied... "Possibly!" possibility',
    "Über-große Straße. İstanbul's skies?! Sky\u00a0high.\u2003Organizations\norganized_data 2-dimensional 3D.",
    "细胞死亡。Cells die. 猫は寝る! cats' naps\n\n  \n  Sleeping cat.",
    "incapacitated inca capacity. reactivation re-activation reactive; preactivated. ceLLs cellular",
    "a.b.c. e.g. i.e. 0.5 mg. Fig. 1) results.' \"quoted.\" end.)\n" * 3,
    "x" * 400 + " coffee " + "y " * 200,
]
VARIED_QUERIES = ["sleeping cats and the dogs", "dying cell", "possibility lie tie", "istanbul sky organization",
                  "cellular reactivation capacity", "the a of", "", "coffee mg results", "猫 细胞", "3d 2-dimensional"]


def reference_sentence_spans(text: str) -> list[tuple[int, int]]:
    import re

    spans, start = [], 0
    for boundary in re.finditer(r"[.!?][\"')\]]*(\s+)|\n\s*", text):
        end = boundary.start(1) if boundary.start(1) >= 0 else boundary.start()
        spans.append((start, end))
        start = boundary.end()
    spans.append((start, len(text)))
    out = []
    for begin, end in spans:
        piece = text[begin:end]
        if piece and not piece.isspace():
            out.append((begin + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))))
    return out


def reference_snippet(text: str, found: list[tuple[int, int, str]]) -> str:
    from retriever.search.highlights import GAP, _cut

    sentences = reference_sentence_spans(text)
    if not sentences:
        return ""
    stems_in = [{stem for start, _, stem in found if begin <= start < finish} for begin, finish in sentences]
    counts = [sum(1 for start, _, _ in found if begin <= start < finish) for begin, finish in sentences]
    best = max(range(len(sentences)), key=lambda i: (len(stems_in[i]), counts[i], -i))
    chosen = [best]
    more = [i for i in range(len(sentences)) if stems_in[i] - stems_in[best]]
    if more:
        chosen.append(max(more, key=lambda i: (len(stems_in[i] - stems_in[best]), counts[i], -i)))
    pieces = [_cut(text, sentences[i], found) for i in sorted(chosen)]
    return (" " if len(chosen) == 2 and abs(chosen[0] - chosen[1]) == 1 else GAP).join(pieces)


def varied_texts() -> list[str]:
    """The fixed texts, and random ones built from their pieces, punctuation and whitespace."""
    import random

    rng = random.Random(21)
    pieces = " ".join(VARIED_TEXTS).split() + [".", "!", "?", '."', ".)", "\n", "\n \n", "  ", "\u00a0", "\t",
                                               "'", ")", "]", "?!"]
    made = ["".join(rng.choice(pieces) + rng.choice(["", " ", " ", "\n"]) for _ in range(rng.randint(0, 60)))
            for _ in range(300)]
    return VARIED_TEXTS + made


def test_fast_highlights_and_snippets_equal_the_simple_implementation() -> None:
    from retriever.index.lexical import matching_spans, query_terms, term_spans
    from retriever.search.highlights import annotate, sentence_spans, snippet
    from retriever.search.results import Hit

    texts = varied_texts()
    for text in texts:
        assert sentence_spans(text) == reference_sentence_spans(text), repr(text)
    for query in VARIED_QUERIES:
        terms = query_terms(query)
        hits = annotate([Hit("d", 1.0, text) for text in texts], query)
        for text, hit in zip(texts, hits):
            found = [span for span in term_spans(text) if span[2] in terms]
            assert matching_spans(text, terms) == found, (query, text)
            assert snippet(text, found) == reference_snippet(text, found), (query, text)
            assert (hit.snippet, hit.highlights) == (reference_snippet(text, found),
                                                     [{"start": a, "end": b} for a, b, _ in found]), (query, text)


def test_fast_expansion_equals_the_document_span_of_each_window(rag_index: Any) -> None:
    from retriever.search.context import ContextExpander
    from retriever.search.results import Hit

    snapshot = rag_index.snapshot
    by_doc = {record["_id"]: snapshot.passage_keys(record["_id"]) for record in RAG_RECORDS}
    keys = [key for doc_keys in by_doc.values() for key in doc_keys]  # several hits of one document too
    stored = snapshot.hydrate(keys)
    assert len(by_doc["river"]) >= 5
    for neighbours in (1, 2, 100):
        hits = [Hit.from_passage(stored[key], 1.0) for key in keys]
        ContextExpander(snapshot, neighbours).expand(hits, keys)
        for key, hit in zip(keys, hits):
            doc_keys = by_doc[hit.doc_id]
            at = doc_keys.index(key)
            window = [stored[k] for k in doc_keys[max(0, at - neighbours): at + neighbours + 1]]
            start, end = min(p.start for p in window), max(p.end for p in window)
            assert (hit.start, hit.end, hit.text) == (start, end, snapshot.document(hit.doc_id).text[start:end])
    assert snapshot.passage_keys_of(["river", "no-such-document"]) == {"river": by_doc["river"]}
