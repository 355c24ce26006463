"""Exploratory (issue 9, item 6's saturated target): can the intervention scan confirm a planted factor when the
classifier already recognises the class (baseline p(target) >= 0.9), without confirming anything on clean
classifiers?

For each classifier, every prompt of the class's scan (the world scorer's 20 one-factor captions) is generated on
64 paired seeds once; p(target) is then tested per concept (factor prompt vs the mean of its contrasts) under
several rules, with Benjamini-Hochberg across concepts, exactly as the audit's scan does:

- ``p16@0.05``: the audit's default (first 16 seeds, H0 effect <= 0.05);
- ``p64@0.05``: 64 seeds, same margin;
- ``p64@0.02``: 64 seeds, H0 effect <= 0.02;
- ``acc64@0.05``: 64 seeds, the *decision* (argmax == target) instead of the probability.

It also ranks every concept by its point effect (``rank``, 64 seeds), whether or not it is confirmed.

    python benchmarks/studies/saturated_scan_study.py --threads 1

Classifiers: the relied-on saturated cases of ``reports/world-saturated-benchmark`` and the randomised benchmark's
five clean classifiers (seed 0; trained here if missing, under ``reports/token-study/classifiers``). Output:
``reports/saturated-scan-study/study.json`` and the table on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

OUT = Path("reports/saturated-scan-study")
RULES = {
    "p16@0.05": (16, 0.05, "p"),
    "p64@0.05": (64, 0.05, "p"),
    "p64@0.02": (64, 0.02, "p"),
    "acc64@0.05": (64, 0.05, "acc"),
}


def measure(pipe, clf, class_name, scorer, n_seeds=64):
    from disco_inspect.analysis.stats import benjamini_hochberg, paired_shift
    from disco_inspect.engine.sampling import generate

    target = clf.resolve_class(class_name)
    plans = {c: scorer.intervention(c, class_name) for c in scorer.concepts}
    prompts = list(dict.fromkeys(p for f, cs in plans.values() for p in (f, *cs)))
    seeds = [11_000 + i for i in range(n_seeds)]
    p, acc = {}, {}
    for prompt in prompts:
        images = generate(
            pipe, [prompt] * n_seeds, seeds, num_inference_steps=10, guidance_scale=4.0, batch_size=16
        )
        with torch.no_grad():
            logits = clf(images).float()
        p[prompt] = logits.softmax(-1)[:, target]
        acc[prompt] = (logits.argmax(-1) == target).float()
    out = {}
    for rule, (n, margin, kind) in RULES.items():
        src = p if kind == "p" else acc
        effects, pvals = {}, []
        for c, (f, cs) in plans.items():
            a = torch.stack([src[x][:n] for x in cs]).mean(0)
            s = paired_shift(a, src[f][:n], margin=margin, alternative="greater", seed=0)
            effects[c] = float(s.effect[0]) if s.effect.ndim else float(s.effect)
            pvals.append(float(s.p_value[0]) if s.p_value.ndim else float(s.p_value))
        q = benjamini_hochberg(torch.tensor(pvals))
        out[rule] = {
            "confirmed": [c for c, qq in zip(plans, q.tolist(), strict=True) if qq < 0.05],
            "effects": effects,
        }
    ranked = sorted(out["p64@0.05"]["effects"].items(), key=lambda kv: -kv[1])
    return out, [c for c, _ in ranked]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from disco_inspect.auditor import default_scorer
    from disco_inspect.io import write_json
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.randomised import _classifier, draw_cases

    pipe = load_pipeline("world")
    scorer = default_scorer(pipe)
    sat = json.loads(Path("reports/world-saturated-benchmark/saturated_benchmark.json").read_text())
    cases = [
        {**c, "path": Path("reports/world-saturated-benchmark/classifiers") / f"{c['name']}.pt"}
        for c in sat["cases"]
        if c["relied"]
    ]
    for c in draw_cases(20, 0):
        if not c["planted"]:
            _, path = _classifier(c, Path("reports/token-study/classifiers"), 500, False)
            cases.append({**c, "path": path})
    path = OUT / "study.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    done = {r["name"] for r in rows}
    for c in cases:
        if c["name"] in done:
            continue
        clf = load_classifier(c["path"])
        res, ranked = measure(pipe, clf, c["class_name"], scorer)
        row = {
            "name": c["name"],
            "bias": c["bias"],
            "class_name": c["class_name"],
            "planted": c["planted"],
            "rules": res,
            "causal_rank": ranked.index(c["planted"]) + 1 if c["planted"] else None,
            "causal_top3": ranked[:3],
        }
        rows.append(row)
        OUT.mkdir(parents=True, exist_ok=True)
        write_json(path, {"rows": rows})
        print(
            row["name"],
            row["bias"],
            "rank",
            row["causal_rank"],
            "top3",
            ranked[:3],
            {k: v["confirmed"] for k, v in res.items()},
            flush=True,
        )
    print(f"\n{'rule':<11} {'planted confirmed (saturated relied-on)':>40} {'confirmations on clean':>24}")
    biased = [r for r in rows if r["planted"]]
    clean = [r for r in rows if not r["planted"]]
    for rule in RULES:
        hit = sum(r["planted"] in r["rules"][rule]["confirmed"] for r in biased)
        fc = sum(len(r["rules"][rule]["confirmed"]) for r in clean)
        print(f"{rule:<11} {hit:>37}/{len(biased):<2} {fc:>24} (on {len(clean)})")
    top3 = sum(r["causal_rank"] is not None and r["causal_rank"] <= 3 for r in biased)
    print(f"planted in the top 3 by point effect (64 seeds, unconfirmed allowed): {top3}/{len(biased)}")


if __name__ == "__main__":
    main()
