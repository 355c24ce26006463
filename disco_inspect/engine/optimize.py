"""`train_token`: the Discriminative-Class-Token optimisation loop (paper Sec. 3)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ..config import DiscoConfig
from ..errors import DiscoInspectError
from ..io import shareable_source, write_json
from ..models.fingerprint import classifier_fingerprint
from ..models.pipelines import describe_pipeline
from .objectives import make_objective, resolve_objective
from .records import image_records, summarize
from .run_folder import RunFolder, save_png
from .sampling import decode, denoise, encode, image_size, initial_noise, seed_generators, uses_cfg
from .token import ClassToken, save_token
from .token_run import TokenRun

logger = logging.getLogger(__name__)


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("disco-inspect", "torch", "diffusers", "transformers"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def check_pipeline(pipe: Any) -> None:
    """Raise unless ``pipe`` has the parts a DisCo run needs."""
    for part in ("tokenizer", "text_encoder", "unet", "vae", "scheduler"):
        if getattr(pipe, part, None) is None:
            raise DiscoInspectError(
                f"The pipeline has no `{part}`; pass a Stable Diffusion pipeline with tokenizer, text_encoder, unet, "
                "vae and scheduler (load_pipeline(...) gives one)."
            )


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train_token`: every finished iteration is saved (the run folder resumes), and the
    partial :class:`TokenRun` is attached as ``run`` (``except KeyboardInterrupt as e: e.run`` in a notebook)."""

    def __init__(self, run: TokenRun) -> None:
        super().__init__(f"training interrupted after {len(run.trajectory)} iteration(s)")
        self.run = run


def run_identity(clf: Any, pipe: Any) -> dict[str, Any]:
    """What identifies the classifier and pipeline of a run: descriptions without local paths, plus the classifier's
    content fingerprint (a run is reused only for the same weights, not merely the same file path)."""
    classifier = {**clf.describe(), "fingerprint": classifier_fingerprint(clf)}
    classifier["source"] = shareable_source(classifier.get("source"))
    pipeline = describe_pipeline(pipe)
    pipeline["source"] = shareable_source(pipeline.get("source"))
    return {"classifier": classifier, "pipeline": pipeline}


def as_classifier(classifier: Any) -> Any:
    from ..models.classifiers import Classifier, load_classifier

    return classifier if isinstance(classifier, Classifier) else load_classifier(classifier)


