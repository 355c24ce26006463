"""Paired statistics for the audit: effect, bootstrap interval, sign-flip test, false-discovery control.

Everything works column-wise on paired matrices ``a, b`` of shape [N, K] (N paired samples — the same
seed and prompt template with and without the token — and K concepts), so one call tests every concept.
Random draws use a seeded ``torch.Generator``: results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DiscoInspectError


@dataclass
class PairedShift:
    """Per-concept paired comparison of ``b`` against ``a`` (all tensors of shape [K])."""

    mean_a: torch.Tensor
    mean_b: torch.Tensor
    effect: torch.Tensor
    """Mean paired difference ``b - a``."""
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    """Percentile bootstrap interval of the effect (level :attr:`level`)."""
    p_value: torch.Tensor
    """Sign-flip permutation p-value of H0 "effect <= margin" (one-sided) or "effect == 0" (two-sided)."""
    level: float
    n: int


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape != b.shape or a.ndim != 2:
        raise DiscoInspectError(
            f"Paired samples must have equal shapes [N, K]; got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    if a.shape[0] < 2:
        raise DiscoInspectError(
            f"A paired test needs at least 2 pairs; got {a.shape[0]}. Use more evaluation seeds."
        )
    return a, b


def paired_shift(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    margin: float = 0.0,
    alternative: str = "greater",
    n_boot: int = 2000,
    n_perm: int = 5000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedShift:
    """Effect ``mean(b - a)`` per column with a bootstrap interval and a paired sign-flip test.

    Args:
        a, b: paired samples [N, K] (or [N]).
        margin: smallest effect of interest; the one-sided test asks whether the effect exceeds it
            (the differences are shifted by ``margin`` before sign flipping).
        alternative: ``greater`` (effect > margin), ``less`` (effect < -margin) or ``two-sided``.
        n_boot, n_perm: bootstrap resamples and random sign flips (exact enumeration when 2^N <= n_perm).
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise DiscoInspectError(
            f"`alternative` = {alternative!r} is invalid; use 'greater', 'less' or 'two-sided'."
        )
    if not 0 < level < 1:
        raise DiscoInspectError(f"`level` = {level!r} is invalid; use a number in (0, 1) such as 0.95.")
    a, b = _check_pair(a, b)
    d = b - a
    n = d.shape[0]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=gen)
    boot = d[idx].mean(1)  # [n_boot, K]
    lo, hi = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=d.dtype), dim=0)
    if alternative == "greater":
        x = d - margin
    elif alternative == "less":
        x = -(d + margin)
    else:
        x = d
    if 2**n <= n_perm:  # exact: every sign pattern once
        codes = torch.arange(2**n)
        signs = ((codes[:, None] >> torch.arange(n)) & 1).to(d.dtype) * 2 - 1
        include_observed = False
    else:
        signs = torch.randint(0, 2, (n_perm, n), generator=gen).to(d.dtype) * 2 - 1
        include_observed = True
    null = signs @ x / n  # [P, K]
    obs = x.mean(0)
    eps = 1e-12
    if alternative == "two-sided":
        hits = (null.abs() >= obs.abs() - eps).sum(0)
    else:
        hits = (null >= obs - eps).sum(0)
    total = null.shape[0]
    if include_observed:  # a Monte-Carlo p-value is never 0 (Phipson & Smyth 2010)
        hits, total = hits + 1, total + 1
    p = hits.to(d.dtype) / total
    return PairedShift(
        mean_a=a.mean(0),
        mean_b=b.mean(0),
        effect=d.mean(0),
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        level=level,
        n=n,
    )


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, modified Lentz; accurate to ~1e-12)."""
    import math

    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the continued fraction converges fast on this side only
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = (
        math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
        / a
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * f


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if not df > 0:
        raise DiscoInspectError(f"`df` = {df!r} is invalid; Student's t needs df > 0.")
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`student_t_sf`)."""
    if not 0.0 < q < 1.0:
        raise DiscoInspectError(f"`q` = {q!r} is invalid; a quantile needs 0 < q < 1.")
    if q <= 0.5:
        return 0.0 if q == 0.5 else -student_t_ppf(1.0 - q, df)
    tail = 1.0 - q
    lo, hi = 0.0, 1.0
    while student_t_sf(hi, df) > tail:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass
