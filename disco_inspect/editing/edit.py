"""Edit inverted images with the learned class token: prompt-to-prompt from the inverted noise and null embeddings.

Each image's batch holds its source row (source prompt, tuned null embeddings: the reconstruction), the
deterministic edit (the token inserted before the class name: "a photo of a circle" -> "a photo of a <S>
circle") and ``samples`` stochastic edits. All rows start from the image's inverted ``x_T`` and are denoised
together with DDIM, so the edit rows can take the source row's attention maps (see
:mod:`~disco_inspect.editing.controller`). Stochastic edits follow the second seed paper:

* ``noise`` (the lower bound): Gaussian noise on the token's embedding, ``sigma`` times its RMS;
* ``null-vae`` (Method 1): null embeddings sampled from a VAE trained to reconstruct (:class:`NullVAE`);
* ``cond-vae`` (Method 2): edit-prompt embeddings sampled from a VAE trained with the concept scorer's
  cross-matched loss, KL and a diversity loss (:class:`CondVAE`).

The deterministic edit uses no randomness; samples draw from one generator per image seeded with ``seed + i``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import DiscoInspectError
from .edit_cache import EditCache, tensor_identity
from .inversion import Inversion, ddim_scheduler, ddim_step, guided_eps

logger = logging.getLogger(__name__)

#: Stochastic-edit methods: none (deterministic edit only), the noise lower bound, and the paper's two VAEs.
METHODS = ("none", "noise", "null-vae", "cond-vae")
#: Default fractions of the steps during which the edit rows take the source's attention maps (prompt-to-prompt).
CROSS_REPLACE = 0.8
SELF_REPLACE = 0.4
#: Default noise on the token's embedding for ``noise``, as a multiple of the embedding's RMS.
NOISE_SIGMA = 0.5
#: Rows one UNet call of :func:`edit_to_prompts` holds by default before guidance doubles them: a batch of images,
#: each with its source row and one edit row per prompt of the pass.
MAX_ROWS = 32


@dataclass
class EditResult:
    """What :func:`edit` made, CPU float32 images in [0, 1].

    Attributes:
        sources: the inverted source images [B, 3, H, W].
        reconstructions: the source rows sampled back [B, 3, H, W] (with the tuned null embeddings).
        edits: the deterministic edits [B, 3, H, W].
        samples: the stochastic edits [B, N, 3, H, W] (None for ``method="none"``).
        source_prompts, edit_prompts, names: per image.
        method: the stochastic method; ``settings``: every knob used (JSON-ready).
        edit_latents: the deterministic edit's latent at every step [steps + 1, B, C, h, w] (Method 2 trains on it).
        vae: the trained VAE of ``null-vae``/``cond-vae`` (reuse it with ``edit(..., vae=...)``).
    """

    sources: torch.Tensor
    reconstructions: torch.Tensor
    edits: torch.Tensor
    samples: torch.Tensor | None
    source_prompts: list[str]
    edit_prompts: list[str]
    names: list[str]
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    edit_latents: torch.Tensor | None = None
    vae: Any = None
    vae_history: list[dict[str, float]] = field(default_factory=list)


def insert_token(prompt: str, token: str, class_name: str) -> str:
    """``"a photo of a circle"`` -> ``"a photo of a <S> circle"``: the token before the class name's last mention."""
    if token in prompt:
        return prompt
    matches = list(re.finditer(rf"(?<!\w){re.escape(class_name)}(?!\w)", prompt, flags=re.IGNORECASE))
    if not matches:
        raise DiscoInspectError(
            f"The source prompt {prompt!r} does not name the class {class_name!r}; the token goes before the class "
            f"name. Use a prompt such as 'a photo of a {class_name}' (`--prompt`)."
        )
    at = matches[-1].start()
    return f"{prompt[:at]}{token} {prompt[at:]}"


