"""``--backend auto``: choose the encoder backend by measuring it on this machine, once per model and machine.

Which runtime is fastest depends on the CPU more than on anything else: on AVX-512 VNNI or AMX the
int8 kernels are several times faster than fp32, on an AVX2-only CPU OpenVINO's static int8 was slower
than plain PyTorch (issue 18). So a fixed rule cannot be right everywhere. On first use of a model on
a machine every installed backend and precision encodes a small fixed probe sample (``probe.txt``,
shipped with the package); each is timed, and compared with PyTorch fp32 on the same texts. The choice
(``choose``) is the fastest candidate that agrees within ``MIN_COSINE`` and is at least ``MARGIN``
faster than every safer candidate (fp32 before int8, PyTorch itself before an export), so noise
never trades exactness for a few percent.

First use is kept short (issue 18): the exports share one trace of the model and each int8 export is
made from its fp32 one (``export.py``), and a candidate clearly slower than the fastest after a timed
pass is not timed again. NNCF's static int8 calibration, the longest step, runs the model on 64 of the
shipped calibration texts rather than all 301 (``openvino.RECIPE``): its cost grows with the texts, and
64 agree with fp32 as closely as 301 did.

The choice is cached as JSON in ``<exports>/backend-choices/`` (beside the exports it reuses), keyed
by what decides the winner: the CPU model and instruction-set flags, any cap on them in the environment
(``ONEDNN_MAX_CPU_ISA``, ...), the cores, the model's weights, the runtimes' versions and the probe.
Later builds on the same machine read it without measuring; an explicit ``--backend`` never measures.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from retriever.encoding.backends import (
    AUTO,
    BACKENDS,
    MIN_COSINE,
    QUANTIZATIONS,
    backend_installed,
    backend_label,
    check_backend,
    parse_backend_label,
    resolve_backend,
)
from retriever.encoding.calibration import calibration_digest
from retriever.encoding.devices import resolve_device
from retriever.encoding.encoder import Encoder
from retriever.encoding.export import exports_root
from retriever.errors import RetrieverError
from retriever.machine import cpu_facts

PROBE_FILE = Path(__file__).with_name("probe.txt")
CHOICES_DIR = "backend-choices"  # under the exports folder
MARGIN = 0.10  # a less safe candidate must be at least 10% faster than each safer one to be chosen
ROUNDS = 2  # timed passes over the probe per candidate (after an untimed one), interleaved; the best is kept
CONTENDER = 1.5  # after a timed pass, a candidate this many times slower than the fastest is not timed again
RULE = f"fastest within MIN_COSINE {MIN_COSINE} and >= {MARGIN:.0%} faster than every safer candidate"
# Safer first: PyTorch fp32 is the reference itself; fp32 exports differ only in the order of additions; int8
# changes the vectors within MIN_COSINE.
SAFETY = {"torch": 0, "onnx": 1, "openvino": 1, "onnx-int8": 2, "openvino-int8": 2}
RUNTIMES = ("torch", "sentence-transformers", "transformers", "onnxruntime", "openvino", "nncf")


@dataclass
class Measurement:
    """One candidate on the probe: documents per second, and its worst cosine to PyTorch fp32."""

    docs_per_second: float
    min_cosine: float
    prepare_seconds: float = 0.0  # export (if not cached), compile, first batch
    error: str | None = None

    def agrees(self, label: str) -> bool:
        return self.error is None and self.min_cosine >= MIN_COSINE[parse_backend_label(label)[1]]


# the decision ---------------------------------------------------------------------------------------
def choose(measured: Mapping[str, Measurement], allowed: Iterable[str] | None = None,
           margin: float = MARGIN) -> tuple[str, str]:
    """The label to encode with, and why, from measurements on this machine (a pure function).

    A candidate qualifies when it agrees with PyTorch fp32 within MIN_COSINE and is at least ``margin``
    faster than every qualifying candidate that is safer (``SAFETY``); the fastest qualifying one is
    chosen. The safest measured candidate always qualifies, so there is always an answer.
    ``allowed`` limits the candidates (e.g. to the int8 ones when int8 was asked for).
    """
    allowed = set(measured if allowed is None else allowed)
    eligible = {label: m for label, m in measured.items() if label in allowed and m.agrees(label)}
    if not eligible:
        raise RetrieverError(f"no encoder backend among {', '.join(sorted(allowed)) or 'those installed'} agrees "
                             f"with PyTorch fp32 within {MIN_COSINE} on this machine; choose one with --backend")
    qualified: dict[str, str] = {}
    for label in sorted(eligible, key=lambda name: SAFETY[name]):
        speed = eligible[label].docs_per_second
        safer = [other for other in qualified if SAFETY[other] < SAFETY[label]]
        if all(speed >= eligible[other].docs_per_second * (1 + margin) for other in safer):
            qualified[label] = ", ".join(f"{speed / eligible[o].docs_per_second:.2f}x {o}" for o in safer)
    chosen = max(qualified, key=lambda name: eligible[name].docs_per_second)
    refused = [f"{label} (cosine {m.min_cosine:.4f})" if m.error is None else f"{label} ({m.error})"
               for label, m in measured.items() if label in allowed and label not in eligible]
    speeds = ", ".join(f"{label} {m.docs_per_second:.1f}" for label, m in eligible.items())
    reason = f"fastest agreeing candidate ({speeds} docs/s)"
    if qualified[chosen]:
        reason += f"; {qualified[chosen]}"
    passed_over = [label for label in eligible if label not in qualified
                   and eligible[label].docs_per_second > eligible[chosen].docs_per_second]
    if passed_over:
        reason += f"; {', '.join(passed_over)} faster by less than {margin:.0%} than a safer candidate"
    if refused:
        reason += f"; outside the agreement bound: {', '.join(refused)}"
    return chosen, reason


def candidates(quantize: str | None = None) -> list[str]:
    """The installed backends and precisions (``quantize`` limits them), safest first."""
    labels = [backend_label(b, q) for b in BACKENDS for q in QUANTIZATIONS if not (b == "torch" and q != "none")]
    return sorted((label for label in labels if backend_installed(*parse_backend_label(label))
                   and (quantize is None or parse_backend_label(label)[1] == quantize)), key=lambda n: SAFETY[n])


# the cache --------------------------------------------------------------------------------------------
def probe_texts() -> list[str]:
    """The shipped probe: one passage per paragraph of ``probe.txt`` (comment lines dropped)."""
    paragraphs = PROBE_FILE.read_text(encoding="utf-8").split("\n\n")
    return [" ".join(p.split()) for p in paragraphs if p.strip() and not p.lstrip().startswith("#")]


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes that encode (read from package metadata, nothing imported)."""
    from importlib import metadata

    versions = {}
    for name in RUNTIMES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def choice_key(weights_fingerprint: str, facts: Mapping[str, Any], runtimes: Mapping[str, str],
               probe: list[str], calibration: str | None = None) -> str:
    """What the winner depends on, hashed: CPU model, ISA flags, caps, cores, model, runtimes, probe, rule and
    the static int8 calibration (its texts and recipe; None: the shipped one, ``calibration_digest()``)."""
    parts = {"cpu": facts["cpu"], "flags": sorted(facts["flags"]), "caps": dict(sorted(facts["caps"].items())),
             "cores": facts["cores"], "model": weights_fingerprint, "runtimes": dict(sorted(runtimes.items())),
             "probe": hashlib.sha256("\0".join(probe).encode()).hexdigest()[:12], "rule": RULE,
             "calibration": calibration or calibration_digest()}  # a new int8 recipe is another candidate
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def choices_dir(exports: Path | None = None) -> Path:
    return (exports or exports_root()) / CHOICES_DIR


