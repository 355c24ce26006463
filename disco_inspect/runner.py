"""Run many independent (model, class) jobs: in this process one after another, or as Ray tasks.

Each job owns a folder and resumes from it (a token run continues from its last finished iteration), so the unit
of work maps onto Ray directly: :func:`run_tasks` starts a local Ray in-process by default (no cluster needed) or
joins one (``ray_address="auto"``), asks each task for one GPU when CUDA is present and otherwise for ``threads``
CPUs, and lets Ray retry a task whose worker died — the retry continues from the folder instead of restarting.
A job that raises is reported as failed with its error and the others finish. Ctrl-C cancels every task and
leaves all folders resumable. Without Ray (the ``[scale]`` extra) the same jobs run sequentially.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DiscoInspectError

logger = logging.getLogger(__name__)

#: Executors :func:`run_tasks` knows: ``auto`` (Ray when it is installed and there is more than one task or an
#: address, else sequential), ``ray`` and ``local`` (sequential, in this process).
EXECUTORS = ("auto", "ray", "local")
#: Times Ray re-runs a task whose worker process died (each retry resumes from the task's folder).
MAX_RETRIES = 3
#: File in a task's folder naming the process that runs it under Ray.
PID_FILE = ".task-pid"
#: One line printed when several tasks run sequentially because Ray is not installed.
RAY_HINT = (
    "running tasks one after another; `pip install 'disco-inspect[scale]'` runs them in parallel on Ray"
)


@dataclass(frozen=True)
class Task:
    """One independent job: audit (or evaluate) ``class_name`` of ``model`` into ``folder``."""

    model: str
    class_index: int
    class_name: str
    folder: Path

    @property
    def label(self) -> str:
        """``model/class`` for messages."""
        return f"{Path(self.model).stem if ':' not in self.model else self.model}/{self.class_name}"


@dataclass
class TaskOutcome:
    """What became of a :class:`Task`: ``status`` is ``done`` or ``failed`` (with ``error``)."""

    task: Task
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


def ray_available() -> bool:
    """True if the optional Ray dependency imports."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def choose_executor(executor: str, n_tasks: int, ray_address: str | None) -> str:
    """Resolve ``auto`` to ``ray`` or ``local``; refuse ``ray`` (or an address) without Ray installed."""
    if executor not in EXECUTORS:
        raise DiscoInspectError(f"`executor` = {executor!r} is unknown; use one of {', '.join(EXECUTORS)}.")
    have_ray = ray_available()
    if executor == "ray" or ray_address:
        if not have_ray:
            raise DiscoInspectError(
                f"{'`--ray-address`' if ray_address else 'the Ray executor'} needs Ray; install it with "
                "`pip install 'disco-inspect[scale]'` or drop the flag to run sequentially."
            )
        if executor == "local":
            raise DiscoInspectError(
                "`ray_address` joins a Ray cluster; it cannot be used with `executor='local'`."
            )
        return "ray"
    if executor == "local":
        return "local"
    if have_ray and n_tasks > 1:
        return "ray"
    if n_tasks > 1:
        logger.warning(RAY_HINT)
    return "local"