def resolve_token(pipe: Any, token: Any) -> tuple[str, torch.Tensor]:
    """Install ``token`` in ``pipe`` and return (token string, embedding).

    ``token``: a token file (``learned_embeds.safetensors``), a run folder holding one, a ``(string, vector)``
    pair, or the string of a token already in the pipeline. A token learned on another pipeline (another
    embedding width) is refused before any work.
    """
    from ..engine.run_folder import TOKEN_FILE
    from ..engine.token import load_token, put_token, read_token_rows

    if isinstance(token, tuple):
        name, vector = token
        return put_token(pipe, name, torch.as_tensor(vector).float()), torch.as_tensor(
            vector
        ).float().reshape(-1)
    if isinstance(token, (str, Path)) and (Path(token).is_file() or Path(token).is_dir()):
        path = Path(token)
        if path.is_dir():
            if not (path / TOKEN_FILE).is_file():
                raise DiscoInspectError(
                    f"`token` folder `{path}` has no {TOKEN_FILE}; pass a run folder written by "
                    "`disco-inspect train`/`report` or the token file itself."
                )
            path = path / TOKEN_FILE
        name, vector = load_token(path)
        return put_token(pipe, name, vector, source=f"Token file `{path}`"), vector
    if isinstance(token, str) and token in pipe.tokenizer.get_added_vocab():
        return token, read_token_rows(pipe, token)
    raise DiscoInspectError(
        f"`token` = {token!r} is neither a token file, a run folder, nor a token of this "
        "pipeline; pass the learned_embeds.safetensors of a run (or its folder)."
    )


@contextmanager
def token_vector(pipe: Any, token: str, vector: torch.Tensor) -> Iterator[None]:
    """Temporarily give ``token`` the embedding ``vector`` (restored on exit; every text encoder's row)."""
    from ..engine.token import read_token_rows, write_token_rows

    saved = read_token_rows(pipe, token)
    write_token_rows(pipe, token, vector)
    try:
        yield
    finally:
        write_token_rows(pipe, token, saved)


