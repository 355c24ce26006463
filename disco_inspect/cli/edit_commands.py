"""`edit`: counterfactual edits of the user's images with a learned token, and its parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import (
    Formatter,
    add_model_args,
    add_pipeline_args,
    class_folder,
    classifier_from,
    scorer_from,
    setup,
)


def cmd_edit(args: argparse.Namespace) -> int:
    """Counterfactual edits of the user's images with a learned token (inversion, prompt-to-prompt, samples)."""
    from ..editor import edit_images
    from .checks import check_edit_args, check_edit_out

    settings = check_edit_args(args)  # every flag that needs no model, before anything loads
    clf = classifier_from(args)
    idx = clf.resolve_class(args.target)
    out = check_edit_out(args.out or Path("edits") / class_folder(idx, clf.class_name(idx)))
    pipe = setup(args)
    scorer = scorer_from(args, pipe) if (args.clip_weights or args.concepts) else None
    clip = None
    if args.clip_weights:
        clip = (scorer.model, scorer.tokenizer, scorer.preprocess)
    lpips = None
    if args.lpips_weights:
        from ..editing.metrics import lpips_distance

        lpips = lpips_distance(args.lpips_weights, args.lpips_net)
    result = edit_images(
        clf,
        args.target,
        args.images,
        args.token_file,
        pipe=pipe,
        out=out,
        prompt=args.prompt,
        settings=settings,
        scorer=scorer,
        lpips=lpips,
        clip=clip,
        max_images=args.max_images,
        progress=not args.no_progress,
    ).doc
    s = result["summary"]
    print(
        f"edited {s['n_images']} images of {result['class_name']!r} ({result['method']}) -> {out / 'index.html'}"
    )
    print(
        f"  reconstruction PSNR {s['reconstruction_psnr']:.2f} dB (VAE ceiling {s.get('vae_psnr', float('nan')):.2f}, "
        f"plain DDIM under CFG {s.get('plain_ddim_psnr', float('nan')):.2f})"
    )
    lo, hi = s["delta_p_edit_ci95"]
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""
    print(
        f"  p({result['class_name']}) {s['p_target_source']:.3f} -> edit {s['p_target_edit']:.3f} "
        f"(delta {s['delta_p_edit']:+.3f}{ci})"
    )
    if "diversity" in s:
        print(
            f"  samples: p {s['p_target_samples']:.3f}, diversity {s['diversity']:.4f} (upper bound "
            f"{s['upper_bound']:.4f}; {s['distance']})"
        )
    if s.get("top_concepts"):
        shifts = ", ".join(f"{c} {s['concept_shift'][c]:+.2f}" for c in s["top_concepts"])
        print(f"  the edit changed: {shifts}")
    if result["failures"]:
        print(
            f"  {len(result['failures'])} file(s) could not be read: "
            + ", ".join(f["file"] for f in result["failures"])
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect edit``: its flags (the edit's own in :func:`_add_edit_args`, the metrics' in
    :func:`_add_metric_args`)."""
    p = sub.add_parser(
        "edit",
        help="edit your own images with a learned token (inversion + prompt-to-prompt)",
        formatter_class=Formatter,
    )
    add_model_args(p)
    _add_edit_args(p)
    _add_metric_args(p)
    add_pipeline_args(p)
    p.add_argument(
        "--out", default=None, help="output folder (default: edits/<index>-<class>, e.g. edits/0-circle)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_edit)


def add_inversion_arg(p: argparse._ActionsContainer) -> None:
    """``--inversion``: how ``edit`` and ``report --images`` invert the user's images."""
    from ..editing.inversion import INVERSION_METHODS

    p.add_argument(
        "--inversion",
        default=None,
        choices=INVERSION_METHODS,
        help="how images are inverted: direct (default; recorded per-step offsets), null-text (Mokady et al.; the "
        "default with --method null-vae) or negative-prompt (no optimisation); see docs/editing.md",
    )


def _add_edit_args(p: argparse.ArgumentParser) -> None:
    """The images, the token and the edit's settings (defaults: the paper's; world: the world preset's)."""
    from ..editing.edit import CROSS_REPLACE, METHODS, NOISE_SIGMA, SELF_REPLACE
    from ..editor import EDIT_GUIDANCE, EDIT_PROMPT, EDIT_STEPS, EditSettings
    from ..world.presets import WORLD_EDIT as W

    p.add_argument("--images", required=True, help="a folder, a glob ('val/*.jpg') or a file of your images")
    p.add_argument(
        "--token-file",
        required=True,
        help="learned token: a run folder or token file (learned_embeds.safetensors)",
    )
    p.add_argument(
        "--prompt",
        default=None,
        help=f"source prompt; the token goes before {{class_name}} (default: {EDIT_PROMPT!r}; world: "
        f"{W['prompt']!r})",
    )
    e = EditSettings()
    add_inversion_arg(p)
    p.add_argument(
        "--method",
        default=e.method,
        choices=METHODS,
        help="stochastic edits: none, noise on the token, null-text VAE, edit-prompt VAE",
    )
    p.add_argument("--samples", type=int, default=e.samples, help="stochastic edits per image")
    p.add_argument(
        "--sigma",
        type=float,
        default=None,
        help=f"noise method: scale x the token's RMS (default: {NOISE_SIGMA})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"denoising (DDIM inversion and edit) steps (default: {EDIT_STEPS}; world: {W['num_inference_steps']})",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help=f"CFG scale (default: {EDIT_GUIDANCE}; world: {W['guidance_scale']})",
    )
    p.add_argument(
        "--cross-replace",
        type=float,
        default=None,
        help=f"fraction of steps with the source's cross-attention (default: {CROSS_REPLACE}; world: "
        f"{W['cross_replace']})",
    )
    p.add_argument(
        "--self-replace",
        type=float,
        default=None,
        help=f"fraction of steps with the source's self-attention (default: {SELF_REPLACE}; world: "
        f"{W['self_replace']})",
    )
    p.add_argument("--vae-steps", type=int, default=None, help="training steps of the null-vae/cond-vae VAE")
    p.add_argument("--seed", type=int, default=e.seed, help="seed of the stochastic edits")
    p.add_argument("--max-images", type=int, default=None, help="edit at most this many images")


def _add_metric_args(p: argparse.ArgumentParser) -> None:
    """LPIPS and the open_clip scorer of CLIP-T/CLIP-I and the concept shifts."""
    from ..analysis.concepts import DEFAULT_CLIP_ARCH
    from ..editing.metrics import LPIPS_NETS

    p.add_argument(
        "--lpips-weights", default=None, help="torchvision backbone state dict for LPIPS (optional)"
    )
    p.add_argument("--lpips-net", default=LPIPS_NETS[0], choices=LPIPS_NETS, help="LPIPS backbone")
    p.add_argument(
        "--concepts", default=None, help="concept file for the concept shifts (with --clip-weights)"
    )
    p.add_argument("--clip-arch", default=DEFAULT_CLIP_ARCH, help="open_clip architecture of --clip-weights")
    p.add_argument(
        "--clip-weights", default=None, help="local open_clip weights: CLIP-T/CLIP-I and concept shifts"
    )
