"""SDXL base at full size with random weights (issue 23, item 1): `train` 2 iterations, `report` through the scan on
2 concepts, `evaluate`, `edit` one image, on ``StableDiffusionXLPipeline`` built from SDXL base's published
configurations (disco_inspect.testing.SDXL_UNET and the others: 2.6 B UNet + 0.8 B text parameters), nothing
downloaded. CI runs the same checks with the UNet's widths halved and a 4-layer bigG tower
(tests/models/test_family_sdxl.py); this is the full-size run, too slow for CI on 2 cores.

Run: ``python benchmarks/sdxl_shaped.py`` (writes benchmarks/results/sdxl-shaped.json: each check's outcome,
seconds, UNet rows counted, peak RSS). 64 px images and 2 steps, for time; widths and layouts are the real ones.
"""

from __future__ import annotations

import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "sdxl-shaped.json"


def _cpu() -> str:
    """The CPU's model name (Linux), else the platform's description."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _checks(pipe, work: Path) -> dict:
    """The four checks; each stage's seconds and what it found."""
    from disco_inspect.auditor import AuditSettings, audit
    from disco_inspect.config import DiscoConfig
    from disco_inspect.editing.edit import edit
    from disco_inspect.editing.inversion import invert, reconstruct
    from disco_inspect.engine.evaluate import evaluate_accuracy
    from disco_inspect.report.schema import validate_report
    from disco_inspect.testing import ColourScorer, tiny_classifier

    out: dict = {}
    clf = tiny_classifier(seed=0, input_size=64)
    encoders = (pipe.text_encoder, pipe.text_encoder_2)
    before = [te.get_input_embeddings().weight.detach().clone() for te in encoders]
    # 1. report (token training 2 iterations, evaluation, the scan on 2 concepts x 4 seeds)
    t = time.perf_counter()
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=2, guidance_scale=3.0, seed=0)
    settings = AuditSettings(eval_seeds=4, intervention_seeds=4, attribution_images=0, null_control=False)
    res = audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=work, progress=False)
    doc = json.loads((work / "report.json").read_text())
    validate_report(doc)
    rows_ok = all(
        te.get_input_embeddings().weight.shape[0] == old.shape[0] + 1
        and torch.equal(te.get_input_embeddings().weight[: len(old)], old)
        for old, te in zip(before, encoders, strict=True)
    )
    out["report"] = {
        "seconds": time.perf_counter() - t,
        "only_new_rows_changed": rows_ok,
        "calls": doc["calls"],
    }
    # 2. evaluate the learned token
    t = time.perf_counter()
    acc = evaluate_accuracy(pipe, clf, 0, res.run, n_seeds=2, num_inference_steps=2, guidance_scale=3.0)
    out["evaluate"] = {"seconds": time.perf_counter() - t, "token_accuracy": acc.token["accuracy"]}
    # 3. edit one image with it (null-text inversion, 2 inner steps)
    t = time.perf_counter()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    inv = invert(
        pipe,
        images,
        "a photo of a circle",
        num_inference_steps=2,
        guidance_scale=3.0,
        inner_steps=2,
        progress=False,
    )
    edited = edit(pipe, inv, res.run.token_path, class_name="circle", progress=False).edits
    out["edit"] = {
        "seconds": time.perf_counter() - t,
        "finite": bool(torch.isfinite(reconstruct(pipe, inv)).all() and torch.isfinite(edited).all()),
        "shape": list(edited.shape),
    }
    return out


def main() -> None:
    from disco_inspect.testing import sdxl_shaped_pipeline

    torch.set_num_threads(2)
    t = time.perf_counter()
    pipe = sdxl_shaped_pipeline(image_size=64)
    built = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        checks = _checks(pipe, Path(tmp))
    doc = {
        "what": "SDXL base, published configurations at full widths, random weights; 64 px, 2 steps",
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu(),
        "threads": torch.get_num_threads(),
        "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
        "text_params": sum(
            p.numel() for te in (pipe.text_encoder, pipe.text_encoder_2) for p in te.parameters()
        ),
        "build_seconds": built,
        "checks": checks,
        "peak_rss_gb": _peak_gb(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
