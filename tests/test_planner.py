"""`plan_audit` predicts, without generating anything, the model calls the audit then makes (counted per stage in
report.json's ``calls``), on the tiny random pipeline."""

import json

import pytest
import torch

from disco_inspect import DiscoConfig
from disco_inspect.auditor import AuditSettings, audit
from disco_inspect.engine.counting import COUNTS, StageClock
from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import Classifier, Preprocessing
from disco_inspect.planner import plan_audit
from disco_inspect.report.schema import validate_report
from disco_inspect.testing import ColourScorer, TinyCNN, tiny_pipeline


def test_plan_equals_the_counted_calls_of_the_audit(tmp_path):
    torch.manual_seed(0)
    pipe = tiny_pipeline(seed=0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["cat", "dog", "fox"], source="tiny")
    # no early stop (accuracy can never exceed 1.0, patience outlasts 2 iterations): the plan's "most" is exact
    cfg = DiscoConfig(
        n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=2, patience=2, accuracy_threshold=1.0
    )
    s = AuditSettings(eval_seeds=4, intervention_seeds=4, attribution_images=0, min_effect=0.0, alpha=0.5)
    plan = plan_audit(pipe, "cat", scorer=ColourScorer(), config=cfg, settings=s, probe=False)
    res = audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=s, out=tmp_path, progress=False)
    assert res.run.regime == "learning"
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    for stage in ("token", "evaluation", "null_control"):
        assert {k: plan.stages[stage].calls[k][1] for k in COUNTS} == doc["calls"][stage], stage
    assert (
        plan.stages["token"].calls["unet_grad"][1] == 2 * 2 * 2 * 1
    )  # 2 iterations x 2 images x CFG x 1 step
    # the scan: exact in the regime the audit found; both regimes bracket it
    scan = doc["calls"]["interventions"]
    learning = plan_audit(
        pipe, "cat", scorer=ColourScorer(), config=cfg, settings=s, regime="learning", probe=False
    )
    assert {k: learning.stages["interventions"].calls[k][1] for k in COUNTS} == scan
    lo, hi = plan.stages["interventions"].calls["unet"]
    assert lo <= scan["unet"] < hi  # the saturated regime's adaptive second stage could spend more
    assert doc["calls"]["total"]["unet"] == sum(c["unet"] for k, c in doc["calls"].items() if k != "total")
    assert "token" in plan.format() and json.dumps(plan.to_dict())


def test_counts_are_rows_and_hooks_do_not_linger():
    pipe = tiny_pipeline(seed=0)
    clock = StageClock(pipe)
    from disco_inspect.engine.sampling import generate

    with clock.stage("gen"):
        generate(pipe, ["a cat"] * 3, [0, 1, 2], num_inference_steps=2, guidance_scale=2.0)
    assert clock.calls["gen"]["unet"] == 3 * 2 * 2 and clock.calls["gen"]["vae_decode"] == 3
    assert not pipe.unet._forward_pre_hooks and not pipe.vae.decoder._forward_pre_hooks


def test_the_probe_times_one_call_of_each_model():
    pipe = tiny_pipeline(seed=0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["cat", "dog", "fox"], source="tiny")
    plan = plan_audit(pipe, "cat", scorer=ColourScorer(), classifier=clf)
    assert all(v > 0 for v in plan.unit_seconds.values())
    lo, hi = plan.seconds()
    assert 0 < lo <= hi and "estimated time" in plan.format()


@pytest.mark.parametrize("inversion", ["direct", "negative-prompt", "null-text"])
def test_plan_of_the_user_images_and_the_attributions_equals_the_counted_calls(tmp_path, inversion):
    """With 12 of the user's images: the real-data slice, the inversion and token edits, the real-image
    counterfactual scan and the attributions are planned (null-text's Adam updates as a range: they stop early)."""
    from disco_inspect.editor import EditSettings
    from disco_inspect.engine.run_folder import save_png

    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["bird", "cat", "dog"], source="tiny")
    imgs = tmp_path / "mine"
    for i in range(12):
        save_png(imgs / f"cat_{i:02d}.png", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)))
    cfg = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=1, patience=3, lr=0.05)
    s = AuditSettings(
        eval_seeds=4,
        intervention_seeds=4,
        attribution_images=2,
        min_effect=0.0,
        alpha=0.5,
        adaptive_scan="off",
    )
    edit = EditSettings(num_inference_steps=2, samples=2, inversion=inversion)
    same = {
        "scorer": ColourScorer(),
        "config": cfg,
        "settings": s,
        "user_images": imgs,
        "edit_settings": edit,
    }
    plan = plan_audit(tiny_pipeline(seed=0), "cat", classifier=clf, probe=False, **same)
    out = tmp_path / "audit"
    audit(tiny_pipeline(seed=0), clf, "cat", out=out, progress=False, **same)
    calls = json.loads((out / "report.json").read_text())["calls"]
    for name in ("real_data", "attributions", "edits", "real_edits"):
        planned = plan.stages[name].calls
        for k in COUNTS:
            lo, hi = planned[k]
            assert lo <= calls[name][k] <= hi, (name, k, planned[k], calls[name][k])
            if not (inversion == "null-text" and k == "unet_grad"):
                assert lo == hi, (name, k)  # exact but for null-text's early stop
    assert plan.stages["attributions"].calls["classifier_images"][0] > 0 and not plan.not_planned
    assert "real_edits" in plan.format()


def test_the_scan_runs_on_its_own_step_count_and_the_plan_counts_it(tmp_path):
    """``scan_steps``: the intervention scan samples with fewer steps than the token run (its UNet calls shrink in
    proportion, counted), the other stages keep theirs, the plan predicts it and report.json states it."""
    pipe = tiny_pipeline(seed=0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["cat", "dog", "fox"], source="tiny")
    cfg = DiscoConfig(n_images=2, num_inference_steps=4, guidance_scale=2.0, max_iters=1, patience=2)
    kw = {"eval_seeds": 4, "intervention_seeds": 4, "attribution_images": 0, "adaptive_scan": "off"}
    full, fast = AuditSettings(**kw), AuditSettings(**kw, scan_steps=1)
    res = audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=fast, out=tmp_path, progress=False)
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    n_images = doc["calls"]["interventions"]["vae_decode"]
    assert doc["calls"]["interventions"]["unet"] == n_images * 1 * 2  # 1 step, CFG
    assert doc["calls"]["evaluation"]["unet"] == doc["calls"]["evaluation"]["vae_decode"] * 4 * 2
    assert doc["factors"]["method"]["scan_steps"] == 1 and res.settings.scan_steps == 1
    plans = {
        name: plan_audit(
            pipe, "cat", scorer=ColourScorer(), config=cfg, settings=s, regime="learning", probe=False
        )
        for name, s in (("full", full), ("fast", fast))
    }
    assert {k: plans["fast"].stages["interventions"].calls[k][1] for k in COUNTS} == doc["calls"][
        "interventions"
    ]
    assert plans["full"].stages["interventions"].calls["unet"][1] == 4 * doc["calls"]["interventions"]["unet"]
    with pytest.raises(DiscoInspectError, match="scan_steps"):
        AuditSettings(scan_steps=0)
