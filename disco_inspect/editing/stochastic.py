"""The second seed paper's stochastic embeddings: VAEs whose samples give diverse edits.

:class:`EmbeddingVAE` is a *sequence-level* MLP VAE: the whole flattened embedding sequence ``[L, D]`` plus a
sinusoidal timestep embedding goes through the encoder to a Gaussian posterior; a sample of it is decoded
(with the timestep) to a residual added to the input embedding (scaled by the data's standard deviation). The
paper found token-level MLPs (one shared map per token) give uniform textures, so each token is not mapped alone.

* :class:`NullVAE` (Method 1) samples null-text embeddings. Trained on the inversion: at a random step, the
  guided DDIM step with a sampled null embedding must land on the pivot's next latent (denoising MSE), plus
  ``beta`` x KL. Samples reconstruct the image; the guidance extrapolates their differences into diverse edits.
* :class:`CondVAE` (Method 2) samples the edit prompt's embedding. Trained on the deterministic edit's kept
  latents: at a random step, one guided UNet call with the sampled embedding predicts the clean image (DDIM's
  x0), which must match the edit prompt in the concept scorer's eyes (``scorer.prompt_distance``: open_clip
  image-text distance on real pipelines, the oracle's probabilities of the caption's factors on the world),
  and, since the token's own word means nothing to a text scorer, the audited classifier's cross-entropy toward
  the class (what the token means), plus ``beta`` x KL, plus ``gamma`` x the diversity loss (eq. 3: L1 distance between the features of shuffled
  pairs of samples; ``gamma < 0`` rewards diversity; features: the classifier's penultimate layer).
  The cross-matched loss (eq. 2) is ``lam D(I'', C') + (1 - lam) D(I', C'')``. Both scorers read *text*: the
  sampled embedding ``C''`` is a perturbation of the same prompt, so its reading is the prompt's, and
  ``D(I', C'')`` (the deterministic edit's estimate against that prompt) is computed and reported but carries no
  gradient to the VAE; the paper's ablation found that term adversarial where it did (through CLIP's text tower).
  The default ``lam = 1`` keeps the term that trains.

Only the VAE's parameters are trained; the pipeline's weights stay frozen (and unchanged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError
from .inversion import Inversion, ddim_scheduler, ddim_step, guided_eps, predict_x0

logger = logging.getLogger(__name__)


def timestep_features(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal features [B, dim] of diffusion timesteps ``t`` [B] (0..1000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


class EmbeddingVAE(nn.Module):
    """Sequence-level MLP VAE over text embeddings ``[B, L, D]`` conditioned on the timestep.

    Args:
        seq_len, dim: the embedding sequence's shape.
        scale: the data's standard deviation (inputs are divided by it, residuals multiplied).
        latent, hidden, t_dim: latent size, hidden width, timestep-feature size.
        init_scale: the decoder's last layer starts at this fraction of PyTorch's default initialisation.
    """

    def __init__(
        self,
        seq_len: int,
        dim: int,
        *,
        scale: float = 1.0,
        latent: int = 32,
        hidden: int = 256,
        t_dim: int = 32,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.seq_len, self.dim, self.latent, self.t_dim = seq_len, dim, latent, t_dim
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.encoder = nn.Sequential(
            nn.Linear(seq_len * dim + t_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent + t_dim, hidden), nn.SiLU(), nn.Linear(hidden, seq_len * dim)
        )
        with (
            torch.no_grad()
        ):  # start near the input embedding: small residuals, so training begins at the edit
            self.decoder[-1].weight.mul_(init_scale)
            self.decoder[-1].bias.zero_()

    def forward(
        self, emb: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sampled embedding [B, L, D], posterior mean [B, z], log-variance [B, z]); ``noise`` [B, z] or None (mean)."""
        b = emb.shape[0]
        tf = timestep_features(t.reshape(-1).expand(b) if t.numel() == 1 else t, self.t_dim).to(emb.device)
        x = emb.float() / self.scale
        mu, logvar = self.encoder(torch.cat([x.flatten(1), tf], 1)).chunk(2, dim=1)
        logvar = logvar.clamp(-10, 10)
        z = mu if noise is None else mu + (0.5 * logvar).exp() * noise.to(mu)
        out = emb.float() + self.scale * self.decoder(torch.cat([z, tf], 1)).view(b, self.seq_len, self.dim)
        return out, mu, logvar

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)), summed over z, mean over the batch."""
        return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()

    def draws(self, n_images: int, n: int, seed: int) -> torch.Tensor:
        """Latent noise [n_images, n, z]: image ``i`` draws from ``Generator().manual_seed(seed + i)``."""
        return torch.stack(
            [
                torch.randn(n, self.latent, generator=torch.Generator().manual_seed(seed + i))
                for i in range(n_images)
            ]
        )


class NullVAE(EmbeddingVAE):
    """Method 1: samples of the per-step null-text embeddings (see the module docs)."""

    def sampler(
        self, pipe: Any, inversion: Inversion, edit_prompts: Sequence[str], n: int, seed: int
    ) -> Callable[[int, int, list[int]], dict[str, torch.Tensor]]:
        """Rows for :func:`~disco_inspect.editing.edit.edit`: ``uncond`` = VAE samples of each step's null embedding."""
        noise = self.draws(len(inversion), n, seed)
        self.eval()

        def rows(step: int, t: int, images: list[int]) -> dict[str, torch.Tensor]:
            null = inversion.null_embeddings[step][images].repeat_interleave(n, 0)
            with torch.no_grad():
                out, _, _ = self(null.to(self.scale.device), torch.tensor([t]), noise[images].flatten(0, 1))
            return {"uncond": out.cpu()}

        return rows


