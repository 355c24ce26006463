"""The randomised planted-bias benchmark: does the audit find what a classifier really relies on?

``disco-inspect world benchmark --random N --seed S`` draws N biases by seed (class uniform over the shapes,
factor uniform over background, colour, texture, object and size, value uniform over the factor's values, rate
uniform in [0.95, 1.0]), trains a world classifier on scenes with each bias, and audits it. Ground truth is
measured on *rendered* scenes, never on generated images: for every ``factor=value`` the classifier's accuracy on
scenes of the audited class with that value, minus its mean accuracy over the other values (each value's scenes
have every other factor random). A case counts for recall when the planted value's gap is at least
:data:`RELIED_GAP` (otherwise the classifier ignored the planted bias and it is excluded, as reported); a confirmed
factor counts as real (precision) when its own gap is at least :data:`REAL_GAP` — a side-reliance the classifier
acquired is a true finding. Clean classifiers (trained with different seeds) measure false confirmations.

Every case is resumable: classifiers are saved under ``OUT/classifiers/`` and audits under ``OUT/<case>/``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ...errors import DiscoInspectError

#: Planted value's accuracy gap (with - without, on rendered scenes) from which a case counts as relied upon.
RELIED_GAP = 0.10
#: Gap from which a confirmed factor counts as a real reliance (precision).
REAL_GAP = 0.05
#: Rendered scenes per factor value for the ground truth.
SCENES_PER_VALUE = 400
#: Share of a class's baseline images with a value from which the value counts as drawn by default (saturated
#: stratum: only a classifier relying on such a value can already recognise the class at baseline).
SATURABLE_SHARE = 0.5
#: Training steps of each drawn classifier (the shipped texture/object/size examples use 500 as well).
CLASSIFIER_STEPS = 500


def _draw_bias(rng: random.Random, name: str) -> dict[str, Any]:
    """One biased case of the benchmark's distribution (the one draw both benchmarks share)."""
    from ..bias import BIAS_FACTORS
    from ..scenes import FACTOR_VALUES, SHAPES

    shape, factor = rng.choice(SHAPES), rng.choice(BIAS_FACTORS)
    value, rate = rng.choice(FACTOR_VALUES[factor]), round(rng.uniform(0.95, 1.0), 3)
    return {
        "name": name,
        "bias": f"{shape}: {factor}={value} @ {rate}",
        "class_name": shape,
        "planted": f"{factor}={value}",
        "train_seed": rng.randrange(1_000_000),
    }


def draw_cases(n: int, seed: int, clean: int = 5) -> list[dict[str, Any]]:
    """``n`` biased cases and ``clean`` clean ones, drawn by ``seed`` (same seed, same cases)."""
    from ..scenes import SHAPES

    if n < 0 or clean < 0:
        raise DiscoInspectError(f"`--random` ({n}) and `--clean` ({clean}) must be >= 0.")
    rng = random.Random(seed)
    cases = [_draw_bias(rng, f"case{i:02d}") for i in range(n)]
    for i in range(clean):
        cases.append(
            {
                "name": f"clean{i}",
                "bias": None,
                "class_name": rng.choice(SHAPES),
                "planted": None,
                "train_seed": rng.randrange(1_000_000),
            }
        )
    return cases


def factor_scenes(
    shape: str, factor: str, n: int = SCENES_PER_VALUE, seed: int = 777
) -> dict[str, torch.Tensor]:
    """Rendered scenes of ``shape`` per value of ``factor`` (``n`` each, all other factors random): the ground-truth
    scenes of :func:`scene_reliance`, the same for every classifier."""
    from ..bias import BIAS_FACTORS
    from ..scenes import FACTOR_VALUES, generate_scenes

    fi = list(BIAS_FACTORS).index(factor)
    return {
        value: generate_scenes(n, seed=seed + 1000 * fi + vi, fixed={"shape": shape, factor: value}).images
        for vi, value in enumerate(FACTOR_VALUES[factor])
    }


