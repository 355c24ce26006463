"""Issue 9, item 1: which token-optimisation settings make the *token* reach what the classifier relies on?

The intervention scan finds planted shortcuts whatever the token does; this study measures the token side alone
(the audit with ``scan=False``): on drawn cases of the randomised benchmark (seed 0), for each setting, whether the
token's shift of the planted factor is significant against the null control (the token *nominates* it), its rank
among the token's significant factors, the share of nominated factors that are real on rendered scenes (gap >=
0.05), and the rise of p(target) on the 32 fresh evaluation seeds.

Settings (each a world-preset override): the default (initialiser "a", 50 iterations, gradients through all 10
steps, training seeds 35..74); the class name as initialiser; gradients through the last step only (the paper's);
100 iterations; another seed pool (200..239). "Two restarts pooled" is read off as the union of the default's and
the other pool's nominations (each restart is one full token optimisation).

    python benchmarks/studies/token_study.py --threads 1 [--cases case04,case10] [--variants default,init_class]

Resumable: classifiers under ``reports/token-study/classifiers``, each (case, setting) audit under
``reports/token-study/<case>/<setting>``; results in ``reports/token-study/token_study.json``; the table is
printed and written to ``benchmarks/results/token_study.last.txt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

#: Seed-0 cases of the randomised benchmark: the four whose planted factor only the scan found, then four the token
#: found too (docs/benchmarks.md, randomised benchmark).
CASES = ("case04", "case10", "case16", "case19", "case00", "case05", "case08", "case11")
VARIANTS: dict[str, dict] = {
    "default": {},
    "init_class": {"initializer": "{class_name}"},
    "grad_last": {"grad_steps": 1},
    "iters100": {"max_iters": 100, "patience": 100},
    "pool200": {"seed": 200},
}
OUT = Path("reports/token-study")


def run_case(pipe, case, variant, clf, path, truth):
    from disco_inspect.auditor import AuditSettings, audit
    from disco_inspect.world.benchmarks.randomised import REAL_GAP
    from disco_inspect.world.presets import world_config

    overrides = {
        k: (v.format(class_name=case["class_name"]) if isinstance(v, str) else v)
        for k, v in VARIANTS[variant].items()
    }
    t = time.perf_counter()
    res = audit(
        pipe,
        path,
        case["class_name"],
        config=world_config(**overrides),
        settings=AuditSettings(scan=False, attribution_images=0),
        out=OUT / case["name"] / variant,
        progress=False,
    )
    nominated = [f.concept for f in res.factors.factors if f.significant]
    planted = case["planted"]
    return {
        "case": case["name"],
        "bias": case["bias"],
        "variant": variant,
        "baseline_p": float(res.baseline_probs.mean()),
        "token_p": float(res.token_probs.mean()),
        "nominated": nominated,
        "planted_nominated": planted in nominated,
        "planted_rank": nominated.index(planted) + 1 if planted in nominated else None,
        "planted_shift": next((f.effect for f in res.factors.factors if f.concept == planted), None),
        "real": {c: truth[c]["gap"] >= REAL_GAP for c in nominated},
        "seconds": time.perf_counter() - t,
    }


def table(rows: list[dict]) -> str:
    lines = [
        f"{'variant':<12} {'planted nominated':>18} {'in top 3':>9} {'nominations real':>17} "
        f"{'mean p gain':>12} {'median s':>9}"
    ]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    if "default" in by and "pool200" in by:  # two restarts, nominations pooled (union)
        pool = {r["case"]: r for r in by["pool200"]}
        by["default+pool200"] = [
            {
                **r,
                "planted_nominated": r["planted_nominated"] or pool[r["case"]]["planted_nominated"],
                "planted_rank": None,
                "nominated": sorted(set(r["nominated"]) | set(pool[r["case"]]["nominated"])),
                "real": {**r["real"], **pool[r["case"]]["real"]},
                "token_p": max(r["token_p"], pool[r["case"]]["token_p"]),
                "seconds": r["seconds"] + pool[r["case"]]["seconds"],
            }
            for r in by["default"]
            if r["case"] in pool
        ]
    for v, rs in by.items():
        n = len(rs)
        nom = sum(r["planted_nominated"] for r in rs)
        top3 = sum(r["planted_rank"] is not None and r["planted_rank"] <= 3 for r in rs)
        judged = [x for r in rs for x in r["real"].values()]
        gain = sum(r["token_p"] - r["baseline_p"] for r in rs) / n
        secs = sorted(r["seconds"] for r in rs)[n // 2]
        top3_s = "-" if v == "default+pool200" else f"{top3}/{n}"
        lines.append(
            f"{v:<12} {nom:>15}/{n:<2} {top3_s:>9} {sum(judged):>12}/{len(judged):<4} {gain:>+12.3f} "
            f"{secs:>9.0f}"
        )
    lines.append("")
    lines.append("per case (planted nominated? rank):")
    cases = sorted({r["case"] for r in rows})
    for c in cases:
        rs = {r["variant"]: r for r in rows if r["case"] == c}
        any_r = next(iter(rs.values()))
        cells = "  ".join(
            f"{v}:{'rank ' + str(r['planted_rank']) if r['planted_nominated'] else '-'}"
            f" p {r['baseline_p']:.2f}->{r['token_p']:.2f}"
            for v, r in rs.items()
        )
        lines.append(f"{c} {any_r['bias']:<34} {cells}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from disco_inspect.io import write_json
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.randomised import _classifier, draw_cases, scene_reliance

    pipe = load_pipeline("world")
    drawn = {c["name"]: c for c in draw_cases(20, 0)}
    results_path = OUT / "token_study.json"
    rows = json.loads(results_path.read_text())["rows"] if results_path.is_file() else []
    done = {(r["case"], r["variant"]) for r in rows}
    t0 = time.perf_counter()
    for name in a.cases.split(","):
        case = drawn[name]
        clf, path = _classifier(case, OUT / "classifiers", 500, False)
        truth = None
        for variant in a.variants.split(","):
            if (name, variant) in done:
                continue
            truth = truth or scene_reliance(clf, case["class_name"])
            row = run_case(pipe, case, variant, clf, path, truth)
            rows.append(row)
            print(
                f"{name} {variant:<11} planted nominated {row['planted_nominated']!s:<5} rank {row['planted_rank']}"
                f" p {row['baseline_p']:.2f}->{row['token_p']:.2f} nominated {row['nominated']} "
                f"{row['seconds']:.0f}s",
                flush=True,
            )
            OUT.mkdir(parents=True, exist_ok=True)
            write_json(results_path, {"rows": rows})
    text = (
        table(rows)
        + f"\n\nthis invocation: {(time.perf_counter() - t0) / 60:.1f} min, {a.threads} torch thread(s)"
    )
    print(text)
    Path("benchmarks/results/token_study.last.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
