"""The paper's Table 2 on the bundled world: few-shot shape classification with generated training images.

Needs one finished audit per world class, e.g. (learns the four tokens, a few minutes each)

    disco-inspect report world:clean --classes all --out reports/clean-audits

then trains a world SceneCNN on k = 0, 1, 5 rendered scenes per class (a) alone, (b) plus images generated without
the token, (c) plus images generated with each class's token, and tests it on held-out rendered scenes:

    python benchmarks/paper_table2.py --runs reports/clean-audits   # writes reports/paper-tables/table2.{json,md}

Each class's token run is found at ``RUNS/<i>-<class>/run`` or, when the report nested it under the model's name,
``RUNS/<model>/<i>-<class>/run``. Generated images are cached in ``OUT/generated``: a rerun only retrains.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def find_runs(root: Path) -> dict[str, Path]:
    """Each world class's token run folder under ``root``; every missing or ambiguous class is reported at once."""
    from disco_inspect.cli import class_folder
    from disco_inspect.errors import DiscoInspectError
    from disco_inspect.world.scenes import SHAPES

    if not root.is_dir():
        raise DiscoInspectError(f"`--runs` = `{root}` is not a folder; pass the --out folder of the audits.")
    parents = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    found, problems = {}, []
    for idx, name in enumerate(SHAPES):
        folder = class_folder(idx, name)
        hits = [p / folder / "run" for p in parents if (p / folder / "run" / "config.json").is_file()]
        if len(hits) == 1:
            found[name] = hits[0]
        elif not hits:
            problems.append(f"{name}: no {folder}/run")
        else:
            problems.append(f"{name}: several runs ({', '.join(str(h) for h in hits)})")
    if problems:
        raise DiscoInspectError(
            f"`{root}` lacks a token run per class ({'; '.join(problems)}); write them with "
            f"`disco-inspect report world:clean --classes all --out {root}`."
        )
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="folder of the per-class audits (REPORT_ROOT)")
    ap.add_argument("--out", default="reports/paper-tables")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ks", default="0,1,5", help="real scenes per class, comma-separated")
    ap.add_argument("--n-generated", type=int, default=64)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--seeds", default="0,1,2", help="classifier training seeds, comma-separated")
    ap.add_argument("--steps", type=int, default=1000, help="classifier training steps per cell and seed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from disco_inspect.engine.token_run import TokenRun
    from disco_inspect.io import atomic_write_text
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.fewshot import fewshot_table, format_fewshot_table

    t0 = time.perf_counter()
    runs = {name: TokenRun.load(folder) for name, folder in find_runs(Path(args.runs)).items()}
    pipe = load_pipeline("world")
    out = Path(args.out)
    result = fewshot_table(
        pipe,
        runs,
        ks=[int(k) for k in args.ks.split(",")],
        n_generated=args.n_generated,
        n_test=args.n_test,
        train_seeds=[int(s) for s in args.seeds.split(",")],
        steps=args.steps,
        out=out,
    )
    table = format_fewshot_table(result)
    atomic_write_text(out / "table2.md", table + "\n")
    print(table)
    print(f"wrote {out / 'table2.json'} and {out / 'table2.md'}")
    print("seconds:", {k: round(v, 1) for k, v in result["seconds"].items()})
    print(f"wall time {time.perf_counter() - t0:.0f} s (torch threads: {args.threads})")


if __name__ == "__main__":
    main()
