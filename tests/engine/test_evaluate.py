"""evaluate_accuracy: paired seeds, with vs without the token, top-1/top-5 under a classifier."""

import pytest

from disco_inspect import DiscoConfig, DiscoInspectError, evaluate_accuracy, train_token
from disco_inspect.testing import tiny_classifier, tiny_pipeline

CFG = DiscoConfig(
    n_images=3,
    num_inference_steps=3,
    guidance_scale=3.0,
    lr=0.05,
    max_iters=3,
    patience=100,
    accuracy_threshold=1.0,
)


def test_paired_top1_top5_from_run_and_from_file(tiny_pipe, tiny_clf, tmp_path):
    run = train_token(tiny_pipe, tiny_clf, "cross", config=CFG, out=tmp_path / "run", progress=False)
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", run, n_seeds=6, seed=100)
    assert res.seeds == list(range(100, 106))
    assert [i["seed"] for i in res.baseline_items] == [i["seed"] for i in res.token_items] == res.seeds
    assert all("<S>" in i["prompt"] for i in res.token_items)
    assert all("<S>" not in i["prompt"] and "cross" in i["prompt"] for i in res.baseline_items)
    for r in (res.baseline, res.token):
        assert 0 <= r["accuracy"] <= r["top5_accuracy"] <= 1
    assert res.baseline["top5_accuracy"] == 1.0  # 4 classes: the target is always in the top 5
    # the same token loaded from its file into a fresh pipeline gives the same numbers
    fresh = tiny_pipeline(seed=0)
    res2 = evaluate_accuracy(
        fresh,
        tiny_clf,
        "cross",
        run.token_path,
        n_seeds=6,
        seed=100,
        num_inference_steps=CFG.num_inference_steps,
        guidance_scale=CFG.guidance_scale,
    )
    assert res2.token["target_prob_mean"] == pytest.approx(res.token["target_prob_mean"], abs=1e-5)
    assert res2.baseline == pytest.approx(res.baseline)


def test_eval_classifier_scores_by_name(tiny_pipe, tiny_clf, tmp_path):
    run = train_token(tiny_pipe, tiny_clf, "square", config=CFG.replace(max_iters=1), progress=False)
    other = tiny_classifier(seed=5)
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "square", run, n_seeds=2, eval_classifier=other)
    assert res.target == 1 and len(res.token_items) == 2


def test_eval_class_maps_the_class_into_another_label_set(tiny_pipe, tiny_clf):
    """The paper scores iNat images of a CUB-guided token: the other classifier names the class differently."""
    run = train_token(tiny_pipe, tiny_clf, "square", config=CFG.replace(max_iters=1), progress=False)
    from disco_inspect.models.classifiers import Classifier

    six = tiny_classifier(seed=5, num_classes=6)
    other = Classifier(six.module, six.preprocessing, ["a", "b", "c", "d", "quadrate", "f"], source="other")
    res = evaluate_accuracy(
        tiny_pipe, tiny_clf, "square", run, n_seeds=2, eval_classifier=other, eval_class="quadrate"
    )
    assert res.target == 4 and res.class_name == "square"
    assert all(len(i["topk"]) == 5 for i in res.token_items)
    with pytest.raises(DiscoInspectError, match="quadrate"):
        evaluate_accuracy(
            tiny_pipe, tiny_clf, "square", run, n_seeds=2, eval_classifier=tiny_clf, eval_class="quadrate"
        )
    with pytest.raises(DiscoInspectError, match="pass that classifier"):
        evaluate_accuracy(tiny_pipe, tiny_clf, "square", run, n_seeds=2, eval_class="quadrate")


def test_unknown_token_string(tiny_pipe, tiny_clf):
    with pytest.raises(DiscoInspectError, match="<nope>"):
        evaluate_accuracy(tiny_pipe, tiny_clf, "square", "<nope>", n_seeds=1)


def test_default_seeds_are_disjoint_from_training_seeds(tiny_pipe, tiny_clf, tmp_path, caplog):
    from disco_inspect.engine.token_run import TokenRun

    cfg = CFG.replace(seed=0, seed_pool=40, max_iters=1)
    train_token(tiny_pipe, tiny_clf, "cross", config=cfg, out=tmp_path / "run", progress=False)
    run = TokenRun.load(tmp_path / "run")
    trained = set(range(cfg.seed, cfg.seed + cfg.seed_pool))
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", run, n_seeds=2)
    assert not trained & set(res.seeds), f"evaluation seeds {res.seeds} overlap the training seeds"
    # a run whose training seeds reach past 1000: evaluation starts after them
    late = TokenRun.load(tmp_path / "run")
    late.config = late.config.replace(seed=990)
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", late, n_seeds=2)
    assert res.seeds[0] >= 990 + 40
    # an explicit overlapping seed is honoured, with a warning
    with caplog.at_level("WARNING", logger="disco_inspect"):
        res = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", run, n_seeds=2, seed=38)
    assert res.seeds == [38, 39]
    assert any("overlap" in r.getMessage() and "38" in r.getMessage() for r in caplog.records)


def test_evaluation_uses_the_runs_scheduler_and_restores(tiny_pipe, tiny_clf, tmp_path, monkeypatch):
    from disco_inspect.engine import evaluate as ev
    from disco_inspect.engine.token_run import TokenRun
    from disco_inspect.models.pipelines import set_scheduler

    train_token(
        tiny_pipe, tiny_clf, "cross", config=CFG.replace(max_iters=1), out=tmp_path / "run", progress=False
    )
    run = TokenRun.load(tmp_path / "run")  # trained with DDIM / trailing (tiny_pipeline's default)
    expected = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", run, n_seeds=2)
    set_scheduler(tiny_pipe, "euler", "leading")
    before = tiny_pipe.scheduler
    seen = []
    real_generate = ev.generate

    def spy(pipe, *a, **k):
        seen.append((type(pipe.scheduler).__name__, pipe.scheduler.config.timestep_spacing))
        return real_generate(pipe, *a, **k)

    monkeypatch.setattr(ev, "generate", spy)
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "cross", run, n_seeds=2)
    assert seen == [("DDIMScheduler", "trailing")] * 2
    assert res.token == pytest.approx(expected.token) and res.baseline == pytest.approx(expected.baseline)
    assert tiny_pipe.scheduler is before and tiny_pipe.scheduler.config.timestep_spacing == "leading"
