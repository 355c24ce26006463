"""Many (model, class) tasks: sequential and on a local Ray; failures reported, killed workers resumed."""

import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from disco_inspect import runner
from disco_inspect.errors import DiscoInspectError
from disco_inspect.runner import Task, run_tasks
from disco_inspect.testing import counting_job


def _tasks(tmp_path, names=("circle", "square", "triangle")):
    return [Task("world:clean", i, n, tmp_path / f"{i}-{n}") for i, n in enumerate(names)]


def test_local_tasks_run_in_order_and_a_failure_does_not_stop_the_others(tmp_path):
    seen = []
    out = run_tasks(
        _tasks(tmp_path),
        partial(counting_job, steps=3, fail_on="square"),
        executor="local",
        progress=False,
        on_done=seen.append,
    )
    assert [o.status for o in out] == ["done", "failed", "done"]
    assert out[1].error == "ValueError: planted failure in square"
    assert out[0].result == {"class_name": "circle", "count": 3, "resumed_from": 0}
    assert [o.task.class_name for o in seen] == ["circle", "square", "triangle"]


def test_a_single_local_task_raises_its_own_error(tmp_path):
    with pytest.raises(ValueError, match="planted"):
        run_tasks(
            _tasks(tmp_path)[:1], partial(counting_job, fail_on="circle"), executor="local", progress=False
        )


def test_without_ray_several_tasks_run_sequentially_with_a_one_line_hint(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(runner, "ray_available", lambda: False)
    with caplog.at_level("WARNING", logger="disco_inspect.runner"):
        out = run_tasks(_tasks(tmp_path), partial(counting_job, steps=1), progress=False)
    assert all(o.status == "done" for o in out)
    assert [r.message for r in caplog.records] == [runner.RAY_HINT]
    with pytest.raises(DiscoInspectError, match=r"disco-inspect\[scale\]"):
        run_tasks(_tasks(tmp_path), counting_job, executor="ray")
    with pytest.raises(DiscoInspectError, match="--ray-address"):
        run_tasks(_tasks(tmp_path), counting_job, ray_address="auto")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "`workers` = 0"),
        ({"threads": -1}, "`threads` = -1"),
        ({"executor": "dask"}, "'dask'"),
    ],
)
def test_bad_runner_settings_are_one_clear_error(tmp_path, kwargs, match):
    with pytest.raises(DiscoInspectError, match=match):
        run_tasks(_tasks(tmp_path), counting_job, **kwargs)


def test_ctrl_c_stops_sequential_tasks_and_they_resume(tmp_path):
    calls = []

    def job(task):
        calls.append(task.class_name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return counting_job(task, steps=2)

    with pytest.raises(KeyboardInterrupt):
        run_tasks(_tasks(tmp_path), job, executor="local", progress=False)
    out = run_tasks(_tasks(tmp_path), partial(counting_job, steps=2), executor="local", progress=False)
    assert [o.result["resumed_from"] for o in out] == [2, 0, 0]


def test_ray_address_joins_a_cluster_instead_of_starting_one(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    seen = {}

    class Stop(Exception):
        pass

    def fake_init(**kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    with pytest.raises(Stop):
        run_tasks(_tasks(tmp_path), counting_job, ray_address="auto", threads=1)
    assert seen["address"] == "auto" and "num_cpus" not in seen  # a cluster's resources are its own
    seen.clear()
    with pytest.raises(Stop):
        run_tasks(_tasks(tmp_path), counting_job, workers=2, threads=1)
    assert "address" not in seen and seen["num_cpus"] == 2  # local: 2 workers x 1 thread


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")  # the [scale] extra; the tests above run without it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_runs_every_task_and_reports_a_failed_one(tmp_path, local_ray):
    out = run_tasks(
        _tasks(tmp_path),
        partial(counting_job, steps=2, fail_on="square"),
        workers=2,
        threads=1,
        progress=False,
    )
    assert [o.status for o in out] == ["done", "failed", "done"]
    assert "planted failure in square" in out[1].error
    pids = {int((t.folder / runner.PID_FILE).read_text()) for t in _tasks(tmp_path)}
    assert os.getpid() not in pids  # the jobs ran in Ray worker processes


def test_a_killed_ray_worker_is_retried_and_its_task_resumes(tmp_path, local_ray):
    """SIGKILL the worker mid-task: Ray re-runs the task, which continues from its folder instead of restarting."""
    tasks = _tasks(tmp_path, ("circle",))
    folder = tasks[0].folder
    box = {}
    thread = threading.Thread(
        target=lambda: box.setdefault(
            "out", run_tasks(tasks, partial(counting_job, steps=8, pause=0.5), executor="ray", progress=False)
        )
    )
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline:
        count = folder / "count.txt"
        if count.is_file() and int(count.read_text()) >= 3:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the task never got going")
    os.kill(int((folder / runner.PID_FILE).read_text()), signal.SIGKILL)
    thread.join(180)
    (outcome,) = box["out"]
    assert outcome.status == "done" and outcome.result["count"] == 8
    assert outcome.result["resumed_from"] >= 3  # continued, not restarted
    assert len(Path(folder / "starts.txt").read_text().split()) == 2  # one retry


def test_ctrl_c_cancels_every_ray_task_and_a_rerun_resumes_them(tmp_path, local_ray):
    tasks = _tasks(tmp_path, ("circle", "square"))
    job = partial(counting_job, steps=40, pause=0.25)
    sent = {}

    def interrupt_once_both_run():
        while not all((t.folder / "count.txt").is_file() for t in tasks):
            time.sleep(0.05)
        sent["at"] = time.time()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, job, executor="ray", workers=2, threads=1, progress=False)
    assert time.time() - sent["at"] < 5  # stopped at once, not after the ~10 s the tasks still needed
    done = [int((t.folder / "count.txt").read_text()) for t in tasks]
    time.sleep(1.0)
    assert [int((t.folder / "count.txt").read_text()) for t in tasks] == done  # the workers were stopped
    out = run_tasks(tasks, job, executor="ray", workers=2, threads=1, progress=False)
    assert [o.result["count"] for o in out] == [40, 40]
    assert [o.result["resumed_from"] for o in out] == done and all(0 < d < 40 for d in done)
