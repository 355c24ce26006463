"""The audit's one confirmation rule, its settings checks and its recorded timings (tiny random pipeline)."""

import json

import pytest
import torch

from disco_inspect import DiscoConfig
from disco_inspect.analysis import intervention as intervention_module
from disco_inspect.auditor import AuditSettings, audit
from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import Classifier, Preprocessing
from disco_inspect.report.schema import validate_report
from disco_inspect.testing import ColourScorer, TinyCNN


@pytest.fixture(scope="module")
def tiny():
    from disco_inspect.testing import tiny_pipeline

    torch.manual_seed(0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["cat", "dog", "fox"], source="tiny")
    cfg = DiscoConfig(
        n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=2, patience=2, accuracy_threshold=1.0
    )
    return tiny_pipeline(seed=0), clf, cfg


def _settings(**kw):
    base = {
        "eval_seeds": 4,
        "intervention_seeds": 4,
        "attribution_images": 0,
        "min_effect": 0.0,
        "alpha": 0.5,
    }
    return AuditSettings(**{**base, **kw})


def test_top_factor_confirmation_uses_the_scans_test(tiny, tmp_path):
    """``scan=False`` tests only the top factors, with the same rule as the scan: the reference is applied (against
    itself nothing is confirmed), the scale is the one asked for, and the method says so."""
    pipe, clf, cfg = tiny
    settings = _settings(
        scan=False,
        null_control=False,
        confirm_differential=True,
        scan_scale="logodds",
        confirm_min_logodds=0.0,
    )
    res = audit(
        pipe,
        clf,
        0,
        scorer=ColourScorer(),
        config=cfg,
        settings=settings,
        reference=clf,
        out=tmp_path,
        progress=False,
    )
    tested = [f for f in res.factors.factors if f.intervention is not None]
    assert tested, "the tiny audit must intervene on at least one top factor"
    assert all(f.intervention.scale == "logodds" and f.intervention.reference for f in tested)
    assert not res.factors.reported  # the differential against itself is exactly 0
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    method = doc["factors"]["method"]
    assert method["scan_scale"] == "logodds" and "differential effect" in method["interventions"]
    assert "top" in method["interventions"]


def test_report_json_records_the_report_stage_time(tiny, tmp_path):
    pipe, clf, cfg = tiny
    res = audit(
        pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=_settings(), out=tmp_path, progress=False
    )
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["timings"]["report"] > 0 and res.timings["report"] == doc["timings"]["report"]


def test_intervene_tests_the_margin_not_zero(monkeypatch):
    """An effect just above ``min_effect`` that is not significantly above it is not confirmed (the scan's rule);
    a clear one is."""

    def fake_generate(pipe, prompts, seeds, **kw):
        return torch.zeros(len(prompts), 3, 4, 4)

    def probs_for(factor_gain):
        def fake_probs(classifier, images, target):  # 8 seeds x [factor, contrast]
            return torch.cat([0.5 + torch.tensor(factor_gain), torch.full((8,), 0.5)])

        return fake_probs

    monkeypatch.setattr("disco_inspect.engine.sampling.generate", fake_generate)
    gain = [0.06 + d for d in (0.03, -0.03, 0.02, -0.02, 0.03, -0.03, 0.01, -0.01)]  # mean 0.06
    monkeypatch.setattr(intervention_module, "target_probabilities", probs_for(gain))
    iv, _, _ = intervention_module.intervene(None, None, 0, "a f", ["a c"], list(range(8)), min_effect=0.05)
    assert iv.effect == pytest.approx(0.06, abs=1e-6) and iv.p_value > 0.05 and not iv.confirmed
    monkeypatch.setattr(intervention_module, "target_probabilities", probs_for([0.3] * 8))
    iv, _, _ = intervention_module.intervene(None, None, 0, "a f", ["a c"], list(range(8)), min_effect=0.05)
    assert iv.confirmed and iv.p_value < 0.01


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_effect", -0.1),
        ("min_effect", 1.5),
        ("confirm_min_effect", -0.1),
        ("attribution_methods", ("integrated_gradients", "saliency_by_magic")),
    ],
)
def test_settings_refuse_bad_values(field, value):
    with pytest.raises(DiscoInspectError, match=f"`{field}`"):
        AuditSettings(**{field: value})


def test_settings_refuse_what_would_be_ignored():
    """A value set away from its default that the audit would not use is refused, naming the setting that
    switches it on."""
    with pytest.raises(DiscoInspectError, match="`control_draws`.*`null_control`"):
        AuditSettings(null_control=False, control_draws=5)
    with pytest.raises(DiscoInspectError, match="`confirm_min_logodds`.*`scan_scale`"):
        AuditSettings(confirm_min_logodds=2.0)
    with pytest.raises(DiscoInspectError, match="`attribution_methods`.*`attribution_images`"):
        AuditSettings(attribution_images=0, attribution_methods=("occlusion",))
    with pytest.raises(DiscoInspectError, match="`saturated_intervention_seeds`.*`confirm_top`"):
        AuditSettings(scan=False, confirm_top=0, saturated_intervention_seeds=64)
    AuditSettings(
        scan_scale="auto", confirm_min_logodds=2.0, null_control=False
    )  # used, or at their defaults


def test_every_long_stage_shows_progress_and_none_without_it(tiny, tmp_path, capsys):
    """The paired evaluation, the null control and the attributions each show a bar (the token's and the scan's
    already do); ``progress=False`` shows none."""
    pipe, clf, cfg = tiny
    settings = _settings(attribution_images=1, attribution_methods=("occlusion",), control_draws=1)
    audit(
        pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=tmp_path / "a", progress=True
    )
    err = capsys.readouterr().err
    for stage in ("evaluation images", "null control", "attributions", "intervention scan"):
        assert stage in err, stage
    audit(
        pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=tmp_path / "a", progress=False
    )
    assert "evaluation images" not in capsys.readouterr().err


def test_adaptive_seeds_settings():
    """On by default with a stated maximum; a maximum that leaves no second stage is refused, one that would be
    ignored too, and the stage-2 seeds follow the first stage's."""
    from disco_inspect.auditor import extra_seed_list, intervention_seed_list

    s = AuditSettings()
    assert s.adaptive_scan == "saturated" and s.max_intervention_seeds > s.intervention_seeds
    first = intervention_seed_list(s, "saturated")
    extra = extra_seed_list(s, first, "saturated")
    assert len(first) + len(extra) == s.max_intervention_seeds and extra[0] == first[-1] + 1
    assert (
        extra_seed_list(s, first, "learning") == []
    )  # the default spends more seeds where effects are compressed
    assert extra_seed_list(AuditSettings(adaptive_scan="all"), first, "learning") == extra
    assert extra_seed_list(AuditSettings(adaptive_scan="off"), first, "saturated") == []
    assert extra_seed_list(AuditSettings(saturated_intervention_seeds=64), list(range(64)), "saturated") == []
    with pytest.raises(DiscoInspectError, match="`adaptive_scan` = 'yes' is invalid"):
        AuditSettings(adaptive_scan="yes")
    with pytest.raises(DiscoInspectError, match="`max_intervention_seeds` = 16 leaves no seeds"):
        AuditSettings(max_intervention_seeds=16)
    with pytest.raises(DiscoInspectError, match="`max_intervention_seeds`.*`adaptive_scan` is 'off'"):
        AuditSettings(adaptive_scan="off", max_intervention_seeds=64)
