"""The index on disk: directory and generations, manifest, metadata store, vectors (ANN), BM25."""
