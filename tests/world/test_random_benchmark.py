"""The randomised planted-bias benchmark: cases drawn by seed, ground truth measured on rendered scenes."""

import json

import pytest

from disco_inspect import load_classifier
from disco_inspect.world.bias import BIAS_FACTORS
from disco_inspect.world.random_benchmark import draw_cases, scene_reliance, summarize


def test_cases_are_drawn_by_seed():
    a, b, c = draw_cases(20, 7), draw_cases(20, 7), draw_cases(20, 8)
    assert a == b and a != c
    biased = [x for x in a if x["bias"]]
    assert len(biased) == 20 and len(a) == 25
    assert {x["planted"].split("=")[0] for x in biased} <= set(BIAS_FACTORS)
    assert all(0.95 <= float(x["bias"].split("@")[1]) <= 1.0 for x in biased)
    assert len({x["train_seed"] for x in a}) == 25


def test_ground_truth_is_measured_on_rendered_scenes():
    biased = scene_reliance(load_classifier("world:biased_circle_green"), "circle", n=200)
    assert biased["background=green"]["gap"] > 0.2
    clean = scene_reliance(load_classifier("world:clean"), "circle", n=200)
    assert max(v["gap"] for v in clean.values()) < 0.05


def test_summary_counts_recall_precision_and_exclusions():
    rows = [
        {
            "name": "a",
            "planted": "x=1",
            "relied": True,
            "planted_rank": 1,
            "planted_confirmed": True,
            "baseline_target_prob": 0.5,
            "real": {"x=1": True, "y=2": False},
            "confirmed": ["x=1", "y=2"],
        },
        {
            "name": "b",
            "planted": "x=2",
            "relied": True,
            "planted_rank": 3,
            "planted_confirmed": False,
            "baseline_target_prob": 0.95,
            "real": {},
            "confirmed": [],
        },
        {
            "name": "c",
            "planted": "x=3",
            "relied": False,
            "planted_rank": None,
            "planted_confirmed": False,
            "baseline_target_prob": 0.5,
            "real": {},
            "confirmed": [],
        },
        {
            "name": "d",
            "planted": None,
            "relied": False,
            "planted_rank": None,
            "planted_confirmed": False,
            "baseline_target_prob": 1.0,
            "real": {},
            "confirmed": ["z=1"],
        },
    ]
    s = summarize(rows)
    assert s["recall@1"] == 0.5 and s["recall@3"] == 1.0 and s["recall@3_confirmed"] == 0.5
    assert s["precision"] == 0.5 and s["excluded"] == ["c"] and s["clean_false_confirmations"] == 1
    assert s["saturated_recall@3"] == 1.0 and s["n_saturated"] == 1


@pytest.mark.slow
def test_random_benchmark_end_to_end(tmp_path, capsys):
    """One drawn bias and one clean classifier, through the CLI; every case's numbers are written."""
    from disco_inspect.cli import main

    assert (
        main(
            [
                "world",
                "benchmark",
                "--random",
                "1",
                "--clean",
                "1",
                "--seed",
                "3",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "random_benchmark.json").read_text())
    assert len(doc["cases"]) == 2 and doc["seed"] == 3
    case = doc["cases"][0]
    assert case["planted_gap"] is not None and case["regime"] in ("learning", "saturated")
    assert "recall@3" in doc["summary"] and (tmp_path / "case00" / "index.html").is_file()
    assert "false confirmations" in capsys.readouterr().out