def run_tasks(
    tasks: Sequence[Task],
    job: Callable[[Task], dict[str, Any]],
    *,
    executor: str = "auto",
    workers: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    max_retries: int = MAX_RETRIES,
    progress: bool = True,
    on_done: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Run ``job(task)`` for every task and return one :class:`TaskOutcome` per task, in the tasks' order.

    Args:
        job: a picklable callable (a module-level function or a ``functools.partial`` of one) returning a
            JSON-friendly dict; it must resume from ``task.folder`` when called again for the same task.
        executor: ``auto``, ``ray`` or ``local`` (see :data:`EXECUTORS`).
        workers: tasks running at once (Ray). Default: the GPUs when CUDA is present, else the CPUs divided by
            ``threads``.
        threads: torch threads per task (each Ray task asks for that many CPUs). Default: 1 under Ray with
            several workers, else torch's own setting.
        ray_address: ``None`` starts a local Ray in this process; ``"auto"`` or ``"host:port"`` joins a cluster.
        max_retries: times Ray re-runs a task whose worker died (the retry resumes from the folder).
        on_done: called with each outcome as it finishes (e.g. to print a summary line).

    Raises:
        KeyboardInterrupt: after cancelling every running task (their folders stay resumable).
    """
    tasks = list(tasks)
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and value < 1:
            raise DiscoInspectError(
                f"`{name}` = {value} is invalid; use an integer >= 1 (or leave it unset)."
            )
    if max_retries < 0:
        raise DiscoInspectError(f"`max_retries` = {max_retries} is invalid; use an integer >= 0.")
    if not tasks:
        return []
    kind = choose_executor(executor, len(tasks), ray_address)
    if kind == "local":
        return _run_local(tasks, job, threads, progress, on_done)
    return _run_ray(tasks, job, workers, threads, ray_address, max_retries, progress, on_done)


def _error_text(e: BaseException) -> str:
    cause = getattr(e, "cause", None)  # ray.exceptions.RayTaskError carries the job's own exception
    e = cause if isinstance(cause, BaseException) else e
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def _progress_bar(n: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=n, disable=not progress, desc="tasks", unit="task")


def _run_local(
    tasks: list[Task],
    job: Callable[[Task], dict[str, Any]],
    threads: int | None,
    progress: bool,
    on_done: Callable[[TaskOutcome], None] | None,
) -> list[TaskOutcome]:
    if threads:
        import torch

        torch.set_num_threads(threads)
    outcomes = []
    bar = _progress_bar(len(tasks), progress and len(tasks) > 1)
    try:
        for task in tasks:
            start = time.perf_counter()
            try:
                outcome = TaskOutcome(task, "done", result=job(task))
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # a failed task is reported; the others still run
                if len(tasks) == 1:
                    raise
                logger.debug("task %s failed", task.label, exc_info=True)
                outcome = TaskOutcome(task, "failed", error=_error_text(e))
            outcome.seconds = time.perf_counter() - start
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))
            if on_done:
                on_done(outcome)
    finally:
        bar.close()
    return outcomes


def ray_entry(job: Callable[[Task], dict[str, Any]], task: Task, threads: int, cwd: str) -> dict[str, Any]:
    """What a Ray worker runs: the driver's working directory (when it exists here) and thread count, then
    ``job(task)``."""
    import torch

    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths in the job mean what they meant to the user
    torch.set_num_threads(threads)
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PID_FILE).write_text(str(os.getpid()))  # which process runs the task (to inspect or stop it)
    return job(task)


def _run_ray(
    tasks: list[Task],
    job: Callable[[Task], dict[str, Any]],
    workers: int | None,
    threads: int | None,
    ray_address: str | None,
    max_retries: int,
    progress: bool,
    on_done: Callable[[TaskOutcome], None] | None,
) -> list[TaskOutcome]:
    import ray
    import torch

    gpus = 1 if torch.cuda.is_available() else 0
    if threads is None:
        threads = 1 if (workers or 2) > 1 else max(1, torch.get_num_threads())
    if workers is None:
        workers = torch.cuda.device_count() if gpus else max(1, (os.cpu_count() or 1) // threads)
    started = False
    if not ray.is_initialized():
        init: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if ray_address:
            init["address"] = ray_address
        else:
            init["num_cpus"] = workers * threads
            if gpus:
                init["num_gpus"] = torch.cuda.device_count()
        logger.info(
            "starting Ray (%s)", f"joining {ray_address}" if ray_address else "local, in this process"
        )
        ray.init(**init)
        started = True
    remote = ray.remote(ray_entry).options(
        num_cpus=0 if gpus else threads, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False
    )
    cwd = os.getcwd()
    pending = list(range(len(tasks)))
    running: dict[Any, tuple[int, float]] = {}
    outcomes: dict[int, TaskOutcome] = {}
    bar = _progress_bar(len(tasks), progress)
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                running[remote.remote(job, tasks[i], threads, cwd)] = (i, time.perf_counter())
            bar.set_postfix(running=len(running), failed=sum(o.status == "failed" for o in outcomes.values()))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=5.0)
            for ref in ready:
                i, start = running.pop(ref)
                try:
                    outcome = TaskOutcome(tasks[i], "done", result=ray.get(ref))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # the job's error, or Ray giving up after max_retries
                    outcome = TaskOutcome(tasks[i], "failed", error=_error_text(e))
                outcome.seconds = time.perf_counter() - start
                outcomes[i] = outcome
                bar.update(1)
                if on_done:
                    on_done(outcome)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
        if started:
            ray.shutdown()
    return [outcomes[i] for i in range(len(tasks))]