def train_token(
    pipe: Any,
    classifier: Any,
    target: str | int,
    *,
    config: DiscoConfig | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> TokenRun:
    """Learn a token ``<S>`` such that "a photo of a <S> {class}" images are classified as ``target``.

    Args:
        pipe: a diffusers ``StableDiffusionPipeline`` (see :func:`load_pipeline`). The token is added to it
            and, on return, its embedding row holds the best embedding.
        classifier: a :class:`Classifier` or anything :func:`load_classifier` accepts.
        target: class name (case-insensitive, synonyms allowed) or index.
        config: hyperparameters (paper defaults); ``overrides`` replace single fields, e.g. ``max_iters=10``.
        out: run folder. If it holds this run already, training resumes (or the finished run is returned).
            ``None`` keeps everything in memory.
        overwrite: restart a run folder that holds a different or finished run.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`TokenRun`.

    Raises:
        RunInterrupted: (a ``KeyboardInterrupt``) on Ctrl-C, after saving every finished iteration; the partial
            run is its ``run`` attribute and calling again with the same ``out`` resumes.
    """
    cfg = config or DiscoConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    check_pipeline(pipe)
    clf = as_classifier(classifier)
    target_idx = clf.resolve_class(target)
    class_name = clf.class_name(target_idx)
    h, w = image_size(pipe, cfg.height, cfg.width)
    clf.check_output((h, w))
    meta = {
        "config": cfg.to_dict(),
        "target": {"index": target_idx, "class_name": class_name, "label": clf.label_names[target_idx]},
        **run_identity(clf, pipe),
        "image_size": [h, w],
        "versions": package_versions(),
    }
    if out is None:
        return _Trainer(pipe, clf, target_idx, class_name, cfg, (h, w), None, progress).run(None)
    fresh_folder = not Path(out).exists()
    with RunFolder(out) as folder:
        state = folder.open(meta, overwrite=overwrite)
        if state is not None and state.get("done") and not _can_extend(state, cfg):
            logger.info("Run folder %s is finished; returning it without retraining.", out)
            result = TokenRun.load(folder.path)
            result.install(pipe)
            return result
        try:
            return _Trainer(pipe, clf, target_idx, class_name, cfg, (h, w), folder, progress).run(state)
        except Exception:
            if (
                fresh_folder and folder.load_state() is None
            ):  # nothing finished: leave no half-made folder behind
                shutil.rmtree(folder.path, ignore_errors=True)
            raise


def _can_extend(state: dict[str, Any], cfg: DiscoConfig) -> bool:
    return state.get("stopped") == "max_iters" and int(state["next_step"]) < cfg.max_iters


class _Trainer:
    """One training session (fresh or resumed); holds the loop's mutable state."""

    def __init__(
        self,
        pipe: Any,
        clf: Any,
        target: int,
        class_name: str,
        cfg: DiscoConfig,
        hw: tuple[int, int],
        folder: RunFolder | None,
        progress: bool,
    ) -> None:
        self.pipe, self.clf, self.target, self.class_name, self.cfg = pipe, clf, target, class_name, cfg
        self.hw, self.folder, self.progress = hw, folder, progress
        self.objective: Any = None  # resolved once the baseline is known (``auto``)
        self.prompts = cfg.prompts(class_name)
        self.trajectory: list[dict[str, Any]] = []
        self.baseline: dict[str, Any] = {}
        self.baseline_images: torch.Tensor | None = None
        self.last_images: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------------
    def run(self, state: dict[str, Any] | None) -> TokenRun:
        cfg, pipe = self.cfg, self.pipe
        token = ClassToken(pipe, cfg.token, cfg.initializer)
        opt = torch.optim.AdamW(
            [token.vector], lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, eps=cfg.eps
        )
        s: dict[str, Any] = {
            "next_step": 0,
            "best_loss": math.inf,
            "best_step": -1,
            "patience_left": cfg.patience,
            "seed_offset": 0,
            "stopped": None,
            "done": False,
        }
        best_vec = token.initial.clone()
        if state is not None:
            token.set(state["vector"])
            opt.load_state_dict(state["optimizer"])
            s.update({k: state[k] for k in s})
            s["done"], s["stopped"] = False, None
            best_vec = state["best_vector"].clone()
            self.trajectory = self.folder.read_trajectory() if self.folder else []
        if cfg.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        self.uncond = None
        if uses_cfg(pipe, cfg.guidance_scale):
            with torch.no_grad():
                self.uncond = encode(pipe, [""])
        try:
            self._baseline()
            name = resolve_objective(cfg.objective, self.baseline.get("target_prob_mean"))
            if name != cfg.objective:
                logger.info(
                    "Objective %r -> %r (baseline mean p(target) %.3f).",
                    cfg.objective,
                    name,
                    self.baseline.get("target_prob_mean", float("nan")),
                )
            self.objective = make_objective(name, self.target)
            s, best_vec = self._loop(token, opt, s, best_vec)
        except KeyboardInterrupt as e:
            s["stopped"] = "interrupted"
            where = f"; `{self.folder.path}` resumes on the next call" if self.folder is not None else ""
            logger.warning("Interrupted after %d finished iteration(s)%s.", len(self.trajectory), where)
            partial = self._result(token, s, best_vec)
            raise RunInterrupted(partial) from e
        finally:
            token.set(best_vec)
            token.detach()
            if cfg.gradient_checkpointing:
                pipe.unet.disable_gradient_checkpointing()
        return self._result(token, s, best_vec)

    # ------------------------------------------------------------------------------------------
    def _forward(self, prompts: list[str], seeds: list[int], grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        with torch.set_grad_enabled(grad):
            cond = encode(self.pipe, prompts)
            gens = seed_generators(seeds)  # the same generators draw the noise and every stochastic step
            latents = denoise(
                self.pipe,
                cond,
                initial_noise(self.pipe, seeds, *self.hw, generators=gens),
                generators=gens,
                num_inference_steps=cfg.num_inference_steps,
                guidance_scale=cfg.guidance_scale,
                uncond=self.uncond,
                grad_steps=cfg.effective_grad_steps if grad else 0,
            )
            images = decode(self.pipe, latents)
            logits = self.clf(images)
        return images, logits

    def _baseline(self) -> None:
        cfg = self.cfg
        if self.folder is not None and (self.folder.path / "baseline.json").exists():
            self.baseline = json.loads((self.folder.path / "baseline.json").read_text())
            return
        prompts, seeds = cfg.prompts(self.class_name, with_token=False), cfg.seeds()
        images, logits = self._forward(prompts, seeds, grad=False)
        records = image_records(logits, self.target, self.clf.label_names, seeds, prompts)
        self.baseline = {"items": records, **summarize(records, self.target)}
        self.baseline_images = images.detach().cpu()
        if self.folder is not None:
            if cfg.save_images:
                for j, img in enumerate(images):
                    save_png(self.folder.image_path("baseline", j), img, cfg.image_save_size)
            write_json(self.folder.path / "baseline.json", self.baseline)

    def _loop(
        self, token: ClassToken, opt: torch.optim.Optimizer, s: dict[str, Any], best_vec: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(
            total=cfg.max_iters,
            initial=s["next_step"],
            disable=not self.progress,
            desc=f"DisCo {self.class_name}",
            unit="it",
        )
        try:
            while s["stopped"] is None:
                step = s["next_step"]
                if step >= cfg.max_iters:
                    s["stopped"] = "max_iters"
                    break
                t0 = time.perf_counter()
                seeds = cfg.iteration_seeds(step, s["seed_offset"])
                opt.zero_grad(set_to_none=True)
                images, logits = self._forward(self.prompts, seeds, grad=True)
                losses = self.objective(logits)
                loss = losses.mean()
                if not torch.isfinite(loss):
                    raise DiscoInspectError(
                        f"The loss is not finite ({loss.detach().item()}) at step {step}; nothing of this step was written. "
                        "Lower `lr`, keep the pipeline in float32 on CPU, and check the classifier returns finite logits."
                    )
                loss.backward()
                if token.vector.grad is None:
                    raise DiscoInspectError(
                        "No gradient reached the token: the classifier must be differentiable with respect to its input "
                        "(no argmax/thresholds, no torch.no_grad inside forward)."
                    )
                grad_norm = float(token.vector.grad.norm())
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_([token.vector], cfg.max_grad_norm)
                judged = token.vector.detach().clone()
                records = image_records(logits, self.target, self.clf.label_names, seeds, self.prompts)
                summ = summarize(records, self.target)
                loss_v = loss.item()
                # candidates are compared on the same seeds only (with a seed pool: the iterations that use the
                # first subset, the baseline's seeds); the other iterations train but are not judged
                validation = cfg.is_validation_step(step, s["seed_offset"])
                improved = validation and loss_v < s["best_loss"]
                if improved:
                    s["best_loss"], s["best_step"], s["patience_left"] = loss_v, step, cfg.patience
                    best_vec = judged.clone()
                elif validation:
                    s["patience_left"] -= 1
                if validation and summ["accuracy"] > cfg.accuracy_threshold:
                    s["stopped"] = "accuracy"
                elif s["patience_left"] < 0:
                    s["stopped"] = "patience"
                else:
                    # also on the last allowed step, so that a later, longer run continues seamlessly
                    opt.step()
                    token.sync()
                    if cfg.reseed_on_divergence and loss_v > 2 * s["best_loss"]:
                        s["seed_offset"] += cfg.n_images
                    if step + 1 >= cfg.max_iters:
                        s["stopped"] = "max_iters"
                record = {
                    "step": step,
                    "loss": loss_v,
                    "losses": [float(v) for v in losses.detach()],
                    **summ,
                    "items": records,
                    "token_norm": float(judged.norm()),
                    "token_dist": float((judged - token.initial).norm()),
                    "grad_norm": grad_norm,
                    "best": improved,
                    "validation": validation,
                    "seconds": time.perf_counter() - t0,
                }
                self.last_images = images.detach().cpu()
                self._persist(step, record, judged, improved, token, opt, s, best_vec)
                self.trajectory.append(record)
                s["next_step"] = step + 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss_v:.3f}", acc=f"{summ['accuracy']:.2f}", p=f"{summ['target_prob_mean']:.3f}"
                )
        finally:
            bar.close()
        return s, best_vec

    def _persist(
        self,
        step: int,
        record: dict[str, Any],
        judged: torch.Tensor,
        improved: bool,
        token: ClassToken,
        opt: torch.optim.Optimizer,
        s: dict[str, Any],
        best_vec: torch.Tensor,
    ) -> None:
        """Write one finished iteration; ``state.pt`` last, so a crash before it redoes the step."""
        folder, cfg = self.folder, self.cfg
        if folder is None:
            return
        if cfg.save_images and self.last_images is not None:
            for j, img in enumerate(self.last_images):
                save_png(folder.image_path(step, j), img, cfg.image_save_size)
        save_token(folder.token_path(step), cfg.token, judged)
        folder.append_trajectory(record)
        if improved:
            save_token(folder.token_path(), cfg.token, judged)
        done = s["stopped"] is not None
        folder.save_state(
            {
                "next_step": step + 1,
                "vector": token.vector.detach().clone(),
                "optimizer": opt.state_dict(),
                "best_loss": s["best_loss"],
                "best_step": s["best_step"],
                "best_vector": best_vec.clone(),
                "patience_left": s["patience_left"],
                "seed_offset": s["seed_offset"],
                "initial": token.initial.clone(),
                "stopped": s["stopped"],
                "done": done,
            }
        )
        if done:
            write_json(
                folder.path / "result.json",
                {
                    "stopped": s["stopped"],
                    "best_step": s["best_step"],
                    "best_loss": s["best_loss"],
                    "steps": step + 1,
                },
            )

    def _result(self, token: ClassToken, s: dict[str, Any], best_vec: torch.Tensor) -> TokenRun:
        return TokenRun(
            token=self.cfg.token,
            target=self.target,
            class_name=self.class_name,
            config=self.cfg,
            embedding=best_vec.clone(),
            initial_embedding=token.initial.clone(),
            best_step=int(s["best_step"]),
            stopped=s["stopped"] or "interrupted",
            trajectory=list(self.trajectory),
            baseline=self.baseline,
            run_dir=self.folder.path if self.folder else None,
            last_images=self.last_images,
            baseline_images=self.baseline_images,
            pipeline=describe_pipeline(self.pipe),
        )


_as_classifier = as_classifier  # the former private names, for code that imported them
_versions = package_versions
