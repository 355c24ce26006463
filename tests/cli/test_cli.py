"""The CLI end to end on tiny components: train, generate, evaluate, help."""

import json

import pytest

from disco_inspect.cli import build_parser, main


@pytest.fixture
def assets(tiny_assets):
    return tiny_assets


def test_train_generate_evaluate(assets, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--pipeline", str(assets / "pipe"), "--threads", "1"]
    assert (
        main(
            [
                "train",
                str(assets / "clf.pt"),
                "--class",
                "Triangle",
                "--out",
                str(run),
                "--steps",
                "3",
                "--n-images",
                "2",
                "--max-iters",
                "2",
                "--guidance",
                "2",
                "--no-progress",
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "learned_embeds.safetensors" in out and "target probability" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["num_inference_steps"] == 3 and cfg["target"]["class_name"] == "triangle"

    gen = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--token-file",
                str(run),
                "--prompt",
                "a photo of a <S> triangle",
                "--seeds",
                "0-2",
                "--steps",
                "3",
                "--out",
                str(gen),
                *common,
            ]
        )
        == 0
    )
    assert sorted(p.name for p in gen.iterdir()) == ["seed_0000.png", "seed_0001.png", "seed_0002.png"]

    res = tmp_path / "acc.json"
    assert (
        main(
            [
                "evaluate",
                str(assets / "clf.pt"),
                "--class",
                "2",
                "--token-file",
                str(run),
                "--eval-seeds",
                "3",
                "--json",
                str(res),
                *common,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "baseline" in printed and "token" in printed
    data = json.loads(res.read_text())
    assert data["seeds"] == [
        1000,
        1001,
        1002,
    ]  # disjoint from the training seeds and set(data["token"]) >= {"accuracy", "top5_accuracy"}


def test_help_lists_defaults():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["train"]
    text = sub.format_help()
    assert "--grad-steps" in text and "default: 1" in text and "--trust-pickle" in text


def test_bad_seeds_flag(assets, capsys):
    assert (
        main(
            [
                "generate",
                "--token-file",
                "x.safetensors",
                "--prompt",
                "p",
                "--seeds",
                "a-b",
                "--pipeline",
                str(assets / "pipe"),
            ]
        )
        == 2
    )
    assert "--seeds" in capsys.readouterr().err


def test_report_on_a_non_world_pipeline_needs_a_scorer(assets, capsys):
    assert (
        main(
            [
                "report",
                str(assets / "clf.pt"),
                "--class",
                "triangle",
                "--pipeline",
                str(assets / "pipe"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--clip-weights" in err[0]


def test_report_rejects_bad_class_lists(capsys):
    assert main(["report", "world:clean", "--class", "circle", "--classes", "circle,square"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["report", "world:clean", "--classes", "circle,hexagon"]) == 2
    assert "hexagon" in capsys.readouterr().err
    assert main(["report", "world:no_such", "--class", "circle"]) == 2
    assert "world:biased_circle_green" in capsys.readouterr().err


def test_report_several_classes_on_the_world_into_one_index(tmp_path, capsys, report_flags):
    """`--classes` audits each class into its own report and links them from one index page; a second call
    reuses the finished runs."""
    args = [
        "report",
        "world:clean",
        "--classes",
        "circle,square",
        "--out",
        str(tmp_path),
        *report_flags(max_iters=2, n_images=4, eval_seeds=8, intervention_seeds=4),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    root = tmp_path / "clean"
    index = (root / "index.html").read_text()
    assert 'href="0-circle/index.html"' in index and 'href="1-square/index.html"' in index and "index:" in out
    for folder, cls in (("0-circle", "circle"), ("1-square", "square")):
        doc = json.loads((root / folder / "report.json").read_text())
        assert doc["audited"]["class_name"] == cls and doc["attribution"] is None
    state = root / "0-circle" / "run" / "state.pt"
    mtime = state.stat().st_mtime_ns
    assert main(args) == 0
    assert state.stat().st_mtime_ns == mtime

    # Table 1 over the same classes, each with the token its audit learned (one task per class)
    capsys.readouterr()
    evaluate = [
        "evaluate",
        "world:clean",
        "--classes",
        "circle,square",
        "--runs",
        str(tmp_path),
        "--eval-seeds",
        "4",
    ]
    table = tmp_path / "table1.json"
    assert main([*evaluate, "--json", str(table), "--workers", "1", "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| circle | 4 |" in printed and "| square | 4 |" in printed and "**mean of 2**" in printed
    doc = json.loads(table.read_text())
    assert [r["class_name"] for r in doc["table"]["rows"]] == ["circle", "square"]
    assert all(c["seeds"] == [1000, 1001, 1002, 1003] for c in doc["classes"])  # past the training seeds
    assert (
        len(list((root / "0-circle" / "evaluations").glob("*.json"))) == 1
    )  # cached: a rerun does not generate

    # Table 3 on top: FID without/with the token against rendered scenes, in the world oracle's features
    from disco_inspect.engine.run_folder import save_png
    from disco_inspect.world.scenes import generate_scenes

    for name in ("circle", "square"):
        for i, img in enumerate(generate_scenes(6, seed=5, fixed={"shape": name}).images):
            save_png(tmp_path / "real" / name / f"{i}.png", img)
    fid_args = ["--fid-real", str(tmp_path / "real"), "--fid-features", "oracle", "--json", str(table)]
    assert main([*evaluate, *fid_args, "--workers", "1", "--no-progress", "--threads", "1"]) == 0
    assert "FID (oracle features) without token" in capsys.readouterr().out
    rows = json.loads(table.read_text())["fid_table"]["rows"]
    assert list(rows) == ["circle", "square", "mean"]
    assert all(rows[c]["n_real"] == 6 and rows[c]["n_generated"] == 4 for c in ("circle", "square"))
    assert all(r["baseline"] >= 0 and r["token"] >= 0 for r in rows.values())
    assert main([*evaluate, "--fid-real", str(tmp_path / "nowhere"), "--workers", "1"]) == 2