def _check(inversion: Inversion, method: str, samples: int, sigma: float) -> None:
    if not isinstance(inversion, Inversion):
        raise DiscoInspectError(
            f"`inversion` must be the result of `invert(...)`, got {type(inversion).__name__}."
        )
    if method not in METHODS:
        raise DiscoInspectError(f"`method` = {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method == "null-vae" and inversion.method != "null-text":
        raise DiscoInspectError(
            f"`method` = 'null-vae' samples the tuned null embeddings of null-text inversion, but the images were "
            f"inverted by {inversion.method!r}; invert with `inversion` = 'null-text' (or use another method)."
        )
    if not isinstance(samples, int) or samples < 0:
        raise DiscoInspectError(f"`samples` = {samples!r} is invalid; use 0 or more.")
    if method != "none" and samples < 1:
        raise DiscoInspectError(
            f"`method` = {method!r} draws stochastic edits but `samples` = {samples}; use "
            "`samples` >= 1 (e.g. 4) or `method='none'`."
        )
    if sigma < 0:
        raise DiscoInspectError(
            f"`sigma` = {sigma!r} is invalid; use a noise scale >= 0 (e.g. {NOISE_SIGMA})."
        )


@dataclass
class _Rows:
    """The prompts and prompt-to-prompt knobs every batch of :func:`edit` is denoised with."""

    source_prompts: list[str]
    edit_prompts: list[str]
    cross_replace: float
    self_replace: float
    batch_size: int
    edit_sets: list[list[str]] | None = None  # per image, the prompt of each edit row (else its edit prompt)

    @property
    def prompts(self) -> tuple[list[str], list[str]]:
        """The source and edit prompt of each image."""
        return self.source_prompts, self.edit_prompts

    def cache(
        self, cache_dir: Any, inversion: Inversion, identity: bytes, per_index: bool
    ) -> EditCache | None:
        """The edit cache of one pass with these rows (:meth:`EditCache.build`)."""
        knobs = (self.cross_replace, self.self_replace)
        return EditCache.build(cache_dir, inversion, self.prompts, knobs, identity, per_index)


@dataclass
class _VAETraining:
    """What :func:`edit` trains a VAE with when none is given: the trainer's options and ``cond-vae``'s losses."""

    options: dict[str, Any]
    scorer: Any
    features: Callable[[torch.Tensor], torch.Tensor] | None
    classifier: Any
    target: int | None


def edit(
    pipe: Any,
    inversion: Inversion,
    token: Any,
    *,
    class_name: str,
    method: str = "none",
    samples: int = 0,
    sigma: float = NOISE_SIGMA,
    cross_replace: float = CROSS_REPLACE,
    self_replace: float = SELF_REPLACE,
    seed: int = 0,
    vae: Any = None,
    vae_options: dict[str, Any] | None = None,
    scorer: Any = None,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    classifier: Any = None,
    target: int | None = None,
    batch_size: int = 4,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> EditResult:
    """Edit inverted images with the class token (deterministic), plus ``samples`` stochastic edits by ``method``.

    Args:
        pipe: the pipeline the images were inverted with.
        inversion: from :func:`~disco_inspect.editing.inversion.invert`.
        token: the learned token (file, run folder, ``(string, vector)``); see :func:`resolve_token`.
        class_name: the class word of the source prompts; the token is inserted before it.
        method: ``none``, ``noise``, ``null-vae`` or ``cond-vae`` (see the module docs).
        samples: stochastic edits per image.
        sigma: ``noise``: the noise scale, as a multiple of the token embedding's RMS.
        cross_replace, self_replace: fractions of the steps during which edit rows take the source's cross- and
            self-attention maps (prompt-to-prompt; 0 = plain regeneration with the new prompt).
        seed: stochastic edits of image ``i`` draw from ``torch.Generator().manual_seed(seed + i)``.
        vae: a trained :class:`~disco_inspect.editing.stochastic.NullVAE`/``CondVAE`` to reuse; else one is trained.
        vae_options: keyword arguments of the VAE's trainer (steps, lr, beta, ...).
        scorer, features: ``cond-vae`` only: the concept scorer whose ``prompt_distance`` is the paper's CLIP loss,
            and the image features of its diversity loss (e.g. ``classifier_features(clf).features``).
        classifier, target: ``cond-vae``: the audited classifier and class index (the token's meaning in the loss).
        batch_size: images edited together (each brings 2 + ``samples`` rows).
        cache_dir: a folder for per-image edits (:mod:`~disco_inspect.editing.edit_cache`), used when the
            inversion was cached: a resumed run reads the edits it finished instead of sampling them again.
        progress: show progress bars.
    """
    # 1. check the inputs; install the token and write the edit prompts
    _check(inversion, method, samples, sigma)
    token_str, vector = resolve_token(pipe, token)
    source_prompts = list(inversion.prompts)
    edit_prompts = [insert_token(p, token_str, class_name) for p in source_prompts]
    rows = _Rows(source_prompts, edit_prompts, cross_replace, self_replace, batch_size)
    n_samples = samples if method != "none" else 0
    # 2. the deterministic edit (and the source rows), recording the edit's latents
    cache = rows.cache(cache_dir, inversion, tensor_identity(vector), per_index=False)
    det = _sample(pipe, inversion, rows, extra=None, progress=progress, cache=cache)
    result = EditResult(
        sources=inversion.images,
        reconstructions=det["source"],
        edits=det["edit"],
        samples=None,
        source_prompts=source_prompts,
        edit_prompts=edit_prompts,
        names=list(inversion.names),
        method=method,
        settings=_settings(inversion, rows, method, n_samples, sigma, seed),
        edit_latents=det["edit_latents"],
    )
    if not n_samples:
        return result
    # 3. the stochastic rows' embeddings: the token's noise, or samples of a VAE (trained unless given)
    training = _VAETraining(dict(vae_options or {}), scorer, features, classifier, target)
    spec = (method, n_samples, sigma, seed)
    extra, found = _stochastic_rows(
        pipe, inversion, rows, det["edit_latents"], (token_str, vector), spec, vae, training, progress
    )
    identity = tensor_identity(vector, found.get("vae"), extra=f"{method}|{sigma}|{seed}|{n_samples}")
    # 4. the stochastic edits
    cache = rows.cache(cache_dir, inversion, identity, per_index=True)
    out = _sample(pipe, inversion, rows, extra=extra, progress=progress, cache=cache)
    return replace(result, samples=out["samples"], **found)


def _stochastic_rows(
    pipe: Any,
    inversion: Inversion,
    rows: _Rows,
    edit_latents: torch.Tensor,
    token: tuple[str, torch.Tensor],
    spec: tuple[str, int, float, int],
    vae: Any,
    training: _VAETraining,
    progress: bool,
) -> tuple[_Extra, dict[str, Any]]:
    """Step 3 of :func:`edit`: the stochastic rows (``noise``: the token's noise; else samples of a VAE, trained
    unless given) and what :class:`EditResult` gets from them (the VAE and its history)."""
    method, n, sigma, seed = spec
    if method == "noise":
        return _noise_rows(pipe, token[0], token[1], rows.edit_prompts, n, sigma, seed), {}
    vae, history = _vae(pipe, inversion, method, vae, training, edit_latents, rows, progress)
    extra = vae.sampler(pipe, inversion, rows.edit_prompts, n, seed)
    return extra, {"vae": vae, "vae_history": history}


def edit_to_prompts(
    pipe: Any,
    inversion: Inversion,
    prompts: list[str],
    *,
    cross_replace: float = CROSS_REPLACE,
    self_replace: float = SELF_REPLACE,
    batch_size: int = 4,
    prompts_per_pass: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Edit every inverted image toward each of ``prompts`` (whole prompts, e.g. "a circle on a green background"),
    with prompt-to-prompt from the image's source prompt: the words they share keep the source's attention maps.

    The source rows are shared: a pass denoises each image's source row once beside one edit row per prompt of the
    pass (``prompts_per_pass``; default: as many as keep ``batch_size`` images within :data:`MAX_ROWS` rows per
    UNet call), so ``k`` prompts cost ``k + ceil(k / prompts_per_pass)`` rows per image instead of ``2k``. Returns
    the edits ``[len(prompts), B, 3, H, W]``, CPU float32 in [0, 1]. With ``cache_dir`` (and a cached inversion)
    each image's edit toward each prompt is cached, as in :func:`edit`."""
    from tqdm.auto import tqdm

    # 1. check the inputs; split the prompts into passes
    if not prompts:
        raise DiscoInspectError("`prompts` is empty; give at least one prompt to edit the images toward.")
    per = prompts_per_pass if prompts_per_pass is not None else max(1, MAX_ROWS // batch_size - 1)
    if not isinstance(per, int) or per < 1:
        raise DiscoInspectError(f"`prompts_per_pass` = {per!r} is invalid; use a positive integer, e.g. 4.")
    n, sources = len(inversion), list(inversion.prompts)
    sched = ddim_scheduler(pipe, inversion.num_inference_steps, inversion.timestep_spacing)
    bar = tqdm(total=len(prompts) * n, desc="concept edits of your images", unit="edit", disable=not progress)
    # 2. each pass, batch by batch (a batch whose edits are all cached is read), split back per prompt
    out: dict[str, list[torch.Tensor]] = {p: [] for p in prompts}
    for group in [prompts[i : i + per] for i in range(0, len(prompts), per)]:
        rows = _Rows(sources, [group[0]] * n, cross_replace, self_replace, batch_size, [group] * n)
        one = [_Rows(sources, [p] * n, cross_replace, self_replace, batch_size) for p in group]
        caches = [r.cache(cache_dir, inversion, b"", per_index=False) for r in one]
        extra = _prompt_rows(pipe, group)
        for s in range(0, n, batch_size):
            images = list(range(s, min(s + batch_size, n)))
            for p, e in zip(
                group, _prompt_batch(pipe, inversion, sched, rows, images, extra, caches), strict=True
            ):
                out[p].append(e)
            bar.update(len(images) * len(group))
    bar.close()
    return torch.stack([torch.cat(out[p]) for p in prompts])


def _prompt_rows(pipe: Any, prompts: list[str]) -> _Extra:
    """``extra`` of one pass of :func:`edit_to_prompts`: each image's edit rows are the pass's prompts, in order."""
    from ..engine.sampling import encode

    with torch.no_grad():
        cond = encode(pipe, prompts).float().cpu()  # [k, L, D]

    def rows(step: int, t: int, images: list[int]) -> dict[str, torch.Tensor]:
        return {"cond": cond.repeat(len(images), 1, 1)}

    return rows


def _prompt_batch(
    pipe: Any,
    inversion: Inversion,
    sched: Any,
    rows: _Rows,
    images: list[int],
    extra: _Extra,
    caches: list[EditCache | None],
) -> list[torch.Tensor]:
    """One batch of one pass of :func:`edit_to_prompts`: per prompt, the edits ``[b, 3, H, W]`` (read from the caches
    when every one is there, else sampled and written to them)."""
    found = [c.load(images) if c is not None else None for c in caches]
    if all(f is not None for f in found):
        return [f["edit"] for f in found]  # type: ignore[index]
    part = _sample_batch(pipe, inversion, sched, rows, images, extra, lambda _: None)
    edits = [part["samples"][:, k] for k in range(len(caches))]
    for cache, e in zip(caches, edits, strict=True):
        if cache is not None:  # saved per batch: an interrupted run keeps the edits it finished
            cache.save(images, {"source": part["source"], "edit": e})
    return edits


def _settings(
    inversion: Inversion, rows: _Rows, method: str, n_samples: int, sigma: float, seed: int
) -> dict[str, Any]:
    """Every knob of one :func:`edit` call, JSON-ready (``EditResult.settings``)."""
    return {
        "method": method,
        "samples": n_samples,
        "sigma": sigma if method == "noise" else None,
        "cross_replace": rows.cross_replace,
        "self_replace": rows.self_replace,
        "seed": seed,
        **inversion.settings(),
    }


def _vae(
    pipe: Any,
    inversion: Inversion,
    method: str,
    vae: Any,
    training: _VAETraining,
    edit_latents: torch.Tensor,
    rows: _Rows,
    progress: bool,
) -> tuple[Any, list[dict[str, float]]]:
    """The VAE of ``method`` and its training history: ``vae`` if given (checked, no history), else a trained one."""
    from .stochastic import CondVAE, NullVAE, train_cond_vae, train_null_vae

    kind = NullVAE if method == "null-vae" else CondVAE
    if vae is not None and not isinstance(vae, kind):
        raise DiscoInspectError(
            f"`vae` is a {type(vae).__name__}, but `method` = {method!r} needs a {kind.__name__}."
        )
    if vae is not None:
        return vae, []
    if method == "null-vae":
        return train_null_vae(pipe, inversion, progress=progress, **training.options)
    if training.scorer is None or training.features is None:
        raise DiscoInspectError(
            "`method` = 'cond-vae' trains on the concept scorer and image features; "
            "pass `scorer=` (e.g. OracleScorer()) and `features=`."
        )
    return train_cond_vae(
        pipe,
        inversion,
        rows.edit_prompts,
        edit_latents,
        scorer=training.scorer,
        features=training.features,
        classifier=training.classifier,
        target=training.target,
        progress=progress,
        **training.options,
    )


def _noise_rows(
    pipe: Any, token: str, vector: torch.Tensor, edit_prompts: list[str], n: int, sigma: float, seed: int
) -> Callable[[int, int, list[int]], dict[str, torch.Tensor]]:
    """Rows of the ``noise`` method: the edit prompt encoded with ``vector + sigma * rms * N(0, I)``, per sample."""
    from ..engine.sampling import encode

    rms = vector.float().pow(2).mean().sqrt()
    conds = []  # [B][n] embeddings
    for i, prompt in enumerate(edit_prompts):
        gen = torch.Generator().manual_seed(seed + i)
        noise = torch.randn(n, vector.numel(), generator=gen)
        rows = []
        for k in range(n):
            with token_vector(pipe, token, vector + sigma * rms * noise[k]), torch.no_grad():
                rows.append(encode(pipe, [prompt])[0].float().cpu())
        conds.append(torch.stack(rows))
    cond = torch.stack(conds)  # [B, n, L, D]

    def rows(step: int, t: int, images: list[int]) -> dict[str, torch.Tensor]:
        return {"cond": cond[images].flatten(0, 1)}

    return rows


#: ``extra(step, t, images)`` of :func:`_sample`: the stochastic rows' embeddings.
_Extra = Callable[[int, int, list[int]], dict[str, torch.Tensor]]


def _sample(
    pipe: Any,
    inversion: Inversion,
    rows: _Rows,
    *,
    extra: _Extra | None,
    progress: bool,
    cache: EditCache | None = None,
) -> dict[str, Any]:
    """Denoise the source and edit rows (``extra`` None) or the source and stochastic rows of every image; a batch
    whose images are all in ``cache`` is read from it, the others are written to it.

    ``extra(step, t, images)`` returns the stochastic rows' ``cond`` and/or ``uncond`` embeddings, image-major
    ``[len(images) * n, L, D]``; a key it leaves out is the deterministic edit's.
    """
    from tqdm.auto import tqdm

    sched = ddim_scheduler(pipe, inversion.num_inference_steps, inversion.timestep_spacing)
    bar = tqdm(
        total=len(inversion) * len(sched.timesteps),
        desc="editing" if extra is None else "stochastic edits",
        disable=not progress,
        leave=False,
    )
    parts, hits = [], 0
    for s in range(0, len(inversion), rows.batch_size):
        images = list(range(s, min(s + rows.batch_size, len(inversion))))
        part = cache.load(images) if cache is not None else None
        if part is None:
            part = _sample_batch(pipe, inversion, sched, rows, images, extra, bar.update)
            if cache is not None:  # saved per batch: an interrupted run keeps the edits it finished
                cache.save(images, part)
        else:
            hits += len(images)
            bar.update(len(images) * len(sched.timesteps))
        parts.append(part)
    bar.close()
    if cache is not None:
        logger.debug("Edit cache `%s`: %d read, %d written.", cache.folder, hits, len(inversion) - hits)
    res: dict[str, Any] = {"source": torch.cat([p["source"] for p in parts])}
    if extra is None:
        res["edit"] = torch.cat([p["edit"] for p in parts])
        res["edit_latents"] = torch.cat([p["edit_latents"] for p in parts], 1)
    else:
        res["samples"] = torch.cat([p["samples"] for p in parts])
    return res


def _injection(pipe: Any, rows: _Rows, images: list[int], n: int, n_steps: int) -> Any:
    """The prompt-to-prompt state of one batch: ``len(images)`` source rows, then ``n`` edit rows per image."""
    from .controller import AttentionInjection, token_alignment

    b = len(images)
    sources = list(range(b)) + [j for j in range(b) for _ in range(n)]  # image-major
    src, edt = rows.source_prompts, rows.edit_prompts
    aligned = [token_alignment(pipe.tokenizer, src[i], src[i]) for i in images]
    sets = rows.edit_sets or [[p] * n for p in edt]
    aligned += [token_alignment(pipe.tokenizer, src[i], sets[i][k]) for i in images for k in range(n)]
    return AttentionInjection(sources, aligned, n_steps, rows.cross_replace, rows.self_replace)


def _sample_batch(
    pipe: Any,
    inversion: Inversion,
    sched: Any,
    rows: _Rows,
    images: list[int],
    extra: _Extra | None,
    on_step: Callable[[int], Any],
) -> dict[str, torch.Tensor]:
    """One batch of :func:`_sample`: ``source`` and ``edit`` images and ``edit_latents``, or ``source`` and ``samples``."""
    from ..engine.sampling import decode, encode
    from .controller import inject_attention

    b, g = len(images), inversion.guidance_scale
    with torch.no_grad():
        src_c = encode(pipe, [rows.source_prompts[i] for i in images])
        edit_c = encode(pipe, [rows.edit_prompts[i] for i in images])
    probe = extra(0, int(sched.timesteps[0]), images) if extra is not None else None
    n = 1 if probe is None else next(iter(probe.values())).shape[0] // b
    state = _injection(pipe, rows, images, n, len(sched.timesteps))
    x = inversion.x_T[images].to(pipe.device, pipe.unet.dtype)
    x = torch.cat([x, x.repeat_interleave(n, 0)])
    latents = [x[b:].float().cpu()] if extra is None else []
    with inject_attention(pipe.unet, state), torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            state.step = i
            null = inversion.null_embeddings[i][images].to(pipe.device)
            given = extra(i, int(t), images) if extra is not None else {}
            cond_e = given.get("cond", edit_c.repeat_interleave(n, 0).float().cpu()).to(pipe.device)
            unc_e = given.get("uncond", null.repeat_interleave(n, 0).cpu()).to(pipe.device)
            cond = torch.cat([src_c.float(), cond_e.float()])
            uncond = torch.cat([null.float(), unc_e.float()])
            x = ddim_step(sched, guided_eps(pipe, x, t, cond, uncond, g), t, x)
            x = torch.cat([inversion.corrected(x[:b], i, images), x[b:]])  # direct: the source rows only
            if extra is None:
                latents.append(x[b:].float().cpu())
            on_step(b)
        images_out = decode(pipe, x).float().cpu()
    if extra is None:
        return {"source": images_out[:b], "edit": images_out[b:], "edit_latents": torch.stack(latents)}
    return {"source": images_out[:b], "samples": images_out[b:].view(b, n, *images_out.shape[1:])}
