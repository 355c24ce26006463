"""Many classes and models from one command: every bad name listed before any work; a failed task is reported in
the index while the others finish; evaluate's tokens must exist; label maps are checked."""

import json

import pytest

from disco_inspect.cli import main


@pytest.fixture
def tiny(report_flags):
    """The fastest audit: one iteration, two images, four seeds, no scan and no null control."""
    return [
        *report_flags(max_iters=1, n_images=2, eval_seeds=4, intervention_seeds=4),
        "--no-scan",
        "--control-draws",
        "-1",
    ]


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
    assert code == 2 and "`--intervention-seeds` = 2" in capsys.readouterr().err


def test_a_failed_task_is_reported_in_the_index_and_the_others_finish(tmp_path, capsys, monkeypatch, tiny):
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
            *tiny,
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


def test_several_models_each_get_their_audits_and_one_index_lists_them_all(tmp_path, capsys, tiny):
    code = main(
        [
            "report",
            "world:clean",
            "--models",
            "world:biased_circle_green",
            "--classes",
            "circle",
            "--out",
            str(tmp_path),
            "--workers",
            "1",
            *tiny,
        ]
    )
    assert code == 0, capsys.readouterr().err
    for model, folder in (("clean", "clean"), ("biased_circle_green", "biased-circle-green")):
        audited = json.loads((tmp_path / folder / "0-circle" / "report.json").read_text())["audited"]
        assert audited["class_name"] == "circle" and f"{model}.pt" in audited["classifier"]["source"]
    index = (tmp_path / "index.html").read_text()
    assert 'href="clean/0-circle/index.html"' in index
    assert 'href="biased-circle-green/0-circle/index.html"' in index
    # one plotly.js beside the index, loaded by every page by a relative path instead of embedded in each
    (bundle,) = tmp_path.glob("plotly-*.min.js")
    assert bundle.stat().st_size > 1_000_000
    for folder in ("clean", "biased-circle-green"):
        page = (tmp_path / folder / "0-circle" / "index.html").read_text()
        assert f'<script src="../../{bundle.name}"></script>' in page
        assert len(page.encode()) < bundle.stat().st_size / 4


def test_in_process_tasks_load_each_model_once(tmp_path, monkeypatch, tiny):
    """The driver's class-name check and the in-process tasks share one loaded classifier per model."""
    from disco_inspect.cli import tasks

    loads = []
    real = tasks.classifier_from

    def counting(args, source):
        loads.append(source)
        return real(args, source)

    monkeypatch.setattr(tasks, "classifier_from", counting)
    argv = ["report", "world:clean", "--classes", "circle,square", "--out", str(tmp_path), "--workers", "1"]
    assert main([*argv, *tiny]) == 0
    assert loads == ["world:clean"]


def test_evaluate_many_needs_every_token_and_a_valid_label_map(tmp_path, capsys):
    code = main(["evaluate", "world:clean", "--classes", "circle,square", "--runs", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "No learned token for 2 of 2 classes" in err and "report MODEL --classes" in err
    bad_map = tmp_path / "map.json"
    bad_map.write_text("[1, 2]")
    code = main(
        ["evaluate", "world:clean", "--class", "circle", "--token-file", "x", "--label-map", str(bad_map)]
    )
    assert code == 2 and "must be a JSON object" in capsys.readouterr().err
    assert main(["evaluate", "world:clean", "--classes", "circle", "--token-file", "t.safetensors"]) == 2
    assert "`--token-file` is for one class" in capsys.readouterr().err


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


def _differences(a, b, path=""):
    """Leaf paths where two JSON documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:200]]


def _report_docs(root):
    docs = {}
    for f in sorted(root.glob("clean/*/report.json")):
        doc = json.loads(f.read_text())
        # facts of how the run went, not results: wall clock, and the model calls (a resumed task reuses its token)
        doc.pop("created"), doc.pop("timings"), doc.pop("calls")
        docs[f.parent.name] = doc
    return docs


@pytest.mark.slow
def test_killing_a_ray_worker_mid_audit_gives_the_same_reports_as_an_uninterrupted_run(
    tmp_path, report_flags
):
    """Issue 12 item 2: SIGKILL the worker that trains circle's token; Ray retries the task, which resumes its run
    folder; every report.json equals the one of a run nobody interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from disco_inspect.runner import PID_FILE

    def command(out):
        return [
            sys.executable,
            "-m",
            "disco_inspect.cli",
            "report",
            "world:clean",
            "--classes",
            "circle,square",
        ] + [
            "--out",
            str(out),
            "--workers",
            "2",
            *report_flags(max_iters=8, n_images=2, eval_seeds=4, intervention_seeds=4),
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command(tmp_path / "calm"), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        command(tmp_path / "killed"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    folder = tmp_path / "killed" / "clean" / "0-circle"
    trajectory = folder / "run" / "trajectory.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (
        trajectory.is_file() and len(trajectory.read_text().splitlines()) >= 3
    ):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.1)
    killed_pid = int((folder / PID_FILE).read_text())
    os.kill(killed_pid, signal.SIGKILL)
    output = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, output[-2000:]
    assert int((folder / PID_FILE).read_text()) != killed_pid  # Ray re-ran the task in another worker
    killed, calm = _report_docs(tmp_path / "killed"), _report_docs(tmp_path / "calm")
    assert sorted(killed) == ["0-circle", "1-square"]
    assert _differences(killed, calm) == []
    lines = trajectory.read_text().splitlines()
    assert len(lines) == 8 and [json.loads(x)["step"] for x in lines] == list(
        range(8)
    )  # resumed, none repeated
