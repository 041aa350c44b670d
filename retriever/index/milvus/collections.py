"""The three Milvus collections of an index: their schemas, vector index, creation and the checks on open."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from retriever.errors import CorruptIndexError, ModelMismatchError, RetrieverError
from retriever.index.milvus.connection import is_lite

PASSAGES, DOCUMENTS, FILES = "passages", "documents", "files"
VARCHAR_BYTES = 65_535  # Milvus's largest VARCHAR
PIECE_CHARS = 16_000  # a document's text is stored in pieces this long: 4 UTF-8 bytes a character still fit
PART_BITS = 20  # a document row's key is (version << PART_BITS) | piece number
FINGERPRINT = "retriever.model_fingerprint"
MODEL_NAME = "retriever.model_name"
ANALYZERS = ("retriever", "milvus")
HNSW = {"M": 32, "efConstruction": 200}
HNSW_EF = 128
IVF_NLIST, IVF_NPROBE = 1024, 32


def new_prefix(index_root: Path) -> str:
    """A collection prefix of its own for a new index: its folder's name and a random suffix."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", index_root.resolve().name)[:40] or "index"
    return f"retriever_{stem}_{uuid.uuid4().hex[:8]}"


def names(backend: dict[str, Any]) -> dict[str, str]:
    prefix = backend["collection"]
    return {part: f"{prefix}_{part}" for part in (PASSAGES, DOCUMENTS, FILES)}


