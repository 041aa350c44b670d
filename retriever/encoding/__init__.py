"""From texts to vectors: loading a model offline, fingerprinting it, running it on a backend (PyTorch, ONNX Runtime,
OpenVINO; int8) from a cached export, on a device or a pool of workers, and caching embeddings."""
