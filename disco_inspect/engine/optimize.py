"""`train_token`: the Discriminative-Class-Token optimisation loop (paper Sec. 3)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..config import DiscoConfig
from ..errors import DiscoInspectError
from ..io import shareable_source, write_json
from ..models.fingerprint import classifier_fingerprint
from ..models.pipelines import describe_pipeline
from .objectives import make_objective, resolve_objective
from .records import accuracy_summary, image_records
from .run_folder import RunFolder, save_png
from .sampling import decode, denoise, encode, image_size, initial_noise, seed_generators, uses_cfg
from .token import ClassToken
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
    """Raise unless ``pipe`` has the parts a DisCo run needs (SD 1.x/2.x, Turbo, LCM, SDXL base: a tokenizer and
    text encoder; SDXL's second pair too). A pipeline without the first pair (the SDXL refiner) is refused by name."""
    parts = ["tokenizer", "text_encoder", "unet", "vae", "scheduler"]
    if getattr(pipe, "text_encoder_2", None) is not None:
        parts += ["tokenizer_2"]
    for part in parts:
        if getattr(pipe, part, None) is None:
            raise DiscoInspectError(
                f"{type(pipe).__name__} has no `{part}`; disco-inspect needs a text-to-image pipeline with "
                f"{', '.join(parts)} (SD 1.x/2.x, Turbo, LCM or SDXL base; load_pipeline(...) gives one)."
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
    """Whether a finished run stopped at its ``max_iters`` and ``cfg`` allows more iterations (training goes on)."""
    return state.get("stopped") == "max_iters" and int(state["next_step"]) < cfg.max_iters


@dataclass
class _LoopState:
    """What the training loop carries from one iteration to the next (``state.pt`` records it)."""

    next_step: int = 0
    best_loss: float = math.inf
    best_step: int = -1
    patience_left: int = 0
    seed_offset: int = 0
    """Added to the seeds after a divergence (``reseed_on_divergence``)."""
    stopped: str | None = None
    best_vec: torch.Tensor | None = field(default=None, repr=False)
    """The best embedding so far (judged on the validation iterations)."""


@dataclass
class _Iteration:
    """One iteration's forward and backward pass: what the loop judges, records and writes."""

    step: int
    t0: float
    images: torch.Tensor
    losses: torch.Tensor
    loss: float
    grad_norm: float
    judged: torch.Tensor
    """The embedding the images were made with (before the optimiser step)."""
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    validation: bool


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
        self.state = _LoopState()
        """The loop's latest state: what an interrupt reports."""

    # ------------------------------------------------------------------------------------------
    def run(self, saved: dict[str, Any] | None) -> TokenRun:
        """Train (fresh, or resumed from a run folder's ``saved`` state); on Ctrl-C raise :class:`RunInterrupted`."""
        cfg, pipe = self.cfg, self.pipe
        # 1. the token, its optimiser and the loop's starting state
        token = ClassToken(pipe, cfg.token, cfg.initializer)
        opt = torch.optim.AdamW(
            [token.vector], lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, eps=cfg.eps
        )
        start = self.state = self._start(token, opt, saved)
        # 2. the pipeline: gradient checkpointing, the unconditional embedding of guidance
        if cfg.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        self.uncond = None
        if uses_cfg(pipe, cfg.guidance_scale):
            with torch.no_grad():
                self.uncond = encode(pipe, [""])
        best_vec = start.best_vec  # what the pipeline holds on return, unless the loop finishes
        try:
            # 3. the baseline images, and the objective they select (``auto``)
            self._baseline()
            self.objective = self._make_objective()
            # 4. the optimisation loop
            final = self._loop(token, opt, start)
            best_vec = final.best_vec
        except KeyboardInterrupt as e:
            where = f"; `{self.folder.path}` resumes on the next call" if self.folder is not None else ""
            logger.warning("Interrupted after %d finished iteration(s)%s.", len(self.trajectory), where)
            # the partial run: the loop's latest state, with the best embedding this session started from
            partial = self._result(token, replace(self.state, stopped="interrupted", best_vec=start.best_vec))
            raise RunInterrupted(partial) from e
        finally:
            token.set(best_vec)
            token.detach()
            if cfg.gradient_checkpointing:
                pipe.unet.disable_gradient_checkpointing()
        # 5. the result
        return self._result(token, final)

    def _start(
        self, token: ClassToken, opt: torch.optim.Optimizer, saved: dict[str, Any] | None
    ) -> _LoopState:
        """The loop's starting state: fresh, or restored from ``saved`` (with the token, optimiser and trajectory)."""
        if saved is None:
            return _LoopState(patience_left=self.cfg.patience, best_vec=token.initial.clone())
        token.set(saved["vector"])
        opt.load_state_dict(saved["optimizer"])
        self.trajectory = self.folder.read_trajectory() if self.folder else []
        return _LoopState(
            next_step=saved["next_step"],
            best_loss=saved["best_loss"],
            best_step=saved["best_step"],
            patience_left=saved["patience_left"],
            seed_offset=saved["seed_offset"],
            best_vec=saved["best_vector"].clone(),
        )

    def _make_objective(self) -> Any:
        """The objective ``cfg.objective`` names (``auto`` resolved by the baseline's mean target probability)."""
        cfg = self.cfg
        name = resolve_objective(cfg.objective, self.baseline.get("target_prob_mean"))
        if name != cfg.objective:
            logger.info(
                "Objective %r -> %r (baseline mean p(target) %.3f).",
                cfg.objective,
                name,
                self.baseline.get("target_prob_mean", float("nan")),
            )
        return make_objective(name, self.target)

    # ------------------------------------------------------------------------------------------
    def _forward(self, prompts: list[str], seeds: list[int], grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of ``prompts`` on ``seeds`` and the classifier's logits (with gradients if ``grad``)."""
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
        """Score the prompts without the token (or read ``baseline.json`` of a resumed run)."""
        cfg = self.cfg
        if self.folder is not None and (self.folder.path / "baseline.json").exists():
            self.baseline = json.loads((self.folder.path / "baseline.json").read_text())
            return
        prompts, seeds = cfg.prompts(self.class_name, with_token=False), cfg.seeds()
        images, logits = self._forward(prompts, seeds, grad=False)
        records = image_records(logits, self.target, self.clf.label_names, seeds, prompts)
        self.baseline = {"items": records, **accuracy_summary(records, self.target)}
        self.baseline_images = images.detach().cpu()
        if self.folder is not None:
            if cfg.save_images:
                for j, img in enumerate(images):
                    save_png(self.folder.image_path("baseline", j), img, cfg.image_save_size)
            write_json(self.folder.path / "baseline.json", self.baseline)

    def _loop(self, token: ClassToken, opt: torch.optim.Optimizer, state: _LoopState) -> _LoopState:
        """Iterate from ``state`` until a stop; returns the final state."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(
            total=cfg.max_iters,
            initial=state.next_step,
            disable=not self.progress,
            desc=f"DisCo {self.class_name}",
            unit="it",
        )
        try:
            while state.stopped is None:
                if state.next_step >= cfg.max_iters:
                    return replace(state, stopped="max_iters")
                # 1. forward and backward pass on this iteration's seeds
                it = self._iterate(token, opt, state)
                # 2. judge the embedding the images were made with: best so far, patience, stops
                state, improved = self._judge(state, it)
                # 3. the optimiser step, unless the loop stops here
                if state.stopped is None:
                    state = self._advance(token, opt, state, it)
                self.state = state
                # 4. record and write the iteration
                record = self._record(token, it, improved)
                self.last_images = it.images.detach().cpu()
                self._persist(record, it.judged, improved, token, opt, state)
                self.trajectory.append(record)
                state = self.state = replace(state, next_step=it.step + 1)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{it.loss:.3f}",
                    acc=f"{it.summary['accuracy']:.2f}",
                    p=f"{it.summary['target_prob_mean']:.3f}",
                )
        finally:
            bar.close()
        return state

    def _iterate(self, token: ClassToken, opt: torch.optim.Optimizer, state: _LoopState) -> _Iteration:
        """Generate and classify this iteration's images with the token, backpropagate the loss, clip the gradient."""
        cfg = self.cfg
        step = state.next_step
        t0 = time.perf_counter()
        seeds = cfg.iteration_seeds(step, state.seed_offset)
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
        return _Iteration(
            step=step,
            t0=t0,
            images=images,
            losses=losses,
            loss=loss.item(),
            grad_norm=grad_norm,
            judged=judged,
            records=records,
            summary=accuracy_summary(records, self.target),
            # candidates are compared on the same seeds only (with a seed pool: the iterations that use the
            # first subset, the baseline's seeds); the other iterations train but are not judged
            validation=cfg.is_validation_step(step, state.seed_offset),
        )

    def _judge(self, state: _LoopState, it: _Iteration) -> tuple[_LoopState, bool]:
        """The state after judging ``it`` (best embedding, patience, accuracy/patience stop); whether it improved."""
        cfg = self.cfg
        improved = it.validation and it.loss < state.best_loss
        if improved:
            state = replace(
                state,
                best_loss=it.loss,
                best_step=it.step,
                patience_left=cfg.patience,
                best_vec=it.judged.clone(),
            )
        elif it.validation:
            state = replace(state, patience_left=state.patience_left - 1)
        if it.validation and it.summary["accuracy"] > cfg.accuracy_threshold:
            return replace(state, stopped="accuracy"), improved
        if state.patience_left < 0:
            return replace(state, stopped="patience"), improved
        return state, improved

    def _advance(
        self, token: ClassToken, opt: torch.optim.Optimizer, state: _LoopState, it: _Iteration
    ) -> _LoopState:
        """Step the optimiser (also on the last allowed step, so that a later, longer run continues seamlessly);
        returns the state after it: seeds shifted on divergence, the ``max_iters`` stop."""
        cfg = self.cfg
        opt.step()
        token.sync()
        if cfg.reseed_on_divergence and it.loss > 2 * state.best_loss:
            state = replace(state, seed_offset=state.seed_offset + cfg.n_images)
        if it.step + 1 >= cfg.max_iters:
            state = replace(state, stopped="max_iters")
        return state

    def _record(self, token: ClassToken, it: _Iteration, improved: bool) -> dict[str, Any]:
        """The iteration's trajectory record."""
        return {
            "step": it.step,
            "loss": it.loss,
            "losses": [float(v) for v in it.losses.detach()],
            **it.summary,
            "items": it.records,
            "token_norm": float(it.judged.norm()),
            "token_dist": float((it.judged - token.initial).norm()),
            "grad_norm": it.grad_norm,
            "best": improved,
            "validation": it.validation,
            "seconds": time.perf_counter() - it.t0,
        }

    def _persist(
        self,
        record: dict[str, Any],
        judged: torch.Tensor,
        improved: bool,
        token: ClassToken,
        opt: torch.optim.Optimizer,
        state: _LoopState,
    ) -> None:
        """Write one finished iteration; ``state.pt`` last, so a crash before it redoes the step."""
        folder, cfg = self.folder, self.cfg
        if folder is None:
            return
        step = record["step"]
        if cfg.save_images and self.last_images is not None:
            for j, img in enumerate(self.last_images):
                save_png(folder.image_path(step, j), img, cfg.image_save_size)
        token.save(folder.token_path(step), judged)
        folder.append_trajectory(record)
        if improved:
            token.save(folder.token_path(), judged)
        done = state.stopped is not None
        folder.save_state(
            {
                "next_step": step + 1,
                "vector": token.vector.detach().clone(),
                "optimizer": opt.state_dict(),
                "best_loss": state.best_loss,
                "best_step": state.best_step,
                "best_vector": state.best_vec.clone(),
                "patience_left": state.patience_left,
                "seed_offset": state.seed_offset,
                "initial": token.initial.clone(),
                "stopped": state.stopped,
                "done": done,
            }
        )
        if done:
            write_json(
                folder.path / "result.json",
                {
                    "stopped": state.stopped,
                    "best_step": state.best_step,
                    "best_loss": state.best_loss,
                    "steps": step + 1,
                },
            )

    def _result(self, token: ClassToken, state: _LoopState) -> TokenRun:
        """The :class:`TokenRun` of the session so far."""
        return TokenRun(
            token=self.cfg.token,
            target=self.target,
            class_name=self.class_name,
            config=self.cfg,
            embedding=state.best_vec.clone(),
            initial_embedding=token.initial.clone(),
            best_step=int(state.best_step),
            stopped=state.stopped or "interrupted",
            trajectory=list(self.trajectory),
            baseline=self.baseline,
            run_dir=self.folder.path if self.folder else None,
            last_images=self.last_images,
            baseline_images=self.baseline_images,
            pipeline=describe_pipeline(self.pipe),
        )
