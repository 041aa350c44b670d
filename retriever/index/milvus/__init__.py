"""Milvus as the store of an index (``--store milvus:PATH`` or ``--store milvus:http://host:19530``).

The index folder keeps what it always keeps (``CURRENT``, ``generations/gen-N.json``, the writer lock, leases); the
manifest's ``store`` names the Milvus database and ``backend`` its three collections:

- ``<prefix>_passages``: one row per passage: its id, document id, offsets, title, source, metadata (JSON), text,
  the dense vector, and the text BM25 reads, turned into a sparse vector by a Milvus BM25 function (full-text
  search). Filters become Milvus boolean expressions over these fields (``filters``).
- ``<prefix>_documents``: one row per document (its full text split into pieces of a VARCHAR's size), with the
  content hash and file that incremental indexing compares.
- ``<prefix>_files``: the content hash and document count of each indexed file (folder sync).

The model fingerprint is also kept in the passages collection's properties and checked whenever the index is opened.

BM25 analyzer: by default the engine writes its own tokens (bm25s: lowercase, English stopwords, Snowball stems)
into the analyzed field, and Milvus's standard tokenizer leaves them whole, so Milvus scores exactly the terms the
local store scores (``?analyzer=milvus`` lets Milvus analyze the raw text instead; see docs/scale-out.md for the
difference on SciFact).

What a reader sees while a writer works: Milvus has no snapshots. A search sees every insert and delete as soon
as Milvus applies it: while an update runs, new passages appear as they are inserted, and the old versions of
updated documents go at the update's commit (for a moment both versions exist; results per document show one).
Counts (``len``, ``info``) are those of the last commit. An update that fails or is interrupted is rolled back:
its uncommitted inserts are deleted (at once, or by the next writer), and a commit's deletions and file hashes
are written to the manifest first and applied after, so an interrupted commit is completed by the next writer.
Milvus Lite (a local ``.db`` folder) is opened by one process at a time; a Milvus server serves any number.
"""

from __future__ import annotations