class CondVAE(EmbeddingVAE):
    """Method 2: samples of the edit prompt's embedding (see the module docs)."""

    def sampler(
        self, pipe: Any, inversion: Inversion, edit_prompts: Sequence[str], n: int, seed: int
    ) -> Callable[[int, int, list[int]], dict[str, torch.Tensor]]:
        """Rows for :func:`~disco_inspect.editing.edit.edit`: ``cond`` = VAE samples of the edit prompt's embedding."""
        from ..engine.sampling import encode

        with torch.no_grad():
            cond = encode(pipe, list(edit_prompts)).float().cpu()
        noise = self.draws(len(inversion), n, seed)
        self.eval()

        def rows(step: int, t: int, images: list[int]) -> dict[str, torch.Tensor]:
            c = cond[images].repeat_interleave(n, 0)
            with torch.no_grad():
                out, _, _ = self(c.to(self.scale.device), torch.tensor([t]), noise[images].flatten(0, 1))
            return {"cond": out.cpu()}

        return rows


def _check_training(steps: int, lr: float, beta: float) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise DiscoInspectError(
            f"`steps` = {steps!r} is invalid; train the VAE for a positive number of steps."
        )
    if lr <= 0 or beta < 0:
        raise DiscoInspectError(f"`lr` = {lr!r} / `beta` = {beta!r} are invalid; use lr > 0 and beta >= 0.")


