"""Ctrl-C: state is saved, the interrupt propagates (exit 130 on the CLI), and nothing reports a half-trained token."""

import json

import pytest

from disco_inspect import DiscoConfig, train_token
from disco_inspect.cli import main
from disco_inspect.engine.optimize import RunInterrupted

FAST = DiscoConfig(
    n_images=2,
    num_inference_steps=2,
    guidance_scale=2.0,
    max_iters=6,
    patience=10,
    accuracy_threshold=1.0,
    lr=0.05,
)


def _interrupting(monkeypatch, n):
    from disco_inspect.models import classifiers

    real_forward = classifiers.Classifier.forward
    state = {"calls": 0}

    def forward(self, images):
        state["calls"] += 1
        if state["calls"] == n:
            raise KeyboardInterrupt
        return real_forward(self, images)

    monkeypatch.setattr(classifiers.Classifier, "forward", forward)


def test_train_token_saves_state_and_reraises(tiny_pipe, tiny_clf, tmp_path, monkeypatch):
    out = tmp_path / "run"
    # call 1: shape probe, 2: baseline, 3..: iterations -> interrupted during the 3rd iteration
    _interrupting(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt) as info:
        train_token(tiny_pipe, tiny_clf, "circle", config=FAST, out=out, progress=False)
    assert isinstance(info.value, RunInterrupted)
    partial = info.value.run
    assert partial.stopped == "interrupted" and len(partial.trajectory) == 2
    assert not (out / "result.json").exists(), "an interrupted run must not look finished"
    monkeypatch.undo()
    run = train_token(tiny_pipe, tiny_clf, "circle", config=FAST, out=out, progress=False)  # resumes
    assert [r["step"] for r in run.trajectory] == list(range(6)) and run.stopped == "max_iters"


def test_cli_train_exits_130_and_report_does_not_go_on(tiny_assets, tmp_path, monkeypatch, capsys):
    _interrupting(monkeypatch, 4)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            str(tiny_assets / "clf.pt"),
            "--class",
            "circle",
            "--pipeline",
            str(tiny_assets / "pipe"),
            "--out",
            str(out),
            "--steps",
            "2",
            "--n-images",
            "2",
            "--max-iters",
            "5",
            "--no-progress",
        ]
    )
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err.lower() and "resume" in err.lower()
    assert not (out / "result.json").exists()


def test_cli_report_interrupted_writes_no_report(tmp_path, monkeypatch, capsys):
    _interrupting(monkeypatch, 4)
    code = main(
        [
            "report",
            "world:clean",
            "--class",
            "circle",
            "--out",
            str(tmp_path),
            "--max-iters",
            "3",
            "--n-images",
            "2",
            "--eval-seeds",
            "4",
            "--intervention-seeds",
            "4",
            "--no-attributions",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code == 130
    assert not list(tmp_path.rglob("report.json")) and not list(tmp_path.rglob("index.html"))
    run_cfg = next(tmp_path.rglob("config.json"))
    assert json.loads(run_cfg.read_text())["target"]["class_name"] == "circle"  # the run is there to resume
