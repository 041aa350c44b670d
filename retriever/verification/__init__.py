"""Verification: is this document a match for this query, at a threshold calibrated on labelled pairs."""