def train_null_vae(
    pipe: Any,
    inversion: Inversion,
    *,
    steps: int = 150,
    batch: int = 8,
    lr: float = 1e-3,
    beta: float = 1e-3,
    latent: int = 32,
    hidden: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> tuple[NullVAE, list[dict[str, float]]]:
    """Train a :class:`NullVAE` on an inversion (denoising MSE against the pivot + ``beta`` KL); returns (vae, history)."""
    from tqdm.auto import tqdm

    from ..engine.sampling import encode

    _check_training(steps, lr, beta)
    sched = ddim_scheduler(pipe, inversion.num_inference_steps, inversion.timestep_spacing)
    n_steps, n_img = len(sched.timesteps), len(inversion)
    nulls = inversion.null_embeddings
    vae = NullVAE(nulls.shape[2], nulls.shape[3], scale=float(nulls.std()), latent=latent, hidden=hidden)
    vae.to(pipe.device)
    with torch.no_grad():
        cond = encode(pipe, inversion.prompts).float()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for it in tqdm(range(steps), desc="null-text VAE", disable=not progress, leave=False):
        k = int(torch.randint(n_steps, (1,), generator=gen))  # one timestep per update: one UNet call
        sel = torch.randint(n_img, (batch,), generator=gen)
        t = sched.timesteps[k]
        x_in = inversion.latents[n_steps - k][sel].to(pipe.device)
        target = inversion.latents[n_steps - k - 1][sel].to(pipe.device).float()
        noise = torch.randn(len(sel), vae.latent, generator=gen).to(pipe.device)
        u, mu, logvar = vae(nulls[k][sel].to(pipe.device), t.reshape(1), noise)
        x_prev = ddim_step(
            sched, guided_eps(pipe, x_in, t, cond[sel], u, inversion.guidance_scale), t, x_in.float()
        )
        x_prev = inversion.corrected(x_prev, k, sel.tolist())
        mse = F.mse_loss(x_prev.float(), target)
        kl = EmbeddingVAE.kl(mu, logvar)
        loss = mse + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": it, "mse": float(mse.detach()), "kl": float(kl.detach())})
    vae.eval()
    return vae, history


def _derangement(n: int, gen: torch.Generator) -> torch.Tensor:
    """A random permutation with no fixed point (the paper's shuffled pairs ``P_i != Q_i``)."""
    if n < 2:
        raise DiscoInspectError(
            "The diversity loss needs at least 2 samples per image; use `train_samples` >= 2."
        )
    while True:
        perm = torch.randperm(n, generator=gen)
        if not (perm == torch.arange(n)).any():
            return perm


@dataclass
class _CondData:
    """What Method 2 trains on: the edit prompts' embeddings and the deterministic edit's latents, per step."""

    pipe: Any
    inversion: Inversion
    sched: Any
    cond: torch.Tensor
    edit_prompts: Sequence[str]
    edit_latents: torch.Tensor
    first_step: int
    n_steps: int
    train_samples: int
    images_per_step: int


@dataclass
class _CondLoss:
    """Method 2's loss (eq. 4): what reads the images (scorer, classifier, features) and the terms' weights."""

    scorer: Any
    features: Callable[[torch.Tensor], torch.Tensor]
    classifier: Any
    target: int | None
    delta: float
    alpha: float
    lam: float
    beta: float
    gamma: float

    def match(self, imgs: torch.Tensor, names: list[str]) -> torch.Tensor:
        """D(image, prompt): the scorer against the prompt's words, plus (with a classifier) what the token
        means, the class as the audited classifier sees it."""
        d = self.scorer.prompt_distance(imgs, names).mean()
        if self.classifier is not None:
            d = d + self.delta * F.cross_entropy(
                self.classifier(imgs), torch.full((len(imgs),), int(self.target))
            )
        return d


def train_cond_vae(
    pipe: Any,
    inversion: Inversion,
    edit_prompts: Sequence[str],
    edit_latents: torch.Tensor,
    *,
    scorer: Any,
    features: Callable[[torch.Tensor], torch.Tensor],
    classifier: Any = None,
    target: int | None = None,
    delta: float = 1.0,
    steps: int = 100,
    late_fraction: float | None = 0.5,
    train_samples: int = 4,
    images_per_step: int = 2,
    lr: float = 1e-3,
    alpha: float = 1.0,
    lam: float = 1.0,
    beta: float = 1e-2,
    gamma: float = -0.1,
    latent: int = 32,
    hidden: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> tuple[CondVAE, list[dict[str, float]]]:
    """Train a :class:`CondVAE` (eq. 4: ``alpha`` scorer loss + ``beta`` KL + ``gamma`` diversity, ``gamma < 0``).

    Args:
        edit_prompts: the edit prompt of each inverted image (with the token).
        edit_latents: the deterministic edit's latents ``[steps + 1, B, C, h, w]`` (``EditResult.edit_latents``).
        scorer: a concept scorer with ``prompt_distance(images, prompts) -> [N]`` (differentiable).
        features: image features for the diversity loss (e.g. ``classifier_features(clf).features``).
        classifier, target, delta: the token's words mean nothing to a text scorer ("<S>" is left out); what the
            token means is what the audited classifier learned, so with a classifier the match term also holds
            ``delta`` x its cross-entropy toward ``target`` (the edits stay edits toward the class).
        lam: eq. 2's weight of ``D(I'', C')`` against the cross term ``D(I', C'')`` (see the module docs).
        train_samples: samples per image per step (N of eq. 3).
        late_fraction: train on steps from this fraction of the trajectory on (0.5: the later half, where DDIM's
            clean-image estimate is sharp enough for the scorer and the classifier to read); None = all steps.
    """
    from tqdm.auto import tqdm

    # 1. check the inputs
    _check_training(steps, lr, beta)
    _check_cond_loss(scorer, lam, gamma)
    # 2. what the VAE trains on, and its loss
    data = _cond_data(
        pipe, inversion, edit_prompts, edit_latents, late_fraction, train_samples, images_per_step
    )
    loss_fn = _CondLoss(scorer, features, classifier, target, delta, alpha, lam, beta, gamma)
    # 3. the VAE, starting near the edit prompts' embeddings
    cond = data.cond
    vae = CondVAE(cond.shape[1], cond.shape[2], scale=float(cond.std()), latent=latent, hidden=hidden).to(
        pipe.device
    )
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    # 4. train: one random late step of a few images per update
    history = []
    for it in tqdm(range(steps), desc="edit-prompt VAE", disable=not progress, leave=False):
        loss, terms = _cond_loss(data, loss_fn, vae, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": it, **terms})
    vae.eval()
    return vae, history


def _check_cond_loss(scorer: Any, lam: float, gamma: float) -> None:
    """Refuse a scorer without ``prompt_distance`` and weights outside eq. 2/eq. 4's ranges."""
    if not hasattr(scorer, "prompt_distance"):
        raise DiscoInspectError(
            f"The concept scorer {type(scorer).__name__} has no `prompt_distance`; Method 2 "
            "(`cond-vae`) needs the world's oracle scorer or an OpenClipScorer."
        )
    if not 0 <= lam <= 1:
        raise DiscoInspectError(f"`lam` = {lam!r} is invalid; use a weight in [0, 1] (eq. 2's lambda).")
    if gamma > 0:
        raise DiscoInspectError(
            f"`gamma` = {gamma!r} must be <= 0 (a negative weight rewards diverse samples)."
        )


def _cond_data(
    pipe: Any,
    inversion: Inversion,
    edit_prompts: Sequence[str],
    edit_latents: torch.Tensor,
    late_fraction: float | None,
    train_samples: int,
    images_per_step: int,
) -> _CondData:
    """The scheduler, the first step trained on and the edit prompts' embeddings of :func:`train_cond_vae`."""
    from ..engine.sampling import encode

    sched = ddim_scheduler(pipe, inversion.num_inference_steps, inversion.timestep_spacing)
    n_steps = len(sched.timesteps)
    first_step = min(int(late_fraction * n_steps), n_steps - 1) if late_fraction is not None else 0
    with torch.no_grad():
        cond = encode(pipe, list(edit_prompts)).float()
    return _CondData(
        pipe,
        inversion,
        sched,
        cond,
        edit_prompts,
        edit_latents,
        first_step,
        n_steps,
        train_samples,
        images_per_step,
    )


def _cond_loss(
    data: _CondData, loss_fn: _CondLoss, vae: CondVAE, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """One draw of eq. 4 (a random step, images and samples from ``gen``): (loss, its terms for the history)."""
    from ..engine.sampling import decode

    pipe, inversion, sched, n = data.pipe, data.inversion, data.sched, data.train_samples
    k = int(torch.randint(data.first_step, data.n_steps, (1,), generator=gen))
    t = sched.timesteps[k]
    sel = torch.randperm(len(inversion), generator=gen)[: data.images_per_step]
    c = data.cond[sel].repeat_interleave(n, 0)
    noise = torch.randn(len(c), vae.latent, generator=gen).to(pipe.device)
    c2, mu, logvar = vae(c, t.reshape(1), noise)
    x_t = data.edit_latents[k][sel].repeat_interleave(n, 0).to(pipe.device)
    null = inversion.null_embeddings[k][sel].repeat_interleave(n, 0).to(pipe.device)
    eps = guided_eps(pipe, x_t, t, c2, null, inversion.guidance_scale)
    images = decode(pipe, predict_x0(sched, eps, t, x_t))
    prompts = [data.edit_prompts[i] for i in sel.tolist() for _ in range(n)]
    l_clip = loss_fn.match(images, prompts)  # D(I'', C')
    l_cross = torch.zeros((), device=l_clip.device)
    if loss_fn.lam < 1:  # D(I', C''): the deterministic edit's estimate, read against what C'' says
        with torch.no_grad():
            det = decode(
                pipe,
                predict_x0(sched, guided_eps(pipe, x_t, t, c, null, inversion.guidance_scale), t, x_t),
            )
            l_cross = loss_fn.match(det, prompts)
    l_clip = loss_fn.lam * l_clip + (1 - loss_fn.lam) * l_cross
    feats = loss_fn.features(images).view(len(sel), n, -1)
    perm = _derangement(n, gen)
    l_div = (feats - feats[:, perm]).abs().mean()
    kl = EmbeddingVAE.kl(mu, logvar)
    loss = loss_fn.alpha * l_clip + loss_fn.beta * kl + loss_fn.gamma * l_div
    terms = {
        "match": float(l_clip.detach()),
        "cross": float(l_cross),
        "kl": float(kl.detach()),
        "diversity": float(l_div.detach()),
    }
    return loss, terms
