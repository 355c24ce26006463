"""The randomised planted-bias benchmark: cases drawn by seed, ground truth measured on rendered scenes."""

import json

import pytest

from disco_inspect import load_classifier
from disco_inspect.errors import DiscoInspectError
from disco_inspect.world.benchmarks.randomised import benchmark_summary, draw_cases, scene_reliance
from disco_inspect.world.bias import BIAS_FACTORS


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
    s = benchmark_summary(rows)
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


def test_causal_rank_orders_every_scanned_concept_by_its_effect():
    from disco_inspect.world.benchmarks.randomised import causal_rank

    def f(concept, effect, confirmed=False):
        return {"concept": concept, "intervention": {"effect": effect, "confirmed": confirmed}}

    report = {"ranked": [f("a=1", 0.5, True), f("b=1", 0.01), f("c=1", 0.08), {"concept": "d=1"}]}
    assert [causal_rank(report, c) for c in ("a=1", "c=1", "b=1", "d=1")] == [1, 2, 3, None]
    assert causal_rank({"factors": report["ranked"]}, "c=1") == 2  # FactorAudit.to_dict() works too


# --- the saturated stratum ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_pipe(new_world_pipeline):
    return new_world_pipeline()  # a token is trained on it


def test_saturated_draws_follow_the_benchmarks_distribution():
    """Rejection sampling: the saturable draws are exactly the benchmark's own draws whose pair is saturable."""
    from disco_inspect.world.benchmarks.randomised import draw_saturable

    saturable = {("square", "object=none"), ("circle", "size=large")}
    it = draw_saturable(0, saturable)
    drawn = [next(it) for _ in range(3)]
    assert all((c["class_name"], c["planted"]) in saturable for c in drawn)
    plain = [c for c in draw_cases(200, 0, clean=0) if (c["class_name"], c["planted"]) in saturable]
    assert [(c["bias"], c["train_seed"]) for c in drawn] == [(c["bias"], c["train_seed"]) for c in plain[:3]]
    assert [c["name"] for c in drawn] == ["sat00", "sat01", "sat02"]
    with pytest.raises(DiscoInspectError, match="SATURABLE_SHARE"):
        next(draw_saturable(0, set()))


def test_screen_reads_the_same_baseline_as_the_audit(world_pipe):
    """The screen's baseline p(target) is the one the audit's token run measures (so it predicts the regime)."""
    from disco_inspect import train_token
    from disco_inspect.world.benchmarks.randomised import baseline_target_prob
    from disco_inspect.world.presets import world_config

    clf = load_classifier("world:biased_circle_green")
    cfg = world_config(max_iters=1)
    run = train_token(world_pipe, clf, "circle", config=cfg, progress=False)
    assert baseline_target_prob(world_pipe, clf, "circle", cfg) == pytest.approx(
        run.baseline["target_prob_mean"], abs=1e-4
    )


def test_default_shares_find_what_the_generator_draws_by_default(world_pipe):
    from disco_inspect.world.benchmarks.randomised import SATURABLE_SHARE, default_shares

    shares = default_shares(world_pipe, n_seeds=16)
    assert set(shares) == {"circle", "square", "triangle", "cross"}
    for row in shares.values():
        assert sum(v for c, v in row.items() if c.startswith("size=")) == pytest.approx(1.0)
        assert row["object=none"] >= SATURABLE_SHARE  # the world's captions rarely ask for a co-object


def test_saturated_benchmark_audits_only_saturated_draws(tmp_path, monkeypatch):
    """Draws below the saturation threshold are screened out (listed, not audited); it stops after n audited."""
    from disco_inspect.world.benchmarks import randomised as rb

    p0 = iter([0.5, 0.95, 0.3, 0.99, 0.97])
    audited = []
    monkeypatch.setattr(
        rb, "default_shares", lambda pipe, cfg: {"square": {"object=none": 0.9, "size=small": 0.1}}
    )
    monkeypatch.setattr(
        rb, "_classifier", lambda case, folder, steps, progress, device: (None, tmp_path / "c.pt")
    )
    monkeypatch.setattr(rb, "baseline_target_prob", lambda pipe, clf, name, cfg: next(p0))

    def fake_audit(case, *a):
        audited.append(case["name"])
        return {
            **case,
            "baseline_target_prob": 0.95,
            "regime": "saturated",
            "reported": [case["planted"]],
            "confirmed": [case["planted"]],
            "real": {case["planted"]: True},
            "relied": True,
            "planted_rank": 1,
            "planted_confirmed": True,
            "planted_gap": 0.5,
        }

    monkeypatch.setattr(rb, "_audit_case", fake_audit)
    lines = []
    doc = rb.run_saturated_benchmark(2, 0, out=tmp_path, pipe=object(), echo=lines.append)
    assert audited == ["sat01", "sat03"] and [c["name"] for c in doc["screened_out"]] == ["sat00", "sat02"]
    s = json.loads((tmp_path / "saturated_benchmark.json").read_text())["summary"]
    assert s["n_draws"] == 4 and s["n_screened_out"] == 2 and s["saturated_recall@3"] == 1.0
    assert "screened out" in "\n".join(lines)
    # resumed: the screening is kept, so no classifier is trained or scored again for the screened-out draws
    trained = []
    monkeypatch.setattr(
        rb, "_classifier", lambda case, *a: trained.append(case["name"]) or (None, tmp_path / "c.pt")
    )
    monkeypatch.setattr(rb, "baseline_target_prob", lambda *a: pytest.fail("scored again"))
    again = rb.run_saturated_benchmark(2, 0, out=tmp_path, pipe=object(), echo=lines.append)
    assert [c["name"] for c in again["screened_out"]] == ["sat00", "sat02"] and trained == []
    with pytest.raises(DiscoInspectError, match="--saturated"):
        rb.run_saturated_benchmark(0, 0, out=tmp_path, pipe=object())


def test_cli_rejects_both_benchmarks_at_once(capsys):
    from disco_inspect.cli import main

    assert main(["world", "benchmark", "--random", "2", "--saturated", "2"]) == 2
    assert "--saturated" in capsys.readouterr().err


def test_benchmark_audits_against_the_reference_and_records_how(tmp_path, monkeypatch):
    """`--reference`, `--scan-scale` and `--confirm-differential` reach every case's audit and the JSON says so."""
    from disco_inspect.auditor import AuditSettings
    from disco_inspect.world.benchmarks import randomised as rb

    seen = []
    monkeypatch.setattr(
        rb, "_classifier", lambda case, folder, steps, progress, device: (None, tmp_path / "c.pt")
    )

    def fake_audit(case, classifier, pipe, out, settings, overrides, progress, reference, images=0):
        seen.append((settings, reference))
        return {
            **case,
            "baseline_target_prob": 0.5,
            "regime": "learning",
            "planted_gap": None,
            "reported": [],
            "confirmed": [],
            "real": {},
            "relied": False,
            "planted_rank": None,
            "planted_confirmed": False,
        }

    monkeypatch.setattr(rb, "_audit_case", fake_audit)
    settings = AuditSettings(scan_scale="auto", confirm_differential=True)
    rb.run_random_benchmark(
        0,
        0,
        clean=2,
        out=tmp_path,
        pipe=object(),
        settings=settings,
        reference="ref.pt",
        echo=lambda *_: None,
    )
    assert seen == [(settings, "ref.pt")] * 2
    doc = json.loads((tmp_path / "random_benchmark.json").read_text())
    assert doc["reference"] == "ref.pt" and doc["settings"]["scan_scale"] == "auto"
    assert doc["settings"]["confirm_differential"] is True
