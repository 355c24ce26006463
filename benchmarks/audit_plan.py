"""What one audit costs at the paper's defaults on an SD-1.5-shaped pipeline, counted by `plan_audit` (issue 23).

The counts depend on the scheduler (SD 1.5 ships PNDM with ``skip_prk_steps``: 30 steps are 31 UNet calls), on
classifier-free guidance, on the audit's settings and on the concept bank's prompts, not on the UNet's weights or
widths, so the tiny random pipeline with SD 1.5's scheduler configuration gives the real numbers; nothing is
generated (``probe=False``: no time estimate, which needs the user's device). Planned twice: without the user's
images, with 64 of them (``report --images``: the real-data slice, their inversion and token edits at the SD
editing preset, the real-image counterfactual scan), and without images with the scan at fewer steps
(``--scan-steps 10`` and ``15``: the share of today's UNet evaluations they leave; whether the world benchmark's
decisions hold at such a step count is measured separately, docs/benchmarks.md). Run: ``python benchmarks/audit_plan.py`` (prints the plans;
writes benchmarks/results/audit-plan-sd15.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import PNDMScheduler

from disco_inspect import AuditSettings, DiscoConfig
from disco_inspect.analysis.concepts import DEFAULT_CONCEPTS, DEFAULT_INTERVENTIONS
from disco_inspect.planner import plan_audit
from disco_inspect.testing import tiny_pipeline

#: runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (the published file's fields).
SD15_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


class BankPrompts:
    """The shipped concept bank's prompts (what OpenClipScorer intervenes with), without CLIP weights."""

    concepts = list(DEFAULT_CONCEPTS)

    def intervention(self, concept: str, class_name: str) -> tuple[str, list[str]]:
        factor, contrasts = DEFAULT_INTERVENTIONS[concept]
        return factor.format(class_name=class_name), [c.format(class_name=class_name) for c in contrasts]


def main() -> dict:
    pipe = tiny_pipeline(seed=0)
    pipe.scheduler = PNDMScheduler.from_config(SD15_SCHEDULER)
    doc: dict = {"pipeline": "SD-1.5 scheduler (PNDM), paper defaults"}
    arms = {
        "without_images": (None, None),
        "with_64_images": (64, None),
        "without_images_scan_steps_15": (None, 15),
        "without_images_scan_steps_10": (None, 10),
    }
    for name, (images, scan_steps) in arms.items():
        plan = plan_audit(
            pipe,
            "American lobster",
            scorer=BankPrompts(),
            config=DiscoConfig(),
            settings=AuditSettings(scan_steps=scan_steps),
            probe=False,
            user_images=images,
        )
        print(name.replace("_", " "))
        print(plan.format())
        doc[name] = plan.to_dict()
    base = doc["without_images"]["total"]["unet"]
    for name in ("without_images_scan_steps_15", "without_images_scan_steps_10"):
        lo, hi = doc[name]["total"]["unet"]
        doc[name]["share_of_default_unet"] = [lo / base[0], hi / base[1]]
        print(
            f"{name.replace('_', ' ')}: {lo / base[0]:.0%}-{hi / base[1]:.0%} of the default's UNet evaluations"
        )
    out = Path(__file__).parent / "results" / "audit-plan-sd15.json"
    out.write_text(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    main()
