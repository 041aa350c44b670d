"""The fixed calibration set of static int8 exports, shipped with the package.

Static int8 (OpenVINO through NNCF) measures activation ranges on sample inputs. Calibrating on each corpus
made every new corpus pay a fresh export, filled the export cache with calibrations of one model, and gave a
model a corpus-dependent fingerprint (a Ray build, calibrated on its first block, differed from a
single-process one). With one fixed set, a model is calibrated once per export cache (machine) and its
fingerprint is known when the encoder is made.

``texts.jsonl`` holds about 300 English passages written for this purpose (no third-party text): science,
medicine, support and how-to, news-like reports, product and legal prose, code, logs and configuration, and
short queries and titles, from a few words to a few hundred, so that activation ranges cover what a search
index meets. Its digest (``DIGEST``) names the export and ends the encoder's fingerprint: changing the file
makes a new export, and indexes built with the old one ask to be rebuilt unless that export is still cached.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources

TEXTS_FILE = "texts.jsonl"


@lru_cache(maxsize=1)
def calibration_texts() -> tuple[str, ...]:
    """The shipped calibration passages, in file order."""
    raw = resources.files(__name__).joinpath(TEXTS_FILE).read_text(encoding="utf-8")
    return tuple(json.loads(line)["text"] for line in raw.splitlines() if line.strip())


def texts_digest(texts: tuple[str, ...] | list[str]) -> str:
    """12 hex digits naming a list of texts (in order)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@lru_cache(maxsize=1)
def calibration_digest() -> str:
    """The digest of the shipped set: part of a static int8 export's folder name and of the encoder fingerprint."""
    return texts_digest(calibration_texts())
