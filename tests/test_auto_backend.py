"""``--backend auto``: the decision rule, the cache key, reuse of a cached choice, and one real run.

The rule is tested on given measurements (which backend wins on this CPU is not the test's business);
the end-to-end run uses the tiny model and asserts only what holds on any CPU: every installed candidate
was measured, the choice agrees with PyTorch fp32 within MIN_COSINE and is what the index encodes with,
and the next build reads the cached choice instead of measuring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import Retriever
from retriever.cli import main
from retriever.encoding import auto
from retriever.encoding.auto import Measurement, candidates, choice_key, choose, make_encoder
from retriever.encoding.backends import MIN_COSINE, backend_label, default_backend
from retriever.errors import RetrieverError
from retriever.machine import capped_class, cpu_facts, isa_caps

RECORDS = [{"_id": str(i), "text": text} for i, text in enumerate([
    "cats sleep in the sun all day", "dogs love a walk in the garden",
    "the train to the coast leaves at nine", "grind the coffee before you brew the tea"])]


def measured(**speeds: float | tuple[float, float]) -> dict[str, Measurement]:
    """Measurements from label=docs/s (agreeing exactly) or label=(docs/s, min cosine); '_' stands for '-'."""
    out = {}
    for name, value in speeds.items():
        speed, cosine = value if isinstance(value, tuple) else (value, 1.0)
        out[name.replace("_", "-")] = Measurement(speed, cosine)
    return out


# the decision rule ----------------------------------------------------------------------------------
def test_the_fastest_agreeing_backend_wins_when_it_is_clearly_faster() -> None:
    chosen, reason = choose(measured(torch=10, onnx=11.5, openvino=12, onnx_int8=20, openvino_int8=25))
    assert chosen == "openvino-int8"
    assert "2.50x torch" in reason and "openvino-int8 25.0" in reason


def test_less_than_the_margin_faster_keeps_the_safer_backend() -> None:
    # the AVX2-only machine: no export is 10% faster than PyTorch, int8 is slower
    assert choose(measured(torch=19.5, onnx=21.0, openvino=21.1, onnx_int8=20.5, openvino_int8=17.9))[0] == "torch"
    # int8 is 10% faster than torch but not than the fp32 export that qualified: the fp32 export is kept
    chosen, reason = choose(measured(torch=10, onnx=12, onnx_int8=12.5))
    assert chosen == "onnx" and "onnx-int8 faster by less than 10%" in reason
    # backends of the same safety need no margin between them
    assert choose(measured(torch=10, onnx=12, openvino=12.5))[0] == "openvino"


def test_a_backend_outside_the_agreement_bound_is_never_chosen() -> None:
    int8_too_far = MIN_COSINE["int8"] - 0.005
    chosen, reason = choose(measured(torch=10, onnx=10.5, onnx_int8=(40, int8_too_far)))
    assert chosen == "torch" and "outside the agreement bound: onnx-int8" in reason
    fp32_too_far = MIN_COSINE["none"] - 0.0005  # an fp32 export is held to the fp32 bound
    assert choose(measured(torch=10, openvino=(30, fp32_too_far), openvino_int8=(20, 0.995)))[0] == "openvino-int8"
    failed = {**measured(torch=10), "onnx-int8": Measurement(0.0, 0.0, error="export failed")}
    assert choose(failed)[0] == "torch"


def test_a_quantization_asked_for_limits_the_choice() -> None:
    speeds = measured(torch=30, onnx=31, onnx_int8=20, openvino_int8=(40, 0.9))
    assert choose(speeds, allowed=["onnx-int8", "openvino-int8"])[0] == "onnx-int8"
    with pytest.raises(RetrieverError, match="no encoder backend among openvino-int8 agrees"):
        choose(speeds, allowed=["openvino-int8"])


# the cache key ----------------------------------------------------------------------------------------
FACTS = {"cpu": "Intel(R) Xeon(R) Processor", "isa": "AVX-512 VNNI", "runs_as": "AVX-512 VNNI", "caps": {},
         "flags": ["avx", "avx2", "avx512_vnni", "avx512f", "fma"], "cores": 2}
RUNTIMES = {"torch": "2.13.0", "onnxruntime": "1.32.0"}


@pytest.mark.parametrize("change", [
    {"flags": ["avx", "avx2", "fma"]},
    {"caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"}},
    {"caps": {"ATEN_CPU_CAPABILITY": "avx2"}},
    {"caps": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}},
    {"cpu": "AMD EPYC 7B13"},
    {"cores": 8},
])
def test_the_cache_key_changes_with_what_decides_the_winner(change: dict[str, Any]) -> None:
    key = choice_key("model-a", FACTS, RUNTIMES, ["probe"])
    assert choice_key("model-a", FACTS, RUNTIMES, ["probe"]) == key
    assert choice_key("model-a", {**FACTS, **change}, RUNTIMES, ["probe"]) != key


def test_the_cache_key_changes_with_the_model_runtimes_and_probe() -> None:
    key = choice_key("model-a", FACTS, RUNTIMES, ["probe"])
    assert choice_key("model-b", FACTS, RUNTIMES, ["probe"]) != key
    assert choice_key("model-a", FACTS, {**RUNTIMES, "onnxruntime": "1.33.0"}, ["probe"]) != key
    assert choice_key("model-a", FACTS, {**RUNTIMES, "openvino": "2026.4"}, ["probe"]) != key
    assert choice_key("model-a", FACTS, RUNTIMES, ["another probe"]) != key
    # a new static int8 recipe or calibration set (issue 18) is another openvino-int8 candidate: measured again
    assert choice_key("model-a", FACTS, RUNTIMES, ["probe"], calibration="0123456789ab") != key


def test_isa_caps_are_read_from_the_environment_and_lower_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert isa_caps() == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert cpu_facts()["caps"] == isa_caps()
    assert capped_class("AVX-512 VNNI + AMX", {"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "AVX2"
    assert capped_class("AVX-512 VNNI + AMX", {"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}) == "AVX-512 VNNI"
    assert capped_class("AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) == "AVX2"  # a cap never raises the class
    assert capped_class("AVX2", {"ONEDNN_MAX_CPU_ISA": "NOT_AN_ISA"}) == "AVX2"


def test_the_default_backend_is_auto_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRIEVER_BACKEND", raising=False)
    assert default_backend() == ("auto", None)
    monkeypatch.setenv("RETRIEVER_BACKEND", "onnx-int8")
    assert default_backend() == ("onnx", "int8")
    monkeypatch.setenv("RETRIEVER_BACKEND", "auto")
    assert default_backend() == ("auto", None)


# a real run -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, shared_exports: Path) -> Path:
    """A cache of the module's own, so that auto finds no choice and measures; it holds copies of the run's
    exports of the tiny model (conftest's ``shared_exports``, made there once for every file), as a cache does
    after any other use of them: what is tested here is measuring and choosing, exporting in test_encoding.py
    (about 10 s of CPU on 2 cores saved per run, the trace, four exports and an int8 calibration)."""
    import shutil

    from retriever.encoding.backends import parse_backend_label
    from retriever.encoding.encoder import Encoder
    from retriever.encoding.light import LIGHT, TOKENIZER

    folder = tmp_path_factory.mktemp("auto-exports")
    for label in candidates():
        backend, quantize = parse_backend_label(label)
        if backend == "torch":
            continue
        made = Encoder(tiny_model, backend=backend, quantize=quantize, exports=shared_exports)
        made.prepare()
        # without the light path, which the first process that loads the model writes (as after an export)
        shutil.copytree(made.export_dir, folder / made.export_dir.name, ignore=shutil.ignore_patterns(LIGHT, TOKENIZER))
    return folder


@pytest.fixture(scope="module", autouse=True)
def _auto_env(exports: Path) -> Iterator[None]:
    """For the whole module, so that its index (built once, in a module fixture) is measured in the same
    environment as every test sees: a run under ONEDNN_MAX_CPU_ISA=AVX2 recorded "AVX2" before this was so."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRIEVER_EXPORTS", str(exports))
        patch.delenv("RETRIEVER_BACKEND", raising=False)
        for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def auto_built(exports: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Retriever, str]:
    """An index built by ``retriever index`` with the default backend (auto) on a cache holding no choice, and its
    output."""
    folder = tmp_path_factory.mktemp("auto")
    for record in RECORDS:
        (folder / "docs").mkdir(exist_ok=True)
        (folder / "docs" / f"{record['_id']}.txt").write_text(record["text"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRIEVER_EXPORTS", str(exports))
        patch.delenv("RETRIEVER_BACKEND", raising=False)
        done = CliRunner().invoke(main, ["index", str(folder / "docs"), "--index", str(folder / "index"),
                                         "--model", tiny_model])
    assert done.exit_code == 0, done.output
    return Retriever.load(folder / "index"), done.output


def no_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured, though it should not have")

    monkeypatch.setattr(auto, "measure", refuse)


def test_auto_measures_every_candidate_and_encodes_with_its_choice(auto_built: tuple[Retriever, str]) -> None:
    built, stderr = auto_built
    model = built.manifest.model
    choice = model["backend_choice"]
    assert list(choice["candidates"]) == candidates()
    assert choice["chosen"] == backend_label(model["backend"], model["quantize"])
    chosen = choice["candidates"][choice["chosen"]]
    assert chosen["docs_per_second"] > 0 and chosen["min_cosine"] >= MIN_COSINE[model["quantize"]]
    assert choice["candidates"]["torch"]["min_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert choice["measured_now"] and choice["cpu"]["flags"] == cpu_facts()["flags"]
    progress = [line for line in stderr.splitlines() if "choosing the encoder backend" in line]
    assert len(progress) == 1 and f"-> {choice['chosen']}" in progress[0]  # one line, as the measuring goes
    assert f"(encoder {choice['chosen']})" in stderr
    assert built.search("cats in the sun", k=1, mode="dense")[0].doc_id == "0.txt"


def test_a_cached_choice_is_reused_without_measuring(auto_built: tuple[Retriever, str], tiny_model: str,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = auto_built[0].manifest.model["backend_choice"]
    no_measuring(monkeypatch)
    again = Retriever.build(RECORDS, index_dir=tmp_path / "again", model=tiny_model)
    choice = again.manifest.model["backend_choice"]
    assert choice["chosen"] == first["chosen"] and not choice["measured_now"]
    assert choice["candidates"] == first["candidates"]
    int8 = [label for label in candidates() if label.endswith("-int8")]
    if int8:  # --quantize int8 alone: the faster agreeing int8 backend, from the same measurements
        encoder = make_encoder(tiny_model, quantize="int8", progress=False)
        assert encoder.label in int8 and encoder.label == choose(
            {k: Measurement(**v) for k, v in first["candidates"].items()}, allowed=int8)[0]


def test_an_explicit_backend_never_measures(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_measuring(monkeypatch)
    monkeypatch.setenv("RETRIEVER_EXPORTS", str(tmp_path / "fresh-exports"))  # nothing cached: auto would measure
    built = Retriever.build(RECORDS, index_dir=tmp_path / "torch", model=tiny_model, backend="torch")
    assert built.manifest.model["backend"] == "torch" and "backend_choice" not in built.manifest.model
    monkeypatch.setenv("RETRIEVER_BACKEND", "torch")
    assert make_encoder(tiny_model).label == "torch"
    assert not (tmp_path / "fresh-exports").exists()
    with pytest.raises(AssertionError, match="measured"):
        make_encoder(tiny_model, backend="auto", progress=False)


def test_an_existing_index_is_searched_its_own_way_under_auto(auto_built: tuple[Retriever, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    built = auto_built[0]
    no_measuring(monkeypatch)
    loaded = Retriever.load(built.layout.root, backend="auto")
    assert [h.doc_id for h in loaded.search("coffee", k=2, mode="dense")] == \
        [h.doc_id for h in built.search("coffee", k=2, mode="dense")]


# what a user sees -------------------------------------------------------------------------------------
def test_info_says_why_the_backend_was_chosen(auto_built: tuple[Retriever, str]) -> None:
    built = auto_built[0]
    shown = CliRunner().invoke(main, ["info", "--index", str(built.layout.root)])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if "chosen by" in line)
    assert f"--backend auto on {cpu_facts()['runs_as']}" in line and "docs/s" in line


def test_doctor_prints_the_machine_runtimes_and_cached_choices(auto_built: tuple[Retriever, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model_name = auto_built[0].manifest.model["name"]
    shown = CliRunner().invoke(main, ["doctor"])
    assert shown.exit_code == 0, shown.output
    facts = cpu_facts()
    assert f"class: {facts['isa']}" in shown.output and "isa caps: none set" in shown.output
    assert f"candidates: {', '.join(candidates())}" in shown.output and "torch 2." in shown.output
    assert f"{model_name}: " in shown.output and "valid on this machine" in shown.output
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # capped, the cached choice no longer applies
    capped = CliRunner().invoke(main, ["doctor", "--json"])
    report = json.loads(capped.output)
    assert report["machine"]["caps"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert report["machine"]["runs_as"] == capped_class(facts["isa"], {"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert report["cached"] and not any(c["valid_here"] for c in report["cached"])


def test_doctor_measure_measures_again(tiny_model: str, auto_built: tuple[Retriever, str]) -> None:
    shown = CliRunner().invoke(main, ["doctor", "--measure", "--model", tiny_model])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line.split() for line in shown.output.splitlines() if line.split()
            and line.split()[0] in candidates()}
    assert list(rows) == candidates()
    assert all(float(row[1]) > 0 and row[4] in ("yes", "no") for row in rows.values())
    assert np.isclose(float(rows["torch"][2]), 1.0, atol=1e-4)
    assert "chosen: " in shown.output and "measured in " in shown.output
