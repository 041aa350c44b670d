"""Reading each supported format into Documents, and the errors for files that can't be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever.errors import InputFormatError
from retriever.ingest.readers import UnreadableFileError, iter_corpus_files, read_file


def make_pdf(text: str, title: str | None = None) -> bytes:
    """A minimal valid one-page PDF showing ``text`` in Helvetica (offsets in the xref are exact)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def read_one(path: Path, doc_id: str = "doc"):
    docs = read_file(path, doc_id)
    assert len(docs) == 1
    return docs[0]


def test_plain_text_keeps_text_and_uses_file_name_as_title(tmp_path: Path) -> None:
    path = tmp_path / "cats.txt"
    path.write_text("Cats sleep most of the day.\n")
    doc = read_one(path, "cats.txt")
    assert doc.doc_id == "cats.txt"
    assert doc.text == "Cats sleep most of the day.\n"
    assert doc.title == "cats"
    assert doc.source == str(path)


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffCafé au lait".encode())
    assert read_one(path).text == "Café au lait"


def test_markdown_title_comes_from_first_heading(tmp_path: Path) -> None:
    path = tmp_path / "dogs.md"
    path.write_text("# Caring for dogs\n\nDogs love a walk.\n")
    doc = read_one(path)
    assert doc.title == "Caring for dogs"
    assert "Dogs love a walk." in doc.text


def test_markdown_without_heading_falls_back_to_file_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("Just a paragraph.\n")
    assert read_one(path).title == "notes"


def test_rst_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "trains.rst"
    path.write_text("Trains\n======\n\nThe train to the coast leaves at nine.\n")
    doc = read_one(path)
    assert "The train to the coast leaves at nine." in doc.text
    assert doc.title == "trains"


def test_html_text_without_script_style_or_tags(tmp_path: Path) -> None:
    path = tmp_path / "coffee.html"
    path.write_text(
        "<html><head><title>Coffee</title><style>p { color: red; }</style>"
        "<script>var secret = 'do not index';</script></head>"
        "<body><h1>Brewing</h1><p>Grind the coffee <b>just</b> before you brew it.</p>"
        "<noscript>enable javascript</noscript></body></html>"
    )
    doc = read_one(path)
    assert doc.title == "Coffee"
    assert "Brewing" in doc.text and "Grind the coffee" in doc.text and "before you brew it." in doc.text
    for hidden in ("secret", "do not index", "color: red", "<p>", "enable javascript"):
        assert hidden not in doc.text


def test_jsonl_records_with_ids_titles_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"_id": "d1", "title": "Refunds", "text": "A refund is paid to your card.", "year": 2021, '
        '"metadata": {"url": "https://example.org/refunds"}}\n'
        "\n"
        '{"id": 7, "text": "Your parcel arrives in two days."}\n'
        '{"_id": "d3", "id": 3, "text": "With an _id, a field named id is the record\'s own."}\n'
    )
    first, second, third = read_file(path, "ignored")
    assert (first.doc_id, first.title, first.text) == ("d1", "Refunds", "A refund is paid to your card.")
    assert first.metadata == {"year": 2021, "metadata": {"url": "https://example.org/refunds"}}
    assert first.source == str(path)
    assert (second.doc_id, second.title, second.metadata) == ("7", "", {})
    assert (third.doc_id, third.metadata) == ("d3", {"id": 3})  # e.g. a LangChain document's metadata


def test_beir_corpus_line_is_read_as_is(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "4983", "title": "", "text": "Microstructural development of white matter.", '
                    '"metadata": {}}\n')
    doc = read_one(path)
    assert doc.doc_id == "4983"
    assert doc.text == "Microstructural development of white matter."


def test_json_list_of_records(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text('[{"_id": "a", "text": "first"}, {"_id": "b", "title": "Second", "text": "second", "lang": "en"}]')
    docs = read_file(path, "ignored")
    assert [d.doc_id for d in docs] == ["a", "b"]
    assert docs[1].title == "Second" and docs[1].metadata == {"lang": "en"}


def test_json_single_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text('{"_id": "only", "text": "a single record"}')
    assert read_one(path).doc_id == "only"


def test_pdf_text_and_title(tmp_path: Path) -> None:
    path = tmp_path / "tomatoes.pdf"
    path.write_bytes(make_pdf("Tomatoes need sun and water.", title="Growing tomatoes"))
    doc = read_one(path, "tomatoes.pdf")
    assert doc.text == "Tomatoes need sun and water."
    assert doc.title == "Growing tomatoes"
    assert doc.doc_id == "tomatoes.pdf"


def test_pdf_without_title_uses_file_name(tmp_path: Path) -> None:
    path = tmp_path / "parcel.pdf"
    path.write_bytes(make_pdf("Your parcel arrives in two days."))
    assert read_one(path).title == "parcel"


def test_damaged_pdf_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    with pytest.raises(UnreadableFileError):
        read_file(path, "broken.pdf")


def test_binary_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    with pytest.raises(UnreadableFileError, match="binary"):
        read_file(path, "image.txt")


def test_non_utf8_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\u00e9 cr\u00e8me".encode("latin-1"))
    with pytest.raises(UnreadableFileError, match="UTF-8"):
        read_file(path, "latin1.txt")


def test_unreadable_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "folder.txt"
    path.mkdir()  # reading a directory as a file fails with an OSError
    with pytest.raises(UnreadableFileError):
        read_file(path, "folder.txt")


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": "fine"}\n{"_id": "3", "text": \n')
    with pytest.raises(InputFormatError) as info:
        read_file(path, "corpus.jsonl")
    assert f"{path}:3" in str(info.value)


def test_jsonl_line_that_is_not_an_object_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": "fine"}\n["not", "a", "record"]\n')
    with pytest.raises(InputFormatError, match=f"{path}:2"):
        read_file(path, "corpus.jsonl")


def test_malformed_json_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text('[\n{"_id": "a", "text": "x"},\n{"_id": "b" "text": "y"}\n]')
    with pytest.raises(InputFormatError, match=f"{path}:3"):
        read_file(path, "records.json")


def test_record_without_id_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": "fine"}\n{"title": "No id", "text": "orphan"}\n')
    with pytest.raises(InputFormatError) as info:
        read_file(path, "corpus.jsonl")
    assert f"{path}:2" in str(info.value) and "_id" in str(info.value)


def test_record_with_non_string_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "1", "text": 42}\n')
    with pytest.raises(InputFormatError, match=f"{path}:1"):
        read_file(path, "corpus.jsonl")


