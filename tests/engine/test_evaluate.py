"""evaluate_accuracy: paired seeds, with vs without the token, top-1/top-5 under a classifier."""
import pytest

from disco_inspect import DiscoConfig, DiscoInspectError, evaluate_accuracy, train_token
from disco_inspect.testing import tiny_classifier, tiny_pipeline

CFG = DiscoConfig(n_images=3, num_inference_steps=3, guidance_scale=3.0, lr=0.05, max_iters=3, patience=100,
                  accuracy_threshold=1.0)


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
    res2 = evaluate_accuracy(fresh, tiny_clf, "cross", run.token_path, n_seeds=6, seed=100,
                             num_inference_steps=CFG.num_inference_steps, guidance_scale=CFG.guidance_scale)
    assert res2.token["target_prob_mean"] == pytest.approx(res.token["target_prob_mean"], abs=1e-5)
    assert res2.baseline == pytest.approx(res.baseline)


def test_eval_classifier_scores_by_name(tiny_pipe, tiny_clf, tmp_path):
    run = train_token(tiny_pipe, tiny_clf, "square", config=CFG.replace(max_iters=1), progress=False)
    other = tiny_classifier(seed=5)
    res = evaluate_accuracy(tiny_pipe, tiny_clf, "square", run, n_seeds=2, eval_classifier=other)
    assert res.target == 1 and len(res.token_items) == 2


def test_unknown_token_string(tiny_pipe, tiny_clf):
    with pytest.raises(DiscoInspectError, match="<nope>"):
        evaluate_accuracy(tiny_pipe, tiny_clf, "square", "<nope>", n_seeds=1)
