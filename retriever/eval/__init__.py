"""Evaluation: BEIR datasets, ranx metrics, and ``retriever bench``."""
