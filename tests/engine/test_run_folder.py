"""The run folder keeps user files safe: only a marked run is cleared, and only of what a run writes."""

import json
import os
import stat

import pytest

from disco_inspect import DiscoConfig, DiscoInspectError, train_token
from disco_inspect.engine.run_folder import RUN_MARKER, RunFolder
from disco_inspect.io import atomic_write_text

FAST = DiscoConfig(
    n_images=2,
    num_inference_steps=2,
    guidance_scale=2.0,
    max_iters=2,
    patience=10,
    accuracy_threshold=1.0,
    lr=0.05,
)


def _user_folder(path):
    path.mkdir()
    (path / "config.json").write_text('{"my": "settings"}')
    (path / "notes.txt").write_text("my notes")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2")
    return path


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_pipe, tiny_clf, tmp_path):
    folder = _user_folder(tmp_path / "mine")
    with pytest.raises(DiscoInspectError, match="not a disco-inspect run"):
        train_token(tiny_pipe, tiny_clf, "circle", config=FAST, out=folder, overwrite=True, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "notes.txt", "sub"]  # no .lock left
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "sub" / "data.csv").read_text() == "1,2"
    assert json.loads((folder / "config.json").read_text()) == {"my": "settings"}


def test_overwrite_clears_only_what_a_run_writes(tiny_pipe, tiny_clf, tmp_path):
    out = tmp_path / "run"
    train_token(tiny_pipe, tiny_clf, "circle", config=FAST, out=out, progress=False)
    assert (out / RUN_MARKER).is_file()
    (out / "my_notes.txt").write_text("keep me")
    (out / "analysis").mkdir()
    (out / "analysis" / "plot.png").write_bytes(b"png")
    old_state = (out / "state.pt").stat().st_mtime_ns
    train_token(tiny_pipe, tiny_clf, "square", config=FAST, out=out, overwrite=True, progress=False)
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert (out / "analysis" / "plot.png").read_bytes() == b"png"
    assert json.loads((out / "config.json").read_text())["target"]["class_name"] == "square"
    assert (out / "state.pt").stat().st_mtime_ns != old_state


def test_a_non_empty_unmarked_folder_is_never_a_run(tmp_path):
    folder = _user_folder(tmp_path / "mine")
    with RunFolder(folder) as run:
        with pytest.raises(DiscoInspectError, match="not a disco-inspect run"):
            run.open({"config": FAST.to_dict()}, overwrite=False)
    assert (folder / "notes.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "notes.txt", "sub"]  # no .lock left


def test_atomic_write_fsyncs_and_keeps_the_umask(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real_umask(m))
    old = real_umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        real_umask(old)
    assert path.read_text() == "hello"
    assert synced, "the file was not fsynced before it replaced the target"
    assert not calls, "atomic_write changed the process umask"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the usual permissions under umask 027


def test_the_lock_is_a_filelock(tmp_path):
    """The folder lock works on every OS (filelock), and a second writer is refused."""
    import filelock

    out = tmp_path / "locked"
    with RunFolder(out) as run:
        assert isinstance(run.lock, filelock.BaseFileLock) and run.lock.is_locked
        with pytest.raises(DiscoInspectError, match="Another disco-inspect process"):
            with RunFolder(out):
                pass
