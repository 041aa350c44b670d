"""Evaluation: BEIR datasets, trec_eval metrics (pytrec_eval), and ``retriever bench``."""