def read_choice(key: str, exports: Path | None = None) -> dict[str, Any] | None:
    path = choices_dir(exports) / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_choice(record: dict[str, Any], exports: Path | None = None) -> Path:
    """Write the record atomically (two processes choosing at once both leave one whole file)."""
    folder = choices_dir(exports)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['key']}.json"
    staging = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    staging.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(staging, path)
    return path


def cached_choices(exports: Path | None = None) -> list[dict[str, Any]]:
    """Every cached choice, newest first (what ``retriever doctor`` lists)."""
    records = []
    for path in sorted(choices_dir(exports).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("measured_at", ""), reverse=True)


# measuring --------------------------------------------------------------------------------------------
def _variant(reference: Encoder, label: str) -> Encoder:
    """``reference`` (loaded once) run another way: saves loading and fingerprinting the model per candidate."""
    backend, quantize = parse_backend_label(label)
    encoder = copy.copy(reference)
    encoder.backend, encoder.quantize = backend, quantize
    encoder.device = resolve_device(reference.requested_device, backend)
    encoder.calibration = calibration_digest() if encoder.needs_calibration else None  # the export indexes use
    encoder._runtime, encoder._pool, encoder.export_made = None, None, False
    return encoder


def measure(reference: Encoder, labels: list[str], texts: list[str], rounds: int = ROUNDS,
            report: Callable[[str], None] = lambda _: None) -> dict[str, Measurement]:
    """Time each candidate on ``texts`` (rounds interleaved, best kept) and compare it with ``reference``.

    The first pass of each is untimed (export, compilation, kernels made for new shapes) and gives the
    vectors compared with PyTorch fp32; then up to ``rounds`` timed passes, each round over every candidate
    in turn, so that a busy moment of the machine does not fall on one candidate only. A candidate
    ``CONTENDER`` times slower than the fastest agreeing one after a round is not timed again: no later
    pass would make it the choice, which is the fastest qualifying candidate.

    ``reference`` is the PyTorch fp32 encoder. A candidate that fails (an export error) is recorded
    with its error and left out of the choice.
    """
    encoders: dict[str, Encoder] = {}
    prepared: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for label in labels:
        encoder = reference if label == "torch" else _variant(reference, label)
        started = time.perf_counter()
        report(f" {label}")
        try:
            encoder.prepare()  # export (static int8: on the shipped calibration set) unless cached, load, compile
            # an untimed first pass: kernels for these shapes are made on first use; its vectors are compared
            vectors[label] = encoder.encode_documents(texts)
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is reported, not fatal
            errors[label] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report(" (failed)")
            continue
        encoders[label], prepared[label] = encoder, time.perf_counter() - started
    truth = vectors.get("torch")
    worst = {label: 1.0 if truth is None else float((vectors[label] * truth).sum(axis=1).min()) for label in encoders}
    agreeing = [label for label in encoders if worst[label] >= MIN_COSINE[parse_backend_label(label)[1]]]
    report("; timing")
    best = dict.fromkeys(encoders, float("inf"))
    timing = list(encoders)
    for _ in range(rounds):
        for label in timing:
            started = time.perf_counter()
            encoders[label].encode_documents(texts)
            best[label] = min(best[label], time.perf_counter() - started)
        fastest = min((best[label] for label in agreeing), default=0.0)
        timing = [label for label in timing if best[label] <= fastest * CONTENDER]
    measured = {}
    for label in labels:
        if label in errors:
            measured[label] = Measurement(0.0, 0.0, error=errors[label])
            continue
        measured[label] = Measurement(round(len(texts) / best[label], 2), round(worst[label], 5),
                                      round(prepared[label], 2))
    report(": " + ", ".join(f"{label} {m.docs_per_second:.1f}/s" for label, m in measured.items() if not m.error))
    return measured


