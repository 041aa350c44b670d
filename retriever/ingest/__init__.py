"""From files and records to passages: reading formats, documents, incremental sync, chunking."""
