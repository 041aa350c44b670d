"""The fixed calibration set of static int8 exports, shipped with the package.

Static int8 (OpenVINO through NNCF) measures activation ranges on sample inputs. Calibrating on each corpus
made every new corpus pay a fresh export, filled the export cache with calibrations of one model, and gave a
model a corpus-dependent fingerprint (a Ray build, calibrated on its first block, differed from a
single-process one). With one fixed set, a model is calibrated once per export cache (machine) and its
fingerprint is known when the encoder is made.

``texts.jsonl`` holds about 300 English passages written for this purpose (no third-party text): science,
medicine, support and how-to, news-like reports, product and legal prose, code, logs and configuration, and
short queries and titles, from a few words to a few hundred, so that activation ranges cover what a search
index meets. A static int8 export calibrates on an evenly spread part of it (``calibration_sample``; how many,
and how NNCF uses them, is ``openvino.RECIPE``). Their digest with the recipe (``calibration_digest``) names the
export and ends the encoder's fingerprint: changing the file or the recipe makes a new export, and indexes
built with the old one ask to be rebuilt unless that export is still cached.
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


def spread(texts: tuple[str, ...], count: int | None) -> tuple[str, ...]:
    """``count`` of ``texts`` evenly spaced over the file (every kind of text it holds), all if None or more."""
    if count is None or count >= len(texts):
        return texts
    return tuple(texts[i * len(texts) // count] for i in range(count))


def texts_digest(texts: tuple[str, ...] | list[str]) -> str:
    """12 hex digits naming a list of texts (in order)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@lru_cache(maxsize=1)
def calibration_sample() -> tuple[str, ...]:
    """The texts static int8 calibrates on: the shipped set spread down to ``RECIPE.samples`` (``openvino.py``)."""
    from retriever.encoding.openvino import RECIPE

    return spread(calibration_texts(), RECIPE.samples)


@lru_cache(maxsize=1)
def calibration_digest() -> str:
    """Names the calibration of a static int8 export: its texts and how NNCF used them (``RECIPE``).

    Part of the export's folder name and of the encoder fingerprint, so a new recipe makes a new export
    and an export made by an older recipe is never reused as if it were this one.
    """
    from retriever.encoding.openvino import RECIPE

    tag = RECIPE.tag()  # "" for the recipe before issue 18's item 1, whose digest was of the texts alone
    return texts_digest(((f"recipe {tag}",) if tag else ()) + calibration_sample())
