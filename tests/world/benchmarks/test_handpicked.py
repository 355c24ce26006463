"""The planted-bias benchmark: cases, table, and (slow) the audit finding planted biases on the world."""

import pytest

from disco_inspect.errors import DiscoInspectError
from disco_inspect.world.benchmarks.handpicked import HEADER, benchmark_cases, format_row


def test_cases_cover_four_kinds_of_bias_and_a_clean_model():
    cases = benchmark_cases()
    kinds = {c["kind"] for c in cases}
    assert {"background", "texture", "object"} <= kinds and kinds & {"color", "size"} and "clean" in kinds
    assert all(c["path"].is_file() for c in cases)
    green = next(c for c in cases if c["name"] == "biased_circle_green.pt")
    assert green["class_name"] == "circle" and green["expected"] == "background=green"
    with pytest.raises(DiscoInspectError, match="clean.pt"):
        benchmark_cases(["nope.pt"])


def test_table_row_format():
    row = {
        "classifier": "clean",
        "expected": None,
        "top": None,
        "rank": None,
        "effect": 0.01,
        "q_value": 0.9,
        "intervention_effect": None,
        "confirmed": None,
        "nominated_by": None,
        "passed": True,
        "seconds": 12.0,
    }
    line = format_row(row)
    assert "none (clean)" in line and "PASS" in line and len(HEADER.split()) >= 9


@pytest.mark.slow
def test_benchmark_finds_planted_biases_and_nothing_in_the_clean_model(tmp_path):
    """Issue 'Audit' acceptance 2 (subset): two planted biases ranked first and confirmed; clean: no factor."""
    import torch

    from disco_inspect.world.benchmarks.handpicked import run_benchmark

    torch.set_num_threads(2)  # the longest test; the autouse fixture restores the thread count
    rows = run_benchmark(
        names=["biased_circle_green.pt", "biased_cross_red.pt", "clean.pt"],
        out=tmp_path,
        progress=False,
        echo=lambda _line: None,
    )
    by_name = {r["classifier"]: r for r in rows}
    for name in ("biased_circle_green", "biased_cross_red"):
        r = by_name[name]
        assert r["rank"] == 1 and r["confirmed"] and r["passed"], r
    assert by_name["clean"]["n_reported"] == 0 and by_name["clean"]["passed"], by_name["clean"]
    assert (tmp_path / "index.html").is_file() and (tmp_path / "benchmark.json").is_file()
