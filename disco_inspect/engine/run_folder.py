"""The run folder: resolved config, trajectory, images, token checkpoints, resumable state, a lock.

Layout::

    run/
      config.json           resolved config + target + classifier + pipeline (what makes a run)
      trajectory.jsonl      one JSON line per finished iteration
      baseline.json         classifier outputs on the no-token images (same seeds)
      images/baseline/NN.png, images/step_SSSS/NN.png
      tokens/step_SSSS.safetensors   the embedding that produced images/step_SSSS
      learned_embeds.safetensors     the best judged embedding (diffusers textual-inversion format)
      state.pt              optimizer + counters after the last finished iteration (atomic)
      result.json           written when the run stops

Every file is written atomically (temporary file + ``os.replace``) and an iteration counts as finished
only once ``state.pt`` says so, so a run killed at any moment resumes without repeating or losing one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..config import DiscoConfig
from ..errors import DiscoInspectError
from ..io import atomic_write, atomic_write_text, write_json

#: Config keys that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("max_iters", "patience", "accuracy_threshold", "save_images", "image_save_size")
TOKEN_FILE = "learned_embeds.safetensors"
#: Marks a folder as a disco-inspect run; only marked folders are ever cleared (``overwrite``).
RUN_MARKER = ".disco-inspect-run"
LOCK_FILE = ".lock"
#: Everything a run writes; ``overwrite`` removes exactly these (and our temporary files), nothing else.
RUN_FILES = (
    "config.json",
    "trajectory.jsonl",
    "baseline.json",
    "images",
    "tokens",
    TOKEN_FILE,
    "state.pt",
    "result.json",
)


def load_pngs(paths: list[Path]) -> torch.Tensor | None:
    """Images a run saved, ``[N, 3, H, W]`` float in [0, 1]; None if any file is missing (or no paths)."""
    import numpy as np
    from PIL import Image

    if not paths or not all(p.is_file() for p in paths):
        return None
    arrs = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths]
    return torch.stack(arrs).float() / 255


def save_png(path: Path, image: torch.Tensor, max_side: int | None = None) -> None:
    """Save one [3, H, W] image in [0, 1] as PNG (optionally downsampled), atomically."""
    from PIL import Image

    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(arr)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


class RunFolder:
    """One run's folder; use as a context manager to hold its lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock: Any = None
        self.created = False

    # -- locking -------------------------------------------------------------------------------
    def __enter__(self) -> RunFolder:
        import filelock

        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = filelock.FileLock(str(self.path / LOCK_FILE), timeout=0)
        try:
            self.lock.acquire()
        except filelock.Timeout as e:
            raise DiscoInspectError(
                f"Another disco-inspect process is writing to `{self.path}`; wait for it to finish or choose another `--out`."
            ) from e
        return self

    def __exit__(self, *exc: Any) -> None:
        """Release the lock; a folder that did not become a run (it was refused) is left as it was found."""
        if self.lock is None:
            return
        self.lock.release()
        self.lock = None
        if self.path.is_dir() and not (self.path / RUN_MARKER).exists():
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            if self.created and not any(self.path.iterdir()):
                self.path.rmdir()

    # -- what is a run -------------------------------------------------------------------------
    def is_run(self) -> bool:
        """True if the folder is marked as a disco-inspect run (or is an unmarked run of an older version:
        a config.json with ``config`` and ``target`` and nothing but run files beside it)."""
        if (self.path / RUN_MARKER).is_file():
            return True
        cfg = self.path / "config.json"
        if not cfg.is_file():
            return False
        try:
            meta = json.loads(cfg.read_text())
        except (OSError, ValueError):
            return False
        own = set(RUN_FILES) | {LOCK_FILE, RUN_MARKER}
        return (
            isinstance(meta, dict)
            and {"config", "target"} <= set(meta)
            and all(c.name in own or _is_our_tmp(c.name) for c in self.path.iterdir())
        )

    def _user_entries(self) -> list[str]:
        return sorted(c.name for c in self.path.iterdir() if c.name not in (LOCK_FILE, RUN_MARKER))

    def clear(self) -> None:
        """Remove what a run writes (and our temporary files); any other file in the folder stays."""
        if not self.is_run():
            raise DiscoInspectError(
                f"`{self.path}` is not a disco-inspect run, so `overwrite` will not clear it; choose an empty or new "
                "folder for `--out`."
            )
        for child in self.path.iterdir():
            if child.name in RUN_FILES or _is_our_tmp(child.name):
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    # -- paths ---------------------------------------------------------------------------------
    def image_path(self, step: int | str, index: int) -> Path:
        """Path of image ``index`` of ``step`` (an int, or ``"baseline"``)."""
        folder = "baseline" if step == "baseline" else f"step_{int(step):04d}"
        return self.path / "images" / folder / f"{index:02d}.png"

    def token_path(self, step: int | None = None) -> Path:
        """Best token file, or the checkpoint of ``step``."""
        return (
            self.path / TOKEN_FILE if step is None else self.path / "tokens" / f"step_{step:04d}.safetensors"
        )

    # -- opening / resuming --------------------------------------------------------------------
    def open(self, meta: dict[str, Any], overwrite: bool = False) -> dict[str, Any] | None:
        """Start or resume. Returns the saved state (None for a fresh run).

        ``meta`` holds ``config`` (a dict) and whatever else identifies the run. A folder holding a
        different run raises an error listing the differing keys, unless ``overwrite``.
        """
        cfg_file = self.path / "config.json"
        is_run = self.is_run()
        if not is_run and self._user_entries():
            raise DiscoInspectError(
                f"`out` = `{self.path}` is not empty and is not a disco-inspect run (it holds "
                f"{', '.join(self._user_entries()[:5])}); choose an empty or new folder. `overwrite` never clears a "
                "folder that is not a run."
            )
        if is_run and overwrite:
            self.clear()
        if not cfg_file.exists():
            (self.path / RUN_MARKER).write_text('{"format": 1}\n')
            write_json(cfg_file, meta)
            return None
        if not (self.path / RUN_MARKER).exists():
            (self.path / RUN_MARKER).write_text('{"format": 1}\n')  # an older version's run: mark it
        try:
            saved = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as e:
            raise DiscoInspectError(
                f"`{cfg_file}` is corrupt ({e}); delete the folder or pass `overwrite=True`."
            ) from e
        diffs = _differences(saved, meta)
        if diffs:
            raise DiscoInspectError(
                f"`out` = `{self.path}` holds a different run (differs in {', '.join(diffs)}); choose another `--out` "
                "or pass `--overwrite` to start it afresh."
            )
        write_json(cfg_file, meta)  # allowed changes (e.g. a larger max_iters) are recorded
        state = self.load_state()
        self.repair_trajectory(state["next_step"] if state else 0)
        return state

    # -- state ---------------------------------------------------------------------------------
    def save_state(self, state: dict[str, Any]) -> None:
        """Write ``state.pt`` atomically; this is what marks an iteration finished."""
        atomic_write(self.path / "state.pt", lambda tmp: torch.save(state, tmp))

    def load_state(self) -> dict[str, Any] | None:
        """The last saved state, or None."""
        f = self.path / "state.pt"
        if not f.exists():
            return None
        try:
            return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DiscoInspectError(
                f"`{f}` is unreadable ({e}); pass `--overwrite` to restart the run."
            ) from e

    # -- trajectory ----------------------------------------------------------------------------
    def append_trajectory(self, record: dict[str, Any]) -> None:
        """Append one iteration's record and fsync it."""
        with open(self.path / "trajectory.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_trajectory(self) -> list[dict[str, Any]]:
        """All complete records (a torn last line is ignored)."""
        return read_jsonl(self.path / "trajectory.jsonl")

    def repair_trajectory(self, next_step: int) -> None:
        """Keep exactly one record for each finished step ``< next_step``."""
        records = {r["step"]: r for r in self.read_trajectory() if r["step"] < next_step}
        missing = sorted(set(range(next_step)) - set(records))
        if missing:
            raise DiscoInspectError(
                f"`{self.path / 'trajectory.jsonl'}` lacks finished steps {missing[:5]}; the folder was edited by hand. "
                "Pass `--overwrite` to restart the run."
            )
        text = "".join(json.dumps(records[s]) + "\n" for s in sorted(records))
        path = self.path / "trajectory.jsonl"
        if (path.read_text() if path.exists() else "") == text:
            return

        atomic_write_text(self.path / "trajectory.jsonl", text)


def _is_our_tmp(name: str) -> bool:
    """Temporary files :func:`disco_inspect.io.atomic_write` makes for a run file (``.NAME.<12 hex>.tmp``)."""
    m = re.fullmatch(r"\.(.+)\.[0-9a-f]{12}\.tmp", name)
    return m is not None and m.group(1) in RUN_FILES


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines file, skipping a torn (unparsable) line."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _differences(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for key in sorted(set(saved) | set(new)):
        a, b = saved.get(key), new.get(key)
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            defaults = DiscoConfig().to_dict()  # a key missing from an older folder holds its default
            diffs += [
                f"config.{k}"
                for k in sorted(set(a) | set(b))
                if k not in RESUMABLE_CHANGES and a.get(k, defaults.get(k)) != b.get(k, defaults.get(k))
            ]
        elif key not in ("versions",) and a != b:
            diffs.append(key)
    return diffs
