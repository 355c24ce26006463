"""`TokenRun`: the result of :func:`disco_inspect.train_token`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import DiscoConfig
from ..errors import DiscoInspectError
from .run_folder import TOKEN_FILE, RunFolder, read_jsonl
from .token import load_token, put_token


@dataclass
class TokenRun:
    """A learned class token and the recorded optimisation trajectory."""

    token: str
    target: int
    class_name: str
    config: DiscoConfig
    embedding: torch.Tensor
    """The best judged embedding (lowest loss); what ``learned_embeds.safetensors`` holds."""
    initial_embedding: torch.Tensor
    best_step: int
    stopped: str
    """Why the run ended: ``accuracy``, ``patience``, ``max_iters`` or ``interrupted``."""
    trajectory: list[dict[str, Any]]
    baseline: dict[str, Any]
    run_dir: Path | None = None
    last_images: torch.Tensor | None = field(default=None, repr=False)
    baseline_images: torch.Tensor | None = field(default=None, repr=False)
    pipeline: dict[str, Any] | None = None
    """The training pipeline as recorded in the run folder (``describe_pipeline``: scheduler, spacing, ...)."""

    @property
    def token_path(self) -> Path | None:
        """Path of the best token file (diffusers textual-inversion format)."""
        return None if self.run_dir is None else self.run_dir / TOKEN_FILE

    @property
    def steps(self) -> list[int]:
        """Recorded iteration numbers."""
        return [r["step"] for r in self.trajectory]

    def training_seeds(self) -> set[int]:
        """Every noise seed the run trained or took its baseline on (config range and recorded images)."""
        cfg = self.config
        seeds = set(range(cfg.seed, cfg.seed + max(cfg.seed_pool, cfg.n_images)))
        for record in (self.baseline, *self.trajectory):
            seeds.update(int(item["seed"]) for item in record.get("items", []))
        return seeds

    @property
    def objective(self) -> str:
        """The objective that was optimised (``auto`` resolved with the baseline's mean p(target))."""
        from .objectives import resolve_objective

        return resolve_objective(self.config.objective, self.baseline.get("target_prob_mean"))

    @property
    def regime(self) -> str:
        """``saturated`` (the classifier already recognised the baseline images) or ``learning``."""
        from .objectives import regime

        return regime(self.baseline.get("target_prob_mean"))

    def target_probs(self) -> list[float]:
        """Mean target probability over the images, per iteration."""
        return [r["target_prob_mean"] for r in self.trajectory]

    def image_paths(self, step: int | str) -> list[Path]:
        """Saved PNGs of one iteration (or ``"baseline"``)."""
        if self.run_dir is None:
            raise DiscoInspectError(
                "This run was not saved to a folder; pass `out=` to train_token to keep images."
            )
        folder = RunFolder(self.run_dir)
        return [folder.image_path(step, j) for j in range(self.config.n_images)]

    def install(self, pipe: Any) -> str:
        """Put the best embedding into ``pipe`` (added, or its row overwritten: see :func:`put_token`)."""
        source = f"Run `{self.run_dir}`" if self.run_dir is not None else "The run"
        return put_token(pipe, self.token, self.embedding, source=source)

    @classmethod
    def load(cls, run_dir: str | Path) -> TokenRun:
        """Load a run folder written by :func:`train_token` (finished or not)."""
        run_dir = Path(run_dir)
        cfg_file = run_dir / "config.json"
        if not cfg_file.is_file():
            raise DiscoInspectError(f"`{run_dir}` is not a disco-inspect run folder (no config.json).")
        meta = json.loads(cfg_file.read_text())
        config = DiscoConfig.from_dict(meta["config"])
        result = (
            json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
        )
        state = RunFolder(run_dir).load_state() or {}
        traj = [r for r in read_jsonl(run_dir / "trajectory.jsonl") if r["step"] < state.get("next_step", 0)]
        if (run_dir / TOKEN_FILE).exists():
            _, emb = load_token(run_dir / TOKEN_FILE)
        else:
            emb = state.get("initial", torch.zeros(0))
        baseline = (
            json.loads((run_dir / "baseline.json").read_text())
            if (run_dir / "baseline.json").exists()
            else {}
        )
        return cls(
            token=config.token,
            target=meta["target"]["index"],
            class_name=meta["target"]["class_name"],
            config=config,
            embedding=emb,
            initial_embedding=state.get("initial", emb),
            best_step=int(state.get("best_step", -1)),
            stopped=result.get("stopped", "unfinished"),
            trajectory=traj,
            baseline=baseline,
            run_dir=run_dir,
            pipeline=meta.get("pipeline"),
        )
