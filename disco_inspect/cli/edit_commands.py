"""`edit`: counterfactual edits of the user's images with a learned token."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import class_folder, classifier_from, scorer_from, setup


def cmd_edit(args: argparse.Namespace) -> int:
    """Counterfactual edits of the user's images with a learned token (inversion, prompt-to-prompt, samples)."""
    from ..editor import EditSettings, edit_images

    settings = EditSettings(
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        cross_replace=args.cross_replace,
        self_replace=args.self_replace,
        method=args.method,
        samples=args.samples,
        sigma=args.sigma,
        seed=args.seed,
        vae_steps=args.vae_steps,
    )
    pipe = setup(args)
    clf = classifier_from(args)
    scorer = scorer_from(args, pipe) if (args.clip_weights or args.concepts) else None
    clip = None
    if args.clip_weights:
        clip = (scorer.model, scorer.tokenizer, scorer.preprocess)
    lpips = None
    if args.lpips_weights:
        from ..editing.metrics import lpips_distance

        lpips = lpips_distance(args.lpips_weights, args.lpips_net)
    out = (
        Path(args.out)
        if args.out
        else Path("edits")
        / class_folder(clf.resolve_class(args.target), clf.class_name(clf.resolve_class(args.target)))
    )
    result = edit_images(
        clf,
        args.target,
        args.images,
        args.token,
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
