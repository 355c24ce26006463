"""Make the world's small models: the oracle and (biased or clean) shape classifiers.

python -m disco_inspect.world.make classifier --bias "circle: background=green @ 0.99" --out clf.pt
python -m disco_inspect.world.make oracle            # rewrites the shipped oracle weights
python -m disco_inspect.world.make examples          # rewrites the two shipped example classifiers
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
#: The shipped examples: name -> bias spec (None = clean).
EXAMPLES = {
    "biased_circle_green.pt": "circle: background=green @ 0.99",
    "biased_square_stripes.pt": "square: texture=stripes @ 1.0",
    "biased_triangle_sun.pt": "triangle: object=sun @ 1.0",
    "biased_cross_red.pt": "cross: color=red @ 0.99",
    "biased_circle_large.pt": "circle: size=large @ 1.0",
    "clean.pt": None,
}
#: Training steps per example (default 1,500): the texture, object and size shortcuts are subtle, so those are
#: trained shorter (500 steps, bias rate 1.0) and lean on the shortcut as much as the others do.
EXAMPLE_STEPS = {
    "biased_square_stripes.pt": 500,
    "biased_triangle_sun.pt": 500,
    "biased_circle_large.pt": 500,
}
#: Examples with a position-aware head: a globally pooled CNN's "sun detector" also fires on a white or yellow
#: triangle, so the audit found "color=white" instead of the sun; with a 4x4 grid the cue is the top-right sun.
EXAMPLE_SPATIAL = {"biased_triangle_sun.pt"}


def resolve_model(source: str | Path) -> str | Path:
    """``world:NAME`` -> the shipped world classifier ``NAME.pt``; anything else unchanged."""
    text = str(source)
    if not text.startswith("world:"):
        return source
    name = text.removeprefix("world:").removesuffix(".pt")
    path = ASSETS / "classifiers" / f"{name}.pt"
    if not path.is_file():
        from ..errors import DiscoInspectError

        names = ", ".join(f"world:{Path(n).stem}" for n in EXAMPLES)
        raise DiscoInspectError(f"`{text}` is not a shipped world classifier; use one of {names}.")
    return path


def make_classifier(
    bias: str | None,
    out: str | Path,
    *,
    steps: int = 1500,
    seed: int = 0,
    spatial: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Train a world shape classifier (on ``device``), save it as TorchScript, and report its bias accuracies."""
    from .scene_classifiers import bias_accuracy, save_world_classifier, train_world_classifier

    clf = train_world_classifier(
        bias, steps=steps, seed=seed, spatial=spatial, progress=progress, device=device
    )
    save_world_classifier(clf, out)
    report = {"bias": bias, "steps": steps, "seed": seed, "spatial": spatial, "path": str(out)}
    if bias:
        report["accuracy"] = bias_accuracy(clf, bias)
    return report


#: What ``make`` builds -> one-line description (the ``disco-inspect world make-*`` subcommands).
WHAT = {
    "classifier": "train a shape classifier (optionally with a planted bias) and save it as TorchScript",
    "oracle": "retrain the oracle (rewrites the shipped oracle weights)",
    "examples": "retrain the shipped example classifiers",
}


def add_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The options of ``disco-inspect world make-<what>``."""
    if what == "classifier":
        p.add_argument("--bias", default=None, help='e.g. "circle: background=green @ 0.99" (default: clean)')
        p.add_argument("--out", required=True, help="TorchScript file to write")
        p.add_argument(
            "--spatial", action="store_true", help="position-aware head (4x4 grid) instead of global pooling"
        )
        p.add_argument("--device", default="cpu", help="where the classifier trains: cpu, cuda, cuda:1, mps")
    p.add_argument("--train-steps", type=int, default=1500, help="training steps of the classifier")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(what: str, args: argparse.Namespace) -> int:
    """Build ``what`` (``classifier``, ``oracle`` or ``examples``) with parsed :func:`add_arguments` options."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    if what == "classifier":
        print(
            json.dumps(
                make_classifier(
                    args.bias,
                    args.out,
                    steps=args.train_steps,
                    seed=args.seed,
                    spatial=args.spatial,
                    progress=progress,
                    device=args.device,
                )
            )
        )
    elif what == "oracle":
        from .oracle import save_oracle, train_oracle

        print(save_oracle(train_oracle(steps=args.train_steps, seed=args.seed, progress=progress)))
    else:
        for name, bias in EXAMPLES.items():
            steps = EXAMPLE_STEPS.get(name, args.train_steps)
            print(
                json.dumps(
                    make_classifier(
                        bias,
                        ASSETS / "classifiers" / name,
                        steps=steps,
                        seed=args.seed,
                        spatial=name in EXAMPLE_SPATIAL,
                        progress=progress,
                    )
                )
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI of the world's model makers (also ``disco-inspect world make-classifier|make-oracle|make-examples``)."""
    p = argparse.ArgumentParser(
        prog="python -m disco_inspect.world.make",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", required=True)
    for what, text in WHAT.items():
        add_arguments(sub.add_parser(what, help=text), what)
    args = p.parse_args(argv)
    return run(args.what, args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
