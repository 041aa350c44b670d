"""From texts to vectors: loading a model offline, fingerprinting it, encoding, caching embeddings."""
