"""A run killed with SIGKILL resumes from its folder without repeating or losing an iteration."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from disco_inspect.cli import main
from disco_inspect.engine.token import load_token

MAX_ITERS = 16


@pytest.fixture
def assets(tiny_assets):
    return tiny_assets


def _args(assets, out):
    return [
        "train",
        str(assets / "clf.pt"),
        "--class",
        "triangle",
        "--pipeline",
        str(assets / "pipe"),
        "--out",
        str(out),
        "--steps",
        "6",
        "--guidance",
        "3",
        "--n-images",
        "3",
        "--lr",
        "0.05",
        "--max-iters",
        str(MAX_ITERS),
        "--patience",
        "100",
        "--accuracy-threshold",
        "1.0",
        "--threads",
        "1",
        "--no-progress",
    ]


def _steps(out):
    return [json.loads(x)["step"] for x in (out / "trajectory.jsonl").read_text().splitlines() if x.strip()]


def test_kill_and_resume_matches_uninterrupted_run(assets, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "disco_inspect.cli", *_args(assets, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    traj = out / "trajectory.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if traj.exists() and len(traj.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").exists()
    killed_at = len(_steps(out))
    assert 0 < killed_at < MAX_ITERS

    assert main(_args(assets, out)) == 0  # resume
    assert _steps(out) == list(range(MAX_ITERS)), "every step exactly once"

    ref = tmp_path / "straight"
    assert main(_args(assets, ref)) == 0
    for name in ("learned_embeds.safetensors", f"tokens/step_{MAX_ITERS - 1:04d}.safetensors"):
        _, a = load_token(out / name)
        _, b = load_token(ref / name)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    losses = lambda o: [json.loads(x)["loss"] for x in (o / "trajectory.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(out) == pytest.approx(losses(ref), rel=1e-4)


def test_second_writer_is_refused(assets, tmp_path):
    from disco_inspect.engine.run_folder import RunFolder
    from disco_inspect.errors import DiscoInspectError

    out = tmp_path / "locked"
    with RunFolder(out):
        with pytest.raises(DiscoInspectError, match="Another disco-inspect process"):
            with RunFolder(out):
                pass


def test_torn_trajectory_line_is_repaired(assets, tmp_path):
    out = tmp_path / "torn"
    args = _args(assets, out)
    args[args.index("--max-iters") + 1] = "2"
    assert main(args) == 0
    with open(out / "trajectory.jsonl", "a") as f:
        f.write('{"step": 2, "loss": 0.')  # a crash mid-append of a step the state never finished
    args[args.index("--max-iters") + 1] = "3"
    assert main(args) == 0
    assert _steps(out) == [0, 1, 2]