def vector_index(ann: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Milvus index type, build parameters and search parameters for a requested ANN kind.

    Milvus builds its own index per sealed segment (and searches growing data exactly), so ``auto`` is HNSW, the
    index Milvus's own AUTOINDEX picks for float vectors.
    """
    if ann == "flat":
        return "FLAT", {}, {}
    if ann in ("auto", "hnsw"):
        return "HNSW", dict(HNSW), {"ef": HNSW_EF}
    if ann == "ivf":
        return "IVF_FLAT", {"nlist": IVF_NLIST}, {"nprobe": IVF_NPROBE}
    if ann == "sq8":
        return "IVF_SQ8", {"nlist": IVF_NLIST}, {"nprobe": IVF_NPROBE}
    raise RetrieverError(f"ANN type {ann!r} is not available with the Milvus store; use auto, flat, hnsw, ivf or sq8")


def analyzer_params(analyzer: str, lite: bool) -> dict[str, Any]:
    """How Milvus splits the BM25 field: whole pre-analyzed tokens, or its own English analysis of raw text."""
    if analyzer == "retriever":
        return {"tokenizer": "standard"}
    if lite:  # Milvus Lite has no stemmer: the standard tokenizer with the same English stopwords as bm25s
        from retriever.index.lexical import _stopwords

        return {"tokenizer": "standard", "filter": [{"type": "stop", "stop_words": list(_stopwords())}]}
    return {"type": "english"}  # Milvus's built-in English analyzer: lowercase, stopwords, Snowball stems


def create(client: Any, backend: dict[str, Any], uri: str, dimension: int, ann: str, model: dict[str, Any]) -> None:
    """Create the collections of a new index (refusing to reuse existing ones) and record the model in them."""
    from pymilvus import DataType, Function, FunctionType

    collections = names(backend)
    taken = [name for name in collections.values() if client.has_collection(name)]
    if taken:
        raise RetrieverError(f"Milvus collection {taken[0]} already exists in {uri}; build into another --index")
    text = {"datatype": DataType.VARCHAR, "max_length": VARCHAR_BYTES}

    passages = client.create_schema(auto_id=False, enable_dynamic_field=False)
    passages.add_field("pid", DataType.INT64, is_primary=True)
    passages.add_field("version", DataType.INT64)  # the document version: its first passage id
    passages.add_field("doc_id", **text)
    passages.add_field("ordinal", DataType.INT64)
    passages.add_field("start_char", DataType.INT64)
    passages.add_field("end_char", DataType.INT64)
    passages.add_field("title", **text)
    passages.add_field("source", **text)  # "" for none
    passages.add_field("metadata", DataType.JSON)
    passages.add_field("text", **text)
    passages.add_field("lexical", **text, enable_analyzer=True,
                       analyzer_params=analyzer_params(backend["analyzer"], is_lite(uri)))
    passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    passages.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["lexical"],
                                   output_field_names=["sparse"]))
    index_type, params, _ = vector_index(ann)
    indexes = client.prepare_index_params()
    indexes.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    indexes.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    _create_loaded(client, collections[PASSAGES], passages, indexes)
    record_model(client, backend, model)

    documents = client.create_schema(auto_id=False, enable_dynamic_field=False)
    documents.add_field("key", DataType.INT64, is_primary=True)
    documents.add_field("version", DataType.INT64)
    documents.add_field("part", DataType.INT64)
    documents.add_field("doc_id", **text)
    documents.add_field("text", **text)
    documents.add_field("title", **text)
    documents.add_field("source", **text)
    documents.add_field("metadata", DataType.JSON)
    documents.add_field("content_hash", DataType.VARCHAR, max_length=64)
    documents.add_field("file", **text)  # "" for none
    documents.add_field("passages", DataType.INT64)
    _placeholder_vector(client, documents, collections[DOCUMENTS])

    files = client.create_schema(auto_id=False, enable_dynamic_field=False)
    files.add_field("path", DataType.VARCHAR, max_length=VARCHAR_BYTES, is_primary=True)
    files.add_field("hash", DataType.VARCHAR, max_length=64)
    files.add_field("documents", DataType.INT64)
    _placeholder_vector(client, files, collections[FILES])


def _placeholder_vector(client: Any, schema: Any, name: str) -> None:
    """Milvus requires a vector field (with an index) in every collection; these hold records, so a 2-d one."""
    from pymilvus import DataType

    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    indexes = client.prepare_index_params()
    indexes.add_index("unused", index_type="FLAT", metric_type="L2")
    _create_loaded(client, name, schema, indexes)


def _create_loaded(client: Any, name: str, schema: Any, indexes: Any) -> None:
    """Create an empty collection with its indexes, and load it.

    pymilvus' ``create_collection(index_params=...)`` waits for each index with a fixed half-second sleep before its
    first check: 2 s for a new index's three collections, though the index of an empty collection is built at once.
    The indexes are created without that wait; loading the collection waits for them.
    """
    client.create_collection(name, schema=schema, consistency_level="Strong")
    client.create_index(name, indexes, sync=False)
    client.load_collection(name)


PLACEHOLDER = [0.0, 0.0]


def record_model(client: Any, backend: dict[str, Any], model: dict[str, Any]) -> None:
    """Name the model whose vectors the passages collection holds (``check`` compares it with the manifest's)."""
    client.alter_collection_properties(names(backend)[PASSAGES], properties={
        FINGERPRINT: model["fingerprint"], MODEL_NAME: model["name"]})


def check(client: Any, backend: dict[str, Any], uri: str, model: dict[str, Any], index_name: str) -> None:
    """The collections exist, are loaded, and hold vectors of the model the manifest names."""
    collections = names(backend)
    for name in collections.values():
        if not client.has_collection(name):
            raise CorruptIndexError(f"index {index_name} is corrupt: Milvus collection {name} is missing from {uri}")
    properties = client.describe_collection(collections[PASSAGES]).get("properties") or {}
    recorded = properties.get(FINGERPRINT)
    if recorded != model["fingerprint"]:
        raise ModelMismatchError(
            f"index {index_name}: Milvus collection {collections[PASSAGES]} holds vectors of model "
            f"{properties.get(MODEL_NAME)!r} (fingerprint {recorded}), but the manifest names {model['name']!r} "
            f"(fingerprint {model['fingerprint']}); rebuild the index"
        )
    for name in collections.values():
        if str(client.get_load_state(name).get("state")) != "Loaded":
            client.load_collection(name)


def rebuild_vector_index(client: Any, backend: dict[str, Any], ann: str) -> None:
    """Replace the passages' vector index by the kind now requested (``retriever index --ann``)."""
    name = names(backend)[PASSAGES]
    index_type, params, _ = vector_index(ann)
    client.release_collection(name)
    client.drop_index(name, "vector")
    indexes = client.prepare_index_params()
    indexes.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    client.create_index(name, indexes)
    client.load_collection(name)


def drop(client: Any, backend: dict[str, Any]) -> None:
    for name in names(backend).values():
        if client.has_collection(name):
            client.drop_collection(name)