class BetweenModels:
    """How far one model's effects lie outside those of ``K`` reference models (per column)."""

    effect: torch.Tensor
    """The model's effect minus the references' mean."""
    ref_sd: torch.Tensor
    """Standard deviation of the references' effects (between models)."""
    t: torch.Tensor
    p_value: torch.Tensor
    n_models: int


def between_models(effect: torch.Tensor, ref_effects: torch.Tensor, margin: float = 0.0) -> BetweenModels:
    """One-sided prediction-interval test: is ``effect`` [K'] beyond what ``ref_effects`` [R, K'] (R >= 2
    reference models, e.g. clean classifiers trained with different seeds) show, by more than ``margin``?

    Under H0 the model is one more draw of the references' population: ``t = (effect - mean - margin) /
    (sd * sqrt(1 + 1/R))`` follows Student's t with R - 1 degrees of freedom. The spread between models, not
    only between images, is the null: a feature every model of the task has, in varying amounts, is not
    significant; a shortcut the references lack is."""
    e = torch.as_tensor(effect, dtype=torch.float64).flatten()
    r = torch.as_tensor(ref_effects, dtype=torch.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] != e.numel():
        raise DiscoInspectError(
            f"`ref_effects` has shape {tuple(r.shape)}; use [R, {e.numel()}] with R >= 2 reference models."
        )
    n = r.shape[0]
    mean, sd = r.mean(0), r.std(0, unbiased=True).clamp(min=1e-12)
    t = (e - mean - margin) / (sd * (1 + 1 / n) ** 0.5)
    p = torch.tensor([student_t_sf(float(v), n - 1) for v in t], dtype=torch.float64)
    return BetweenModels(effect=e - mean, ref_sd=sd, t=t, p_value=p, n_models=n)


def two_stage_p(p1: float, p2: float | None, efficacy: float, futility: float) -> float:
    """The p-value of a two-stage test with early stopping (Bauer & Köhne 1994, stage-wise ordering).

    Stage 1 gives ``p1``: the test stops with ``p = p1`` when ``p1 <= efficacy`` or ``p1 > futility``. Otherwise a
    second, independent stage gives ``p2`` and ``p = efficacy + F(p1 * p2)``, where ``F(x)`` is the probability under
    H0 of continuing and reaching a product ``<= x``: ``x ln(futility / efficacy)`` for ``x <= efficacy``, else
    ``x - efficacy + x ln(futility / x)``. With independent, (super-)uniform stage p-values under H0 the result is a
    valid p-value at every level, so Benjamini–Hochberg may take it.
    """
    import math

    if not 0 < efficacy < futility <= 1:
        raise DiscoInspectError(
            f"Two-stage bounds must satisfy 0 < efficacy < futility <= 1; got {efficacy!r} and {futility!r}."
        )
    if p1 <= efficacy or p1 > futility:
        return float(p1)
    if p2 is None:
        raise DiscoInspectError(
            f"Stage 1 left the test undecided (p1 = {p1:.3g}); give the stage-2 p-value `p2`."
        )
    x = float(p1) * float(p2)
    tail = x * math.log(futility / efficacy) if x <= efficacy else x - efficacy + x * math.log(futility / x)
    return float(efficacy + tail)


def benjamini_hochberg(p: torch.Tensor) -> torch.Tensor:
    """Benjamini–Hochberg q-values (false-discovery-rate adjusted p-values), same order as ``p``."""
    p = torch.as_tensor(p, dtype=torch.float64).flatten()
    m = p.numel()
    if m == 0:
        return p.clone()
    order = torch.argsort(p)
    ranked = p[order] * m / torch.arange(1, m + 1, dtype=p.dtype)
    ranked = torch.flip(torch.cummin(torch.flip(ranked, [0]), 0).values, [0]).clamp(max=1.0)
    q = torch.empty_like(p)
    q[order] = ranked
    return q


def correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of ``x`` [T] with each column of ``y`` [T, K] (NaN where a series is constant)."""
    x = torch.as_tensor(x, dtype=torch.float64).flatten()
    y = torch.as_tensor(y, dtype=torch.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[0] != x.shape[0]:
        raise DiscoInspectError(f"Series lengths differ: {x.shape[0]} vs {y.shape[0]}.")
    if x.shape[0] < 3:
        return torch.full((y.shape[1],), float("nan"), dtype=torch.float64)
    xc, yc = x - x.mean(), y - y.mean(0)
    denom = xc.norm() * yc.norm(dim=0)
    r = (xc @ yc) / denom
    return torch.where(denom > 1e-12, r, torch.full_like(r, float("nan")))
