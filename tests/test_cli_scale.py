"""Many classes and models from one command: every bad name listed before any work; a failed task is reported in
the index while the others finish; evaluate's tokens must exist; label maps are checked."""

import pytest

from disco_inspect.cli import main

TINY = [
    "--max-iters",
    "1",
    "--n-images",
    "2",
    "--eval-seeds",
    "4",
    "--intervention-seeds",
    "4",
    "--no-attributions",
]
TINY += ["--no-progress", "--threads", "1", "--no-scan", "--control-draws", "-1"]


def test_unknown_classes_of_every_model_are_listed_at_once_before_any_work(tmp_path, capsys):
    code = main(
        [
            "report",
            "world:clean",
            "--models",
            "world:biased_circle_green",
            "--classes",
            "circle,blob,7,hexagon",
        ]
        + ["--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "'blob', '7', 'hexagon'" in err and err.count("world:") >= 2  # both models, all names, one message
    assert not any(tmp_path.iterdir())  # nothing was run or written


def test_classes_all_and_exactly_one_of_class_or_classes(tmp_path, capsys):
    from disco_inspect.cli.parser import build_parser
    from disco_inspect.cli.tasks import plan_tasks

    args = build_parser().parse_args(["report", "world:clean", "--classes", "all", "--out", str(tmp_path)])
    assert [t.folder.name for t in plan_tasks(args)] == ["0-circle", "1-square", "2-triangle", "3-cross"]
    assert main(["report", "world:clean", "--class", "circle", "--classes", "all"]) == 2
    assert "exactly one of" in capsys.readouterr().err


def test_a_bad_analysis_flag_fails_before_any_task(tmp_path, capsys):
    code = main(["report", "world:clean", "--classes", "circle,square", "--intervention-seeds", "2"])
    assert code == 2 and "`intervention_seeds` = 2" in capsys.readouterr().err


def test_a_failed_task_is_reported_in_the_index_and_the_others_finish(tmp_path, capsys, monkeypatch):
    import disco_inspect.auditor as auditor

    real = auditor.audit

    def flaky(pipe, clf, target, **kw):
        if clf.class_name(target) == "square":
            raise RuntimeError("CUDA out of memory (planted)")
        return real(pipe, clf, target, **kw)

    monkeypatch.setattr(auditor, "audit", flaky)
    code = main(
        [
            "report",
            "world:clean",
            "--classes",
            "circle,square",
            "--out",
            str(tmp_path),
            "--workers",
            "1",
            *TINY,
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "world:clean/square: FAILED (RuntimeError: CUDA out of memory (planted))" in out
    index = (tmp_path / "clean" / "index.html").read_text()
    assert (
        'href="0-circle/index.html"' in index
        and "failed: RuntimeError: CUDA out of memory (planted)" in index
    )
    assert (tmp_path / "clean" / "0-circle" / "report.json").is_file()


def test_evaluate_many_needs_every_token_and_a_valid_label_map(tmp_path, capsys):
    code = main(["evaluate", "world:clean", "--classes", "circle,square", "--runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "No learned token for 2 of 2 classes" in err and "report MODEL --classes" in err
    bad_map = tmp_path / "map.json"
    bad_map.write_text("[1, 2]")
    code = main(["evaluate", "world:clean", "--class", "circle", "--token", "x", "--label-map", str(bad_map)])
    assert code == 2 and "must be a JSON object" in capsys.readouterr().err
    assert main(["evaluate", "world:clean", "--classes", "circle", "--token", "t.safetensors"]) == 2
    assert "`--token` is for one class" in capsys.readouterr().err


def test_evaluate_with_another_model_checks_the_label_map_before_any_work(tmp_path, capsys):
    """--eval-model's classes are looked up under the label map's names; every class it lacks is listed."""
    from disco_inspect.cli.parser import build_parser
    from disco_inspect.cli.tasks import check_label_map, plan_tasks

    args = build_parser().parse_args(
        ["evaluate", "world:clean", "--classes", "all", "--eval-model", "world:biased_circle_green"]
    )
    args.out = args.runs
    tasks = plan_tasks(args)
    check_label_map(args, tasks, {})  # same label set: fine
    check_label_map(args, tasks, {"circle": "square"})  # a mapped name that exists: fine
    with pytest.raises(Exception, match=r"'circle' -> 'disc', 'cross' -> 'plus'"):
        check_label_map(args, tasks, {"circle": "disc", "cross": "plus"})
