"""Exploratory (issue 9, item 2): train the token *across contexts* and see whether it then nominates the planted
factor where the default token does not (saturated classifiers, whose default token chases confidence factors).

Contexts are every prompt of the scorer's intervention bank for the class (on the world: the 20 one-factor
captions, "a square with a tree", "a red square", ...), with the token put before the class name; each iteration
draws one image per context (``n_images`` = number of contexts), so contexts where the classifier is *not*
saturated give cross-entropy a gradient. The paired evaluation and the null control use the same context
prompts. Only the token side is measured (``scan=False``); the planted factor counts as nominated when its shift
is significant against the null control.

    python benchmarks/studies/context_study.py --threads 1 --cases sat00,case04

Cases: ``satNN`` from ``reports/world-saturated-benchmark`` and ``caseNN`` from ``reports/token-study`` (their
classifiers must exist). Results: ``reports/context-study/context_study.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

OUT = Path("reports/context-study")
SOURCES = {
    "sat": (Path("reports/world-saturated-benchmark"), "saturated_benchmark.json"),
    "case": (Path("reports/token-study"), None),
}


def case_spec(name: str) -> dict:
    from disco_inspect.world.benchmarks.randomised import draw_cases

    if name.startswith("sat"):
        folder, doc = SOURCES["sat"]
        cases = json.loads((folder / doc).read_text())
        case = next(c for c in cases["cases"] + cases["screened_out"] if c["name"] == name)
    else:
        folder = SOURCES["case"][0]
        case = next(c for c in draw_cases(20, 0) if c["name"] == name)
    return {**case, "path": folder / "classifiers" / f"{name}.pt"}


def context_templates(scorer, class_name: str, token: str = "{token}") -> tuple[str, ...]:
    prompts: dict[str, None] = {}
    for c in scorer.concepts:
        p, contrasts = scorer.intervention(c, class_name)
        for x in (p, *contrasts):
            prompts[x] = None
    return tuple(p.replace(class_name, f"{token} {{class_name}}", 1) for p in prompts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="sat00,case04")
    ap.add_argument("--objective", default="toward")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from disco_inspect.auditor import AuditSettings, audit, default_scorer
    from disco_inspect.io import write_json
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.presets import world_config

    pipe = load_pipeline("world")
    scorer = default_scorer(pipe)
    path = OUT / "context_study.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    for name in a.cases.split(","):
        case = case_spec(name)
        templates = context_templates(scorer, case["class_name"])
        cfg = world_config(templates=templates, n_images=len(templates), objective=a.objective)
        t = time.perf_counter()
        res = audit(
            pipe,
            case["path"],
            case["class_name"],
            config=cfg,
            settings=AuditSettings(scan=False, attribution_images=0),
            out=OUT / f"{name}-{a.objective}",
            progress=False,
        )
        nominated = [f.concept for f in res.factors.factors if f.significant]
        planted = case["planted"]
        row = {
            "case": name,
            "bias": case["bias"],
            "objective": res.run.objective,
            "baseline_train_p": res.run.baseline.get("target_prob_mean"),
            "baseline_p": float(res.baseline_probs.mean()),
            "token_p": float(res.token_probs.mean()),
            "nominated": nominated,
            "planted_rank": nominated.index(planted) + 1 if planted in nominated else None,
            "planted_shift": next((f.effect for f in res.factors.factors if f.concept == planted), None),
            "seconds": time.perf_counter() - t,
        }
        rows.append(row)
        OUT.mkdir(parents=True, exist_ok=True)
        write_json(path, {"rows": rows})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
