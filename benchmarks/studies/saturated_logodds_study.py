"""Exploratory (issue 9, item 6's saturated target): does the intervention scan separate relied-on from
not-relied-on saturated classifiers when the effect is measured in log-odds of p(target) instead of p?

p(target) near 1 compresses every effect: 0.999 -> 0.99 is -0.009 in p but -2.3 in log-odds. Every scan prompt of
each class is generated once on 64 paired seeds (cached under ``reports/saturated-scan-study/images``); each
classifier scores the same images. Per concept: the point effect and a one-sided sign-flip test (BH across the
class's concepts) in p (H0 effect <= 0.05, the audit's rule) and in log-odds (H0 effect <= m for several m).

Classifiers: the 10 audited cases of ``reports/world-saturated-benchmark`` (5 relied-on, 5 not by the scene gap) and
the randomised benchmark's 5 clean classifiers (``reports/token-study/classifiers``).

    python benchmarks/studies/saturated_logodds_study.py --class square --threads 1   # one class per process
    python benchmarks/studies/saturated_logodds_study.py --table
    python benchmarks/studies/saturated_logodds_study.py --differential reports/world-reference-clean.pt

``--differential REF``: the same concepts tested on the *differential* log-odds effect (audited minus the reference
classifier, per seed; H0 <= 1 and <= 2), as ``AuditSettings(scan_scale="logodds", confirm_differential=True)``
confirms them (REF: a clean classifier, e.g. ``python -c "from disco_inspect.world.scene_classifiers import *;
save_world_classifier(train_world_classifier(None, steps=500, seed=4242), 'reports/world-reference-clean.pt')"``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

OUT = Path("reports/saturated-scan-study")
SAT = Path("reports/world-saturated-benchmark")
CLEAN = Path("reports/token-study/classifiers")
RULES = {"p@0.05": ("p", 0.05), "lo@0.5": ("lo", 0.5), "lo@1": ("lo", 1.0), "lo@2": ("lo", 2.0)}


def classifiers() -> list[dict]:
    from disco_inspect.world.benchmarks.randomised import draw_cases

    sat = json.loads((SAT / "saturated_benchmark.json").read_text())
    rows = [
        {
            "name": c["name"],
            "class_name": c["class_name"],
            "planted": c["planted"],
            "relied": c["relied"],
            "path": str(SAT / "classifiers" / f"{c['name']}.pt"),
        }
        for c in sat["cases"]
        if c.get("relied") is not None
    ]
    rows += [
        {
            "name": c["name"],
            "class_name": c["class_name"],
            "planted": None,
            "relied": False,
            "path": str(CLEAN / f"{c['name']}.pt"),
        }
        for c in draw_cases(20, 0)
        if not c["planted"]
    ]
    return rows


def images_for(pipe, scorer, class_name: str, n_seeds: int) -> dict[str, torch.Tensor]:
    from disco_inspect.engine.sampling import generate

    path = OUT / "images" / f"{class_name}_{n_seeds}.pt"
    if path.is_file():
        return torch.load(path)
    if pipe is None:
        raise SystemExit(f"{path} is missing: run --class {class_name} first")
    plans = {c: scorer.intervention(c, class_name) for c in scorer.concepts}
    prompts = list(dict.fromkeys(p for f, cs in plans.values() for p in (f, *cs)))
    seeds = [11_000 + i for i in range(n_seeds)]
    out = {}
    for prompt in prompts:
        out[prompt] = generate(
            pipe, [prompt] * n_seeds, seeds, num_inference_steps=10, guidance_scale=4.0, batch_size=16
        )
        print(class_name, prompt, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def measure(clf, class_name, scorer, images, n):
    from disco_inspect.analysis.stats import benjamini_hochberg, paired_shift

    target = clf.resolve_class(class_name)
    plans = {c: scorer.intervention(c, class_name) for c in scorer.concepts}
    vals = {}
    with torch.no_grad():
        for prompt, imgs in images.items():
            p = clf(imgs[:n]).float().softmax(-1)[:, target].double().clamp(1e-9, 1 - 1e-9)
            vals[prompt] = {"p": p, "lo": (p / (1 - p)).log()}
    out = {}
    for rule, (kind, margin) in RULES.items():
        eff, pv = {}, []
        for c, (f, cs) in plans.items():
            a = torch.stack([vals[x][kind] for x in cs]).mean(0)
            s = paired_shift(a, vals[f][kind], margin=margin, alternative="greater", seed=0)
            eff[c] = float(s.effect.reshape(-1)[0])
            pv.append(float(s.p_value.reshape(-1)[0]))
        q = benjamini_hochberg(torch.tensor(pv)).tolist()
        out[rule] = {"effects": eff, "confirmed": [c for c, qq in zip(plans, q, strict=True) if qq < 0.05]}
    out["p0"] = float(torch.stack([v["p"] for v in vals.values()]).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--class", dest="cls")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--differential", default=None, metavar="REF")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.table:
        return table()
    if a.differential:
        return differential(a.differential)
    from disco_inspect.auditor import default_scorer
    from disco_inspect.io import write_json
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.models.pipelines import load_pipeline

    pipe = load_pipeline("world")
    scorer = default_scorer(pipe)
    imgs = images_for(pipe, scorer, a.cls, 64)
    res = {}
    for c in classifiers():
        if c["class_name"] != a.cls:
            continue
        clf = load_classifier(c["path"])
        res[c["name"]] = {
            **c,
            16: measure(clf, a.cls, scorer, imgs, 16),
            64: measure(clf, a.cls, scorer, imgs, 64),
        }
        print(c["name"], "done", flush=True)
    write_json(OUT / f"logodds_{a.cls}.json", res)


def table() -> None:
    rows = {}
    for f in sorted(OUT.glob("logodds_*.json")):
        rows.update(json.loads(f.read_text()))
    for n in ("16", "64"):
        print(f"\n== {n} seeds")
        for name, r in sorted(
            rows.items(), key=lambda kv: (not kv[1]["relied"], kv[1]["planted"] is None, kv[0])
        ):
            m = r[n]
            line = f"{name:<7} {r['class_name']:<9} {str(r['planted']):<12} relied={str(r['relied']):<5} "
            for rule in RULES:
                eff = m[rule]["effects"]
                order = sorted(eff, key=lambda c: -eff[c])
                pl = r["planted"]
                rk = order.index(pl) + 1 if pl else "-"
                e = f"{eff[pl]:+.2f}" if pl else "  -  "
                line += f"| {rule} {e} r{rk} conf={','.join(m[rule]['confirmed']) or '-'} "
            print(line)


def differential(ref_path: str) -> None:
    from disco_inspect.analysis.stats import benjamini_hochberg, paired_shift
    from disco_inspect.auditor import default_scorer
    from disco_inspect.engine.records import target_log_odds
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.models.pipelines import load_pipeline

    scorer = default_scorer(load_pipeline("world"))
    ref = load_classifier(ref_path)
    summary = {}
    for c in classifiers():
        imgs = images_for(None, scorer, c["class_name"], 64)  # cached by the per-class runs
        clf = load_classifier(c["path"])
        t, rt = clf.resolve_class(c["class_name"]), ref.resolve_class(c["class_name"])
        plans = {k: scorer.intervention(k, c["class_name"]) for k in scorer.concepts}
        for n in (16, 64):
            a = {k: target_log_odds(clf, v[:n], t) for k, v in imgs.items()}
            r = {k: target_log_odds(ref, v[:n], rt) for k, v in imgs.items()}
            for m in (1.0, 2.0):
                eff, pv = {}, []
                for k, (f, cs) in plans.items():
                    da = a[f] - torch.stack([a[x] for x in cs]).mean(0)
                    dr = r[f] - torch.stack([r[x] for x in cs]).mean(0)
                    s = paired_shift(dr, da, margin=m, alternative="greater", seed=0)
                    eff[k] = float(s.effect.reshape(-1)[0])
                    pv.append(float(s.p_value.reshape(-1)[0]))
                q = benjamini_hochberg(torch.tensor(pv)).tolist()
                conf = sorted((k for k, qq in zip(plans, q, strict=True) if qq < 0.05), key=lambda k: -eff[k])
                pl = c["planted"]
                print(
                    f"{c['name']:<7} relied={c['relied']!s:<5} seeds={n} H0<={m} "
                    f"planted diff {eff[pl] if pl else float('nan'):+.2f} confirmed {conf}"
                )
                s = summary.setdefault(
                    (n, m), {"hit": 0, "relied": 0, "fp_clean": 0, "planted_not_relied": 0}
                )
                if c["relied"]:
                    s["relied"] += 1
                    s["hit"] += pl in conf[:3]
                elif pl:
                    s["planted_not_relied"] += pl in conf
                else:
                    s["fp_clean"] += len(conf)
    for (n, m), s in summary.items():
        print(
            f"seeds={n} H0<={m}: planted confirmed in the top 3 on {s['hit']}/{s['relied']} relied-on; confirmed on "
            f"{s['planted_not_relied']}/5 not relied on (scene gap < 0.10); confirmations on 5 clean: {s['fp_clean']}"
        )


if __name__ == "__main__":
    main()