@torch.no_grad()
def scene_reliance(
    classifier: Any,
    shape: str,
    n: int = SCENES_PER_VALUE,
    seed: int = 777,
    factors: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Per ``factor=value`` (default: every bias factor): accuracy on rendered scenes of ``shape`` with the value,
    mean accuracy over the other values, and their gap (all other factors random)."""
    from ..bias import BIAS_FACTORS
    from ..scenes import SHAPES

    target = SHAPES.index(shape)
    out: dict[str, dict[str, float]] = {}
    for factor in factors if factors is not None else BIAS_FACTORS:
        scenes = factor_scenes(shape, factor, n, seed)
        acc = {v: float((classifier(x).argmax(-1) == target).float().mean()) for v, x in scenes.items()}
        for value, a in acc.items():
            others = [acc[v] for v in acc if v != value]
            without = sum(others) / len(others)
            out[f"{factor}={value}"] = {"acc_with": a, "acc_without": without, "gap": a - without}
    return out


def _classifier(case: dict[str, Any], folder: Path, steps: int, progress: bool, device: str = "cpu") -> Any:
    """The case's classifier: trained on ``device`` (and kept in ``folder``) unless a trained one is there."""
    from ...models.classifiers import load_classifier
    from ..scene_classifiers import save_world_classifier, train_world_classifier

    path = folder / f"{case['name']}.pt"
    if not path.is_file():  # resumable: a trained classifier is kept
        clf = train_world_classifier(
            case["bias"], steps=steps, seed=case["train_seed"], progress=progress, device=device
        )
        save_world_classifier(clf, path)
    return load_classifier(path), path


def audit_case(
    case: dict[str, Any],
    out: str | Path,
    *,
    images: int = 0,
    steps: int = CLASSIFIER_STEPS,
    pipe: Any = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """One case of the benchmarks on its own (e.g. a held-out bias): train its classifier (kept in
    ``OUT/classifiers/``), measure it on rendered scenes, audit it with the report's defaults (with ``images``: a
    validation split of its training distribution as the user's images) and judge the audit; returns the row the
    benchmarks print (kept in ``OUT/<case>/benchmark_row.json``). ``case``: ``name``, ``bias`` (e.g.
    ``"square: size=small @ 0.99"``), ``class_name``, ``planted`` (e.g. ``"size=small"``) and ``train_seed``."""
    from ...models.pipelines import load_pipeline

    out = Path(out)
    pipe = pipe if pipe is not None else load_pipeline("world")
    trained = partial(_classifier, case, out / "classifiers", steps, progress, device)
    return _audit_case(case, trained, pipe, out, None, None, progress, None, images)


def _audit_case(
    case: dict[str, Any],
    classifier: Any,
    pipe: Any,
    out: Path,
    settings: Any,
    config_overrides: dict[str, Any] | None,
    progress: bool,
    reference: Any = None,
    images: int = 0,
) -> dict[str, Any]:
    """Measure the case's classifier (``classifier()`` trains or loads it: ``(clf, path)``) on rendered scenes, audit
    it (against ``reference`` when given; with ``images`` a validation split of its training distribution as the
    user's images), and judge the audit against the scenes (with the audit's ``seconds``, classifier training
    excluded). A finished case's row is kept in ``OUT/<case>/benchmark_row.json`` and reused without training
    anything (resumable across sessions: copy the rows back)."""
    import json

    from ...io import write_json

    kept = out / case["name"] / "benchmark_row.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    clf, path = classifier()
    t = time.perf_counter()
    row = _audit_and_judge(
        case, clf, path, pipe, out, settings, config_overrides, progress, reference, images
    )
    row["seconds"] = time.perf_counter() - t
    write_json(kept, row)
    return row


def _audit_and_judge(
    case: dict[str, Any],
    clf: Any,
    path: Path,
    pipe: Any,
    out: Path,
    settings: Any,
    config_overrides: dict[str, Any] | None,
    progress: bool,
    reference: Any = None,
    images: int = 0,
) -> dict[str, Any]:
    """:func:`_audit_case` without the kept row."""
    from ...auditor import audit
    from ...report.build import evidence_summary
    from ..presets import world_config
    from .user_images import channel_row, validation_split

    truth = scene_reliance(clf, case["class_name"])
    split = validation_split(case, images, out / "images" / case["name"]) if images else None
    res = audit(
        pipe,
        path,
        case["class_name"],
        config=world_config(**(config_overrides or {})),
        settings=settings,
        reference=reference,
        out=out / case["name"],
        progress=progress,
        user_images=split,
    )
    reported = [f.concept for f in res.factors.reported]
    confirmed = [f.concept for f in res.factors.factors if f.confirmed]
    planted = case["planted"]
    found_by = {f.concept: f.nominated_by for f in res.factors.factors}
    row = {
        **case,
        "baseline_target_prob": res.run.baseline.get("target_prob_mean"),
        "regime": res.run.regime,
        "objective": res.run.objective,
        "scan_scale": res.factors.method.get("scan_scale"),
        "reported": reported,
        "confirmed": confirmed,
        "real": {c: truth[c]["gap"] >= REAL_GAP for c in confirmed},
        "relied_on_scenes": sorted(c for c, v in truth.items() if v["gap"] >= RELIED_GAP),
        "planted_gap": truth[planted]["gap"] if planted else None,
        "planted_acc": {k: truth[planted][k] for k in ("acc_with", "acc_without")} if planted else None,
        "planted_found_by": found_by.get(planted) if planted else None,
    }
    row["relied"] = bool(planted and row["planted_gap"] >= RELIED_GAP)
    row["planted_rank"] = reported.index(planted) + 1 if planted in reported else None
    row["planted_causal_rank"] = causal_rank(res.factors.to_dict(), planted) if planted else None
    row["planted_confirmed"] = bool(planted and planted in confirmed)
    row["channels"] = channel_row(res.factors, truth, REAL_GAP) if images else None
    row["evidence"] = evidence_summary(res)["summary"]
    return row


def causal_rank(factors: dict[str, Any], concept: str) -> int | None:
    """Rank of ``concept`` among *all* scanned concepts by the intervention's point effect on p(target), confirmed
    or not (``factors``: report.json's ``factors`` section or ``FactorAudit.to_dict()``).

    A diagnostic, not a claim. On the world's saturated stratum it is confounded: classifiers trained with an
    ``object=none`` bias lose confidence on generated objects whether or not they rely on the factor on rendered
    scenes, so ``object=none`` ranks first either way (docs/benchmarks.md, "The saturated stratum")."""
    rows = factors.get("ranked") or factors.get("factors") or []
    scanned = [f for f in rows if f.get("intervention")]
    order = sorted(scanned, key=lambda f: -f["intervention"]["effect"])
    names = [f["concept"] for f in order]
    return names.index(concept) + 1 if concept in names else None


def _setup(seed: int, n: int, clean: int, steps: int, settings: Any, reference: Any) -> dict[str, Any]:
    """What a benchmark document records about how it ran (non-default audit settings, the reference)."""
    return {
        "seed": seed,
        "n": n,
        "clean": clean,
        "steps": steps,
        "settings": settings.to_dict() if settings is not None else None,
        "reference": _reference_doc(reference),
    }


def _reference_doc(reference: Any) -> Any:
    """The reference(s) as the benchmark JSON records them: None, a path, or a list of paths."""
    if isinstance(reference, list | tuple):
        return [str(r) for r in reference]
    return None if reference is None else str(reference)


def run_random_benchmark(
    n: int,
    seed: int,
    *,
    clean: int = 5,
    out: str | Path = "reports/world-random-benchmark",
    steps: int = CLASSIFIER_STEPS,
    pipe: Any = None,
    settings: Any = None,
    config_overrides: dict[str, Any] | None = None,
    reference: Any = None,
    progress: bool = True,
    echo: Any = print,
    device: str = "cpu",
    images: int = 0,
) -> dict[str, Any]:
    """Draw, train, measure on scenes, audit (with ``images``: K images per case from its training distribution as
    the user's images, :mod:`.user_images`); returns (and writes to ``OUT/random_benchmark.json``) every case's
    numbers and the summary (recall@1/@3 among relied-on cases, precision of confirmed factors, false confirmations
    on clean classifiers, the saturated subset, excluded cases, wall time)."""
    from ...io import write_json
    from ...models.pipelines import load_pipeline

    pipe = pipe if pipe is not None else load_pipeline("world")
    out = Path(out)
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    echo(HEADER)
    for case in draw_cases(n, seed, clean):
        t = time.perf_counter()
        trained = partial(_classifier, case, out / "classifiers", steps, progress, device)
        row = _audit_case(case, trained, pipe, out, settings, config_overrides, progress, reference, images)
        row.setdefault("seconds", time.perf_counter() - t)
        rows.append(row)
        echo(format_row(row))
        write_json(
            out / "random_benchmark.json",
            {
                "cases": rows,
                "summary": benchmark_summary(rows),
                **_setup(seed, n, clean, steps, settings, reference),
            },
        )
    summary = benchmark_summary(rows)
    summary["wall_seconds"] = time.perf_counter() - t_all
    write_json(
        out / "random_benchmark.json",
        {"cases": rows, "summary": summary, **_setup(seed, n, clean, steps, settings, reference)},
    )
    echo(format_summary(summary))
    return {"cases": rows, "summary": summary}


# --- the saturated stratum -------------------------------------------------------------------------------------


def default_shares(pipe: Any, config: Any = None, n_seeds: int | None = None) -> dict[str, dict[str, float]]:
    """Per class, the share of its *baseline* images (no token: the audit's baseline prompts on the training
    seed pool) on which the world oracle reads each ``factor=value``: what the generator draws by default."""
    from ...engine.sampling import generate
    from ..bias import BIAS_FACTORS
    from ..oracle import load_oracle
    from ..presets import world_config
    from ..scenes import FACTOR_VALUES, SHAPES

    cfg = config or world_config()
    n = n_seeds or max(cfg.seed_pool, cfg.n_images)
    oracle = load_oracle().eval()
    shares: dict[str, dict[str, float]] = {}
    for shape in SHAPES:
        base = cfg.prompts(shape, with_token=False)
        images = generate(
            pipe,
            [base[j % len(base)] for j in range(n)],
            [cfg.seed + j for j in range(n)],
            num_inference_steps=cfg.num_inference_steps,
            guidance_scale=cfg.guidance_scale,
        )
        with torch.no_grad():
            read = oracle(images)
        shares[shape] = {
            f"{factor}={value}": float((read[factor].argmax(-1) == vi).float().mean())
            for factor in BIAS_FACTORS
            for vi, value in enumerate(FACTOR_VALUES[factor])
        }
    return shares


def draw_saturable(seed: int, saturable: set[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """Cases of the randomised benchmark's distribution (same draw as :func:`draw_cases`) whose ``(class,
    factor=value)`` is in ``saturable``: rejection sampling, so the kept cases follow the benchmark's distribution
    conditioned on the bias being one the generator draws by default. Endless; the caller stops."""
    if not saturable:
        raise DiscoInspectError(
            "No (class, factor=value) pair is drawn by default often enough to saturate a classifier; lower "
            "`SATURABLE_SHARE` or check the world pipeline."
        )
    rng = random.Random(seed)
    i = 0
    while True:
        case = _draw_bias(rng, f"sat{i:02d}")
        if (case["class_name"], case["planted"]) in saturable:
            yield case
            i += 1


def baseline_target_prob(pipe: Any, clf: Any, class_name: str, config: Any = None) -> float:
    """Mean p(``class_name``) of ``clf`` on the audit's baseline images (the same prompts and seeds as
    :func:`~disco_inspect.engine.optimize.train_token`'s baseline): the regime the audit will find."""
    from ...engine.sampling import generate
    from ..presets import world_config

    cfg = config or world_config()
    images = generate(
        pipe,
        cfg.prompts(class_name, with_token=False),
        cfg.seeds(),
        num_inference_steps=cfg.num_inference_steps,
        guidance_scale=cfg.guidance_scale,
    )
    with torch.no_grad():
        probs = clf(images).float().softmax(-1)
    return float(probs[:, clf.resolve_class(class_name)].mean())


def run_saturated_benchmark(
    n: int,
    seed: int,
    *,
    out: str | Path = "reports/world-saturated-benchmark",
    steps: int = CLASSIFIER_STEPS,
    max_draws: int | None = None,
    pipe: Any = None,
    settings: Any = None,
    config_overrides: dict[str, Any] | None = None,
    reference: Any = None,
    progress: bool = True,
    echo: Any = print,
    device: str = "cpu",
    images: int = 0,
) -> dict[str, Any]:
    """The saturated stratum of the randomised benchmark: audits until ``n`` drawn classifiers are saturated (with
    ``images`` as :func:`run_random_benchmark`).

    Only a classifier relying on a value the generator draws by default can be saturated (baseline p(target) >=
    :data:`SATURATION_THRESHOLD`), so draws are restricted (rejection sampling) to ``(class, factor=value)`` pairs the
    oracle reads on >= :data:`SATURABLE_SHARE` of the class's baseline images (:func:`default_shares`). Each drawn
    classifier is trained and its baseline p(target) measured; unsaturated ones are listed as screened out. Stops
    after ``n`` saturated cases or ``max_draws`` draws (default ``6 n``); writes ``OUT/saturated_benchmark.json``.
    """
    from ...engine.objectives import SATURATION_THRESHOLD
    from ...io import write_json
    from ...models.pipelines import load_pipeline
    from ..presets import world_config

    if n < 1:
        raise DiscoInspectError(f"`--saturated` = {n} is invalid; use a number of cases >= 1, e.g. 10.")
    pipe = pipe if pipe is not None else load_pipeline("world")
    out = Path(out)
    max_draws = max_draws or 6 * n
    cfg = world_config(**(config_overrides or {}))
    t_all = time.perf_counter()
    shares = default_shares(pipe, cfg)
    saturable = {(s, c) for s, row in shares.items() for c, v in row.items() if v >= SATURABLE_SHARE}
    listed = ", ".join(f"{s}: {c} ({shares[s][c]:.2f})" for s, c in sorted(saturable))
    echo(f"saturable pairs (default share >= {SATURABLE_SHARE}): {listed}")
    rows: list[dict[str, Any]] = []
    screened: list[dict[str, Any]] = []
    echo(HEADER)
    for draws, case in enumerate(draw_saturable(seed, saturable), start=1):
        t = time.perf_counter()
        p0 = _screened_p0(
            case, out, partial(_classifier, case, out / "classifiers", steps, progress, device), pipe, cfg
        )
        if p0 < SATURATION_THRESHOLD:
            screened.append({**case, "baseline_target_prob": p0, "seconds": time.perf_counter() - t})
            echo(f"{case['name']:<8} {case['bias']:<36} screened out: baseline p(target) {p0:.2f} < 0.9")
        else:
            trained = partial(_classifier, case, out / "classifiers", steps, progress, device)
            row = _audit_case(
                case, trained, pipe, out, settings, config_overrides, progress, reference, images
            )
            row.setdefault("seconds", time.perf_counter() - t)
            rows.append(row)
            echo(format_row(row))
        summary = {**benchmark_summary(rows), "n_draws": draws, "n_screened_out": len(screened)}
        doc = {
            "cases": rows,
            "screened_out": screened,
            "summary": summary,
            "seed": seed,
            "n": n,
            "steps": steps,
            "saturable_share": SATURABLE_SHARE,
            "settings": settings.to_dict() if settings is not None else None,
            "reference": _reference_doc(reference),
            "default_shares": shares,
        }
        write_json(out / "saturated_benchmark.json", doc)
        if len(rows) >= n or draws >= max_draws:
            break
    summary["wall_seconds"] = time.perf_counter() - t_all
    write_json(out / "saturated_benchmark.json", doc)
    echo(format_summary(summary) + f"; drawn {summary['n_draws']}, screened out {summary['n_screened_out']}")
    return doc


def _screened_p0(case: dict[str, Any], out: Path, classifier: Any, pipe: Any, cfg: Any) -> float:
    """The drawn classifier's baseline p(target) (``classifier()`` trains or loads it), kept in
    ``OUT/screening/<case>.json`` and reused, so a resumed run skips the classifiers it screened out."""
    import json

    from ...io import write_json

    kept = out / "screening" / f"{case['name']}.json"
    if kept.is_file():
        return float(json.loads(kept.read_text())["baseline_target_prob"])
    clf, _ = classifier()
    p0 = baseline_target_prob(pipe, clf, case["class_name"], cfg)
    write_json(kept, {"bias": case["bias"], "baseline_target_prob": p0})
    return p0


def benchmark_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall@1/@3 among relied-on cases, precision, false confirmations on clean classifiers, saturated subset, and
    with the user's images each evidence channel's own recall and precision."""
    from .user_images import channel_summary, rule_summary

    biased = [r for r in rows if r["planted"]]
    relied = [r for r in biased if r["relied"]]
    saturated = [r for r in relied if (r["baseline_target_prob"] or 0) >= 0.9]

    def recall(cases: list[dict[str, Any]], k: int) -> float | None:
        hits = [r["planted_rank"] is not None and r["planted_rank"] <= k for r in cases]
        return sum(hits) / len(hits) if hits else None

    judged = [real for r in biased for real in r["real"].values()]
    clean = [r for r in rows if not r["planted"]]
    return {
        "n_biased": len(biased),
        "n_relied": len(relied),
        "excluded": [r["name"] for r in biased if not r["relied"]],
        "recall@1": recall(relied, 1),
        "recall@3": recall(relied, 3),
        "recall@3_confirmed": (
            sum(r["planted_confirmed"] and r["planted_rank"] <= 3 for r in relied) / len(relied)
            if relied
            else None
        ),
        "precision": sum(judged) / len(judged) if judged else None,
        "n_confirmed": len(judged),
        "n_saturated": len(saturated),
        "saturated_recall@3": recall(saturated, 3),
        "saturated_causal_top3": (
            sum((r.get("planted_causal_rank") or 99) <= 3 for r in saturated) / len(saturated)
            if saturated
            else None
        ),
        "n_clean": len(clean),
        "clean_false_confirmations": sum(len(r["confirmed"]) for r in clean),
        "channels": channel_summary(rows),
        "rules": rule_summary(rows, REAL_GAP) if any(r.get("channels") for r in rows) else {},
    }


HEADER = (
    f"{'case':<8} {'planted bias':<36} {'gap':>5} {'p0':>5} {'regime':<9} {'rank':>4} {'conf':>4} "
    f"{'confirmed (real?)':<44} {'sec':>4}"
)


def format_row(r: dict[str, Any]) -> str:
    """One line of the benchmark table."""
    conf = ", ".join(f"{c}{'' if r['real'][c] else ' (NOT real)'}" for c in r["confirmed"]) or "none"
    gap = "-" if r["planted_gap"] is None else f"{r['planted_gap']:.2f}"
    p0 = "-" if r["baseline_target_prob"] is None else f"{r['baseline_target_prob']:.2f}"
    rank = "-" if r["planted_rank"] is None else str(r["planted_rank"])
    return (
        f"{r['name']:<8} {r['bias'] or 'clean (' + r['class_name'] + ')':<36} {gap:>5} {p0:>5} {r['regime']:<9} "
        f"{rank:>4} {'yes' if r['planted_confirmed'] else '-':>4} {conf:<44} {r['seconds']:4.0f}"
    )


def format_summary(s: dict[str, Any]) -> str:
    """The summary lines of the benchmark."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    return (
        f"relied-on cases {s['n_relied']}/{s['n_biased']} (excluded: {', '.join(s['excluded']) or 'none'}); "
        f"recall@1 {f(s['recall@1'])}, recall@3 {f(s['recall@3'])} (confirmed and in the top 3: "
        f"{f(s['recall@3_confirmed'])}); precision of confirmed factors {f(s['precision'])} ({s['n_confirmed']}); "
        f"saturated (p0 >= 0.9) recall@3 {f(s['saturated_recall@3'])} ({s['n_saturated']}; planted in the top 3 "
        f"of the scan's effects, confirmed or not: {f(s.get('saturated_causal_top3'))}); "
        f"false confirmations on {s['n_clean']} clean classifiers: {s['clean_false_confirmations']}"
        + "".join(
            f"; {ch}: recall {f(c['recall'])}, precision {f(c['precision'])} ({c['n_significant']}), clean "
            f"{c['clean_false_positives']}"
            for ch, c in (s.get("channels") or {}).items()
        )
        + "".join(
            f"; rule '{name}': recall {f(c['recall'])}, precision {f(c['precision'])} ({c['n_confirmed']}), clean "
            f"{c['clean_confirmations']}"
            for name, c in (s.get("rules") or {}).items()
            if c["n_rows"]
        )
        + (f"; wall time {s['wall_seconds'] / 60:.1f} min" if "wall_seconds" in s else "")
    )
