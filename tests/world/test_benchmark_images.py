"""`world benchmark --images K`: every case gets a validation split of its classifier's training distribution (the
bias at its rate, fresh seeds), and each evidence channel is judged on its own."""

import pytest

from disco_inspect.world.benchmarks.user_images import channel_summary, validation_split


def test_the_split_follows_the_training_distribution_not_the_ground_truth_scenes(tmp_path):
    from disco_inspect.editing.images import load_images
    from disco_inspect.world.oracle import load_oracle

    case = {
        "name": "case00",
        "class_name": "circle",
        "bias": "circle: background=green @ 0.99",
        "train_seed": 5,
    }
    folder = validation_split(case, 40, tmp_path / "imgs")
    files = sorted(folder.iterdir())
    assert len(files) == 40
    images = load_images(folder, 32).images
    read = load_oracle().probabilities(images)
    assert (read["shape"].argmax(1) == 0).float().mean() > 0.9  # circles
    green = (read["background"].argmax(1) == 1).float().mean()
    assert green > 0.9  # the bias at its rate: conflicting images are rare
    # written once, reused; a clean case is uniform over backgrounds
    stamp = files[0].stat().st_mtime_ns
    validation_split(case, 40, tmp_path / "imgs")
    assert files[0].stat().st_mtime_ns == stamp
    clean = validation_split({**case, "bias": None, "name": "clean0"}, 40, tmp_path / "clean")
    bg = load_oracle().probabilities(load_images(clean, 32).images)["background"].argmax(1)
    assert (bg == 1).float().mean() < 0.5


def test_each_channel_gets_its_own_recall_precision_and_clean_false_positives():
    def row(planted, sig, real):
        ch = {"significant": sig, "real": dict(zip(sig, real, strict=True))}
        return {
            "planted": planted,
            "relied": bool(planted),
            "channels": {"generated": ch, "real_data": ch, "real_edit": ch},
        }

    rows = [row("a=1", ["a=1", "b=2"], [True, False]), row("c=3", [], []), row(None, ["d=4"], [False])]
    s = channel_summary(rows)
    assert s["generated"]["recall"] == 0.5 and s["generated"]["precision"] == 0.5
    assert s["real_data"]["clean_false_positives"] == 1
    assert channel_summary([{"planted": None, "relied": False, "channels": None}]) == {}


def test_images_flag_is_checked_before_any_work(capsys):
    from disco_inspect.cli import main

    assert main(["world", "benchmark", "--images", "8"]) == 2
    assert "`--images` = 8 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["world", "benchmark", "--random", "1", "--images", "x"])


def test_candidate_rules_are_judged_on_the_stored_evidence_lines():
    from disco_inspect.world.benchmarks.user_images import rule_summary

    def line(effect, low, supports, gap):
        return {"effect": effect, "ci_low": low, "supports": supports, "gap": gap}

    def row(planted, lines):  # lines: concept -> channel -> line
        channels = {}
        for concept, per in lines.items():
            for ch, ln in per.items():
                c = channels.setdefault(ch, {"significant": [], "real": {}, "lines": {}})
                c["lines"][concept] = ln
        return {"planted": planted, "relied": bool(planted), "channels": channels}

    rows = [
        # found by the generated scan
        row(
            "a=1", {"a=1": {"generated": line(0.2, 0.1, True, 0.3), "real_edit": line(0.1, 0.05, True, 0.3)}}
        ),
        # found only by the real edits; the generated effect points the same way
        row(
            "b=1",
            {"b=1": {"generated": line(0.1, -0.1, False, 0.2), "real_edit": line(0.1, 0.04, True, 0.2)}},
        ),
        # a near-miss the edits call (gap 0.04 < 0.05), its interval just above zero, generated disagreeing
        row(
            "c=1",
            {"d=1": {"generated": line(-0.1, -0.3, False, 0.04), "real_edit": line(0.03, 0.01, True, 0.04)}},
        ),
        row(None, {"e=1": {"real_edit": line(0.1, 0.05, True, 0.0)}}),
        {
            "planted": "x=1",
            "relied": True,
            "channels": {"generated": {"significant": [], "real": {}}},
        },  # old row
    ]
    s = rule_summary(rows, real_gap=0.05)
    assert s["generated"] == {
        "recall": 1 / 3,
        "precision": 1.0,
        "n_confirmed": 1,
        "clean_confirmations": 0,
        "n_rows": 4,
        "n_rows_with_also_moved": 0,
    }
    assert s["generated or edit"]["recall"] == 2 / 3 and s["generated or edit"]["precision"] == 2 / 3
    assert s["generated or edit"]["clean_confirmations"] == 1
    assert s["generated or edit (CI low >= 0.02)"]["precision"] == 1.0
    assert s["generated or edit with generated agreeing"]["recall"] == 2 / 3
    assert s["generated or edit with generated agreeing"]["precision"] == 1.0
    assert s["two channels"]["recall"] == 1 / 3


def test_an_edit_that_also_moved_a_generated_finding_is_explained_by_it():
    """A classifier relying on the shape's colour: the edits toward a blue background also turned the shape blue
    (``also_moved``), so their effect is the colour's, which the generated scan confirms; "generated or edit"
    confirms the background falsely, the "not explained" rule does not, and keeps an edit-only finding that moved
    nothing confirmed."""
    from disco_inspect.world.benchmarks.user_images import rule_summary

    def channels(lines):
        out = {}
        for concept, per in lines.items():
            for ch, ln in per.items():
                out.setdefault(ch, {"significant": [], "real": {}, "lines": {}})["lines"][concept] = ln
        return out

    edit = {"effect": 0.4, "ci_low": 0.2, "supports": True}
    colour = {
        "color=blue": {"generated": {"effect": 0.5, "ci_low": 0.3, "supports": True, "gap": 1.0}},
        "background=blue": {
            "generated": {"effect": 0.07, "ci_low": -0.1, "supports": False, "gap": 0.03},
            "real_edit": {**edit, "also_moved": ["color=blue"], "gap": 0.03},
        },
    }
    saturated = {"object=none": {"real_edit": {**edit, "also_moved": [], "gap": 0.3}}}
    rows = [
        {"planted": "color=blue", "relied": True, "channels": channels(colour)},
        {"planted": "object=none", "relied": True, "channels": channels(saturated)},
    ]
    s = rule_summary(rows, real_gap=0.05)
    assert s["generated or edit"]["recall"] == 1.0 and s["generated or edit"]["precision"] == 2 / 3
    rule = s["generated or edit not explained by a generated finding"]
    assert rule["recall"] == 1.0 and rule["precision"] == 1.0 and rule["n_rows_with_also_moved"] == 2


def test_a_finished_case_is_not_audited_again(tmp_path, monkeypatch):
    from disco_inspect.world.benchmarks import randomised

    calls = []

    def fake(case, *a, **k):
        calls.append(case["name"])
        return {"name": case["name"], "planted": None}

    monkeypatch.setattr(randomised, "_audit_and_judge", fake)
    case = {"name": "clean0"}
    trained = []

    def classifier():
        trained.append(1)
        return None, None

    first = randomised._audit_case(case, classifier, None, tmp_path, None, None, False)
    again = randomised._audit_case(case, classifier, None, tmp_path, None, None, False)
    assert calls == ["clean0"] and again == first and "seconds" in again
    assert trained == [1]  # the kept row needs no classifier