def test_corpus_walk_is_sorted_recursive_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / ".hidden.txt").write_text("h")
    (tmp_path / ".git" / "config.txt").write_text("g")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_corpus_files(tmp_path)]
    assert found == ["a.txt", "b/z.txt"]


def test_a_jsonl_file_streams_one_record_at_a_time(tmp_path: Path) -> None:
    """A build of millions of records must not hold the file in memory: records come as the lines are read."""
    from retriever.ingest.readers import iter_file

    path = tmp_path / "big.jsonl"
    path.write_text('{"_id": "a", "text": "first"}\n{"_id": "b", "text": "second"}\n{"_id": "c", "text": oops}\n')
    documents = iter_file(path, "big.jsonl")
    assert next(documents).doc_id == "a" and next(documents).doc_id == "b"  # read before the bad line is reached
    with pytest.raises(InputFormatError, match="big.jsonl:3"):
        next(documents)


def test_parquet_rows_are_records_like_jsonl_lines(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"id": 7, "title": "Refunds", "text": "A refund is paid to your card.", "year": 2021, "tags": ["money"]},
        {"id": 8, "title": "Delivery", "text": "Your parcel arrives in two days.", "year": 2019, "tags": []},
    ]), path)
    docs = read_file(path, "part-0.parquet")
    assert [(d.doc_id, d.title, d.text) for d in docs] == [
        ("7", "Refunds", "A refund is paid to your card."), ("8", "Delivery", "Your parcel arrives in two days.")]
    assert docs[0].metadata == {"year": 2021, "tags": ["money"]} and docs[0].source == str(path)


def test_parquet_without_ids_or_unreadable_is_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "no-ids.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "no id here"}]), path)
    with pytest.raises(InputFormatError, match=r"no-ids.parquet\[row 1\].*no '_id' or 'id'"):
        read_file(path, "no-ids.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(UnreadableFileError, match="unreadable Parquet"):
        read_file(broken, "broken.parquet")


# special files, unreadable folders, size bound (issue 24, item 7) -------------------------------------------
def test_special_files_are_skipped_without_being_opened(tmp_path: Path) -> None:
    """A FIFO would block ``retriever index`` forever and a symlink to /dev/zero would read without end."""
    import os

    from retriever.ingest.sync import scan_folder

    (tmp_path / "ok.txt").write_text("cats")
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    changes = scan_folder(tmp_path, {})
    assert list(changes.ids) == [str(tmp_path.resolve() / "ok.txt")]
    reasons = dict(changes.skipped)
    assert reasons[str(tmp_path.resolve() / "pipe.txt")] == "FIFO, not a regular file"
    assert reasons[str(tmp_path.resolve() / "zero.txt")] == "character device, not a regular file"
    for name in ("pipe.txt", "zero.txt"):  # the readers refuse them too (a file swapped after the scan)
        with pytest.raises(UnreadableFileError, match="not a regular file"):
            read_file(tmp_path / name, name)


def test_reading_is_bounded_by_the_largest_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retriever.ingest import readers

    monkeypatch.setattr(readers, "MAX_DOCUMENT_BYTES", 100)
    (tmp_path / "small.txt").write_text("x" * 100)
    (tmp_path / "big.txt").write_text("x" * 101)
    (tmp_path / "big.jsonl").write_text('{"_id": "a", "text": "%s"}\n' % ("x" * 100))
    assert read_file(tmp_path / "small.txt", "small.txt")[0].text == "x" * 100
    with pytest.raises(UnreadableFileError, match="larger than the .* MiB limit"):
        read_file(tmp_path / "big.txt", "big.txt")
    with pytest.raises(UnreadableFileError, match="line 1 is larger than"):
        read_file(tmp_path / "big.jsonl", "big.jsonl")


def test_an_unreadable_folder_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores chmod 000, so listing the folder fails through a patched os.scandir instead."""
    import os

    from retriever.ingest.sync import scan_folder

    (tmp_path / "ok.txt").write_text("cats")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "kept.txt").write_text("dogs")
    real_scandir = os.scandir
    locked = str(tmp_path.resolve() / "locked")

    def scandir(path: object = ".") -> object:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    kept = str(tmp_path.resolve() / "locked" / "kept.txt")
    changes = scan_folder(tmp_path, {kept: "old-hash"})
    assert list(changes.ids) == [str(tmp_path.resolve() / "ok.txt")]
    assert (locked, "folder cannot be read (Permission denied)") in changes.skipped
    assert changes.deleted == [] and changes.unchanged == [kept], "its indexed files are kept, not removed"
