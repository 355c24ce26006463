"""`DiscoConfig`: every hyperparameter of the DisCo token optimisation, with the paper's defaults."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DiscoInspectError
from .io import atomic_write_text

#: The paper's two training prompts (Sec. 4, "Number of prompts").
PAPER_TEMPLATES: tuple[str, ...] = (
    "A photo of a {token} {class_name}",
    "A high resolution realistic image of a {token} {class_name}",
)


class ConfigMixin:
    """The one config pattern (dataclasses): checked on creation (:meth:`validate`), ``to_dict``/``from_dict`` (unknown
    keys are an error naming them), ``replace`` (a validated copy), ``save``/``load`` as JSON.

    Used by :class:`DiscoConfig`, ``AuditSettings``, ``EditSettings`` and the world's ``WorldTrainConfig``.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one (subclasses add checks)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Inverse of :meth:`to_dict`; unknown keys raise an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise DiscoInspectError(f"Unknown {cls.__name__} keys {unknown}; valid keys are {sorted(names)}.")
        return cls(**d)

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically (a failed write leaves the previous file; parent folders are created)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read a JSON file written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise DiscoInspectError(
                f"Cannot read config `{path}`: {e}. Pass a JSON file written by disco-inspect."
            ) from e


@dataclass
class DiscoConfig(ConfigMixin):
    """Hyperparameters of :func:`disco_inspect.train_token`.

    Defaults follow the paper and the reference implementation (docs/method.md: "How this differs from the
    reference implementation"), with its bugs fixed: only the new row changes, clipping happens after
    ``backward``, the saved token is the one whose images were judged.
    """

    token: str = "<S>"
    """The new token's string."""
    initializer: str = "a"
    """Word whose embedding initialises the token (mean of its pieces if it splits)."""
    templates: tuple[str, ...] = PAPER_TEMPLATES
    """Prompt templates with ``{token}`` and ``{class_name}``; image ``j`` uses template ``j % len``."""
    n_images: int = 5
    """Images per iteration (the paper's batch size), generated in one batched forward."""
    seed: int = 35
    """Image ``j`` always uses noise seed ``seed + j`` (the same noises every iteration)."""
    seed_pool: int = 0
    """0 = the paper's fixed seeds. ``P > 0``: iteration ``t`` uses seeds ``seed + (t * n_images + j) % P``, cycling
    through a pool of P noises so the token must work across seeds (it generalises instead of fitting
    ``n_images`` particular noises)."""
    num_inference_steps: int = 30
    guidance_scale: float = 7.0
    """Classifier-free guidance against the empty prompt; ``<= 1`` disables CFG (SD-Turbo)."""
    grad_steps: int = 1
    """How many final denoising steps carry gradients (1 = the paper's gradient skipping; -1 = all)."""
    height: int | None = None
    width: int | None = None
    lr: float = 1.25e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    max_iters: int = 50
    patience: int = 15
    """Stop after this many validation iterations without a new best loss (see :meth:`is_validation_step`)."""
    accuracy_threshold: float = 0.7
    """Stop once the batch accuracy of a validation iteration is strictly above this."""
    reseed_on_divergence: bool = False
    """Reference behaviour: shift the seeds when the loss exceeds 2× the best. Off by default because
    the audit compares baseline and token images on the *same* seeds."""
    gradient_checkpointing: bool = False
    save_images: bool = True
    image_save_size: int | None = None
    """Downsample saved PNGs so their longer side is at most this (None = full size)."""
    objective: str = "toward"
    """``toward`` (cross-entropy to the class, the paper), ``margin`` (log-odds: keeps a gradient when the class is
    already recognised), ``auto`` (``margin`` when the baseline mean p(target) >= 0.9, else ``toward``) or ``away``
    (push away from the class). See :mod:`disco_inspect.engine.objectives`."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.templates = tuple(self.templates)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one."""

        def bad(name: str, value: Any, fix: str) -> DiscoInspectError:
            return DiscoInspectError(f"`{name}` = {value!r} is invalid: {fix}.")

        if not self.token or any(c.isspace() for c in self.token):
            raise bad("token", self.token, "use a non-empty string without spaces, e.g. '<S>'")
        if not self.initializer.strip():
            raise bad("initializer", self.initializer, "use a word such as 'a' or a related noun")
        if not self.templates:
            raise bad("templates", self.templates, "give at least one template")
        for t in self.templates:
            if "{token}" not in t or "{class_name}" not in t:
                raise bad("templates", t, "each template needs both '{token}' and '{class_name}'")
        positive_ints = {
            "n_images": self.n_images,
            "num_inference_steps": self.num_inference_steps,
            "max_iters": self.max_iters,
        }
        for name, v in positive_ints.items():
            if not isinstance(v, int) or v < 1:
                raise bad(name, v, "use an integer >= 1")
        if self.grad_steps != -1 and not (1 <= self.grad_steps <= self.num_inference_steps):
            raise bad(
                "grad_steps",
                self.grad_steps,
                f"use 1..{self.num_inference_steps} (num_inference_steps) or -1 for all steps",
            )
        if self.seed_pool and self.seed_pool < self.n_images:
            raise bad(
                "seed_pool", self.seed_pool, f"use 0 (fixed seeds) or at least n_images ({self.n_images})"
            )
        if self.patience < 0:
            raise bad("patience", self.patience, "use an integer >= 0")
        for name in ("lr", "eps"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise bad(name, v, "use a positive finite number")
        if self.weight_decay < 0:
            raise bad("weight_decay", self.weight_decay, "use a number >= 0")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise bad(
                "max_grad_norm", self.max_grad_norm, "use a positive number or None to disable clipping"
            )
        if not (0.0 <= self.accuracy_threshold <= 1.0):
            raise bad("accuracy_threshold", self.accuracy_threshold, "use a number in [0, 1]")
        if not self.guidance_scale >= 0:
            raise bad("guidance_scale", self.guidance_scale, "use a number >= 0 (<= 1 disables CFG)")
        for name in ("height", "width"):
            v = getattr(self, name)
            if v is not None and (v < 8 or v % 8):
                raise bad(name, v, "use a multiple of 8, or None for the pipeline's default")
        choices = (
            "toward",
            "away",
            "margin",
            "auto",
        )  # = engine.objectives.OBJECTIVE_CHOICES (a test keeps it so)
        if self.objective not in choices:
            raise bad("objective", self.objective, f"use one of {', '.join(map(repr, choices))}")

    @property
    def effective_grad_steps(self) -> int:
        """Number of denoising steps that carry gradients."""
        return self.num_inference_steps if self.grad_steps == -1 else self.grad_steps

    def prompts(self, class_name: str, with_token: bool = True) -> list[str]:
        """The ``n_images`` prompts of one iteration (baseline prompts when ``with_token`` is False)."""
        out = []
        for j in range(self.n_images):
            t = self.templates[j % len(self.templates)]
            if not with_token:
                t = t.replace("{token} ", "").replace(" {token}", "").replace("{token}", "")
            out.append(t.format(token=self.token, class_name=class_name))
        return out

    def seeds(self, offset: int = 0) -> list[int]:
        """The noise seeds of the ``n_images`` images."""
        return [self.seed + offset + j for j in range(self.n_images)]

    def iteration_seeds(self, step: int, offset: int = 0) -> list[int]:
        """The noise seeds of iteration ``step`` (see :attr:`seed_pool`)."""
        if not self.seed_pool:
            return self.seeds(offset)
        return [
            self.seed + offset + (step * self.n_images + j) % self.seed_pool for j in range(self.n_images)
        ]

    def is_validation_step(self, step: int, offset: int = 0) -> bool:
        """Whether iteration ``step`` uses the first iteration's seeds (always, without a seed pool).

        Only these iterations are judged (best token, patience, accuracy stop): comparing losses on different
        seed subsets would pick the luckiest subset, not the best token. With a pool of P seeds and
        ``n_images`` n, every ``P / gcd(P, n)``-th iteration is one.
        """
        return self.iteration_seeds(step, offset) == self.iteration_seeds(0, offset)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        d = dataclasses.asdict(self)
        d["templates"] = list(self.templates)
        d["betas"] = list(self.betas)
        return d