class _ProgressLine:
    """One line on stderr, written as the measurement goes: what is being chosen, each result, the choice."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(text)
            sys.stderr.flush()


def measure_choice(reference: Encoder, key: str, facts: Mapping[str, Any], runtimes: Mapping[str, str],
                   probe: list[str], progress: bool = True, exports: Path | None = None) -> dict[str, Any]:
    """Measure every installed candidate now, choose, cache and return the record."""
    labels = candidates()
    line = _ProgressLine(progress)
    line(f"choosing the encoder backend for {reference.name} on this CPU ({facts['runs_as']}; once per model and "
         f"machine): preparing")
    started = time.perf_counter()
    measured = measure(reference, labels, probe, report=line)
    chosen, reason = choose(measured)
    seconds = round(time.perf_counter() - started, 2)
    line(f" -> {chosen} ({seconds:.1f} s)\n")
    record = {
        "key": key, "model": reference.name, "weights_fingerprint": reference.weights_fingerprint,
        "chosen": chosen, "reason": reason, "rule": RULE,
        "candidates": {label: asdict(m) for label, m in measured.items()},
        "cpu": dict(facts), "runtimes": dict(runtimes), "probe_texts": len(probe), "seconds": seconds,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_choice(record, exports)
    return record


def auto_choice(reference: Encoder, quantize: str | None = None, progress: bool = True, remeasure: bool = False,
                exports: Path | None = None) -> dict[str, Any]:
    """The backend choice for ``reference``'s model on this machine: cached, or measured now.

    Returns the cached record with ``chosen`` and ``reason`` for the quantization asked for (None: any)
    and ``measured_now`` saying whether this call measured.
    """
    exports = exports or reference.exports  # the choice is kept beside the exports it measured
    facts, runtimes, probe = cpu_facts(), runtime_versions(), probe_texts()
    key = choice_key(reference.weights_fingerprint, facts, runtimes, probe)
    record = None if remeasure else read_choice(key, exports)
    measured_now = record is None
    if record is None:
        record = measure_choice(reference, key, facts, runtimes, probe, progress, exports)
    if quantize is not None:
        measured = {label: Measurement(**m) for label, m in record["candidates"].items()}
        allowed = [label for label in measured if parse_backend_label(label)[1] == quantize]
        if not allowed:
            raise RetrieverError(f"--quantize {quantize} needs the onnx or openvino backend: "
                                 "pip install 'retriever[onnx]' or 'retriever[openvino]'")
        record = {**record, "quantize_asked": quantize}
        record["chosen"], record["reason"] = choose(measured, allowed)
    return {**record, "measured_now": measured_now}


# building an encoder ---------------------------------------------------------------------------------
def make_encoder(model: str, backend: str | None = None, quantize: str | None = None, device: str = "auto",
                 workers: int = 1, progress: bool = True, **options: Any) -> Encoder:
    """The Encoder for a new index or a benchmark: as asked, or, for ``auto`` (the default), as measured.

    An explicit backend (or ``$RETRIEVER_BACKEND``) is used as is and nothing is measured. ``auto`` on an
    accelerator (CUDA, MPS) is PyTorch there. The chosen encoder carries the record (``backend_choice``),
    which its ``describe()`` writes into the index manifest.
    """
    backend, quantize = resolve_backend(backend, quantize)
    if backend != AUTO:
        return Encoder(model, backend=backend, quantize=quantize or "none", device=device, workers=workers, **options)
    if quantize is not None:
        check_backend("onnx", quantize)
    reference = Encoder(model, device=device, **options)
    if reference.device != "cpu":
        reference.workers = workers
        reference.backend_choice = {"chosen": "torch", "reason": f"accelerator ({reference.device})"}
        return reference
    record = auto_choice(reference, quantize, progress)
    chosen = record.pop("chosen")
    encoder = reference if chosen == "torch" else _variant(reference, chosen)
    encoder.workers = workers
    encoder.backend_choice = {"chosen": chosen, **{k: v for k, v in record.items() if k != "key"}}
    return encoder

