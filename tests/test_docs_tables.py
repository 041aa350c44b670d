"""Every figure in the README and docs comes from a results file (issue 19, item 4).

``benchmarks/render_tables.py`` renders the marked tables and figures from ``benchmarks/results/*.json``;
these tests fail when a rendered region no longer matches its JSON (someone edited a figure by hand, or a
benchmark wrote new results and ``make tables`` was not run), and when a table of figures was typed outside
a rendered region. Pure text and JSON: no model is loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from retriever.eval.machine import cpu_flags, isa_class, provenance

ROOT = Path(__file__).resolve().parents[1]


def _load_renderer():
    spec = importlib.util.spec_from_file_location("render_tables", ROOT / "benchmarks" / "render_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_tables"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


render_tables = _load_renderer()


def test_every_rendered_region_matches_its_json() -> None:
    assert render_tables.stale() == [], "run `make tables` (python -m benchmarks.render_tables)"


def test_no_table_of_figures_outside_a_rendered_region() -> None:
    assert render_tables.unrendered_figure_tables() == []


def test_no_figure_marker_opens_a_line() -> None:
    assert render_tables.figures_opening_a_line() == []


def test_every_table_is_rendered_somewhere_and_says_where_it_came_from() -> None:
    text = "".join(path.read_text() for path in render_tables.documents())
    for name, build in render_tables.TABLES.items():
        assert f"<!-- table: {name} -->" in text, f"table {name} is rendered nowhere"
        table = build()
        assert table.rows and table.sources
        for source in table.sources:
            line = render_tables.provenance_line(source)
            assert "date not recorded" not in line and "`not recorded`" not in line, line


def test_a_hand_edited_region_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- table: milvus-latency -->\n| mode | p50 |\n|---|---|\n| dense | 1.0 |\n<!-- /table -->\n"
                    "About <!-- fig milvus_latency.json modes/dense/p50_ratio .1f -->3.0<!-- /fig -->x slower.\n")
    problems = render_tables.stale([page])
    assert len(problems) == 1 and "milvus-latency" in problems[0] and "figure" in problems[0]
    page.write_text(render_tables.render(page.read_text()))
    assert render_tables.stale([page]) == []
    assert "| dense | 1.0 |" not in page.read_text()


def test_examples_in_code_blocks_are_left_alone(tmp_path: Path) -> None:
    text = "```markdown\n<!-- table: serve-load -->\nan example\n<!-- /table -->\n```\n"
    assert render_tables.render(text) == text


def test_an_unknown_table_name_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown table"):
        render_tables.render("<!-- table: no-such-table -->\n<!-- /table -->\n")


@pytest.mark.parametrize(("rows", "figures"), [
    ([["1", "idle", "123.8", "7 ms", "0"]], True),                     # counts and timings
    ([["flat", "1.54 GB", "2.0 GB", "local only"]], True),              # units and one word cell
    ([["**twin**", "`--lr 1e-4`", "**0.760** †", "15.9 min"]], True),   # markup and footnote signs
    ([["`POST /search`", "`{\"query\", \"k\"}` → hits"]], False),       # endpoints
    ([["`ict`", "a sentence of the document (6-48 words)", "Lee, Chang & Toutanova 2019"]], False),
    ([["kill -9", "20", "0 corrupt indexes (each loads, agrees with itself, passes check)"]], True),  # half
    ([["a", "–", ""]], False),                                          # nothing but dashes
])
def test_which_tables_count_as_figure_tables(rows: list[list[str]], figures: bool) -> None:
    assert render_tables.is_figure_table(rows) is figures


def test_a_typed_figure_table_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Words.\n\n| system | nDCG@10 |\n|---|---|\n| flat | 0.665 |\n| hybrid | 0.726 |\n")
    assert render_tables.unrendered_figure_tables([page]) == [f"{page}:3"]


@pytest.mark.parametrize(("flags", "arch", "expected"), [
    ({"avx", "avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"}, "x86_64", "AVX-512 VNNI + AMX"),
    ({"avx", "avx2", "avx512f", "avx512_vnni"}, "x86_64", "AVX-512 VNNI"),
    ({"avx", "avx2", "avx512f"}, "x86_64", "AVX-512"),
    ({"avx", "avx2", "avx_vnni"}, "x86_64", "AVX2 VNNI"),
    ({"avx", "avx2"}, "x86_64", "AVX2"),
    ({"sse4_2"}, "x86_64", "x86_64"),
    ({"asimd", "sve"}, "aarch64", "SVE"),
    ({"asimd"}, "aarch64", "NEON"),
])
def test_instruction_set_class(flags: set[str], arch: str, expected: str) -> None:
    assert isa_class(flags, arch) == expected


def test_provenance_names_command_date_and_machine() -> None:
    record = provenance(["benchmarks/scale.py", "--sizes", "10000,100000", "--note", "two words"])
    assert record["command"] == "benchmarks/scale.py --sizes 10000,100000 --note 'two words'"
    assert record["date"][:2] == "20" and record["date"].endswith("+00:00")
    assert record["machine"]["cpu"] and record["machine"]["isa"] and record["machine"]["cores"] >= 1
    assert cpu_flags("flags\t\t: fpu avx2 avx512f\n") == {"fpu", "avx2", "avx512f"}
