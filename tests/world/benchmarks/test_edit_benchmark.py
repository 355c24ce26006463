"""Ground truth of counterfactual editing on the world (issue 10): 32 rendered circles on non-green backgrounds,
edited with the token the main job learns for world:biased_circle_green. Numbers are read by the oracle and the
classifier on the edited images."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bench(tmp_path_factory, new_world_pipeline):
    # The token as the main job learns it: the default 2 threads (the token varies with floating-point order; on the
    # AMD EPYC of 2026-12-07 a 1-thread token turned 44 % of the backgrounds green, the main job's 100 %, see
    # docs/benchmarks.md "Inversion methods side by side"). The autouse fixture restores the thread count.
    torch.set_num_threads(2)
    from disco_inspect.auditor import default_config
    from disco_inspect.engine.optimize import train_token
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.world.benchmarks.edits import run_edit_benchmark

    pipe = new_world_pipeline()  # the token is trained and installed on it
    clf = load_classifier("world:biased_circle_green")
    run = train_token(
        pipe, clf, "circle", config=default_config(pipe), out=tmp_path_factory.mktemp("run"), progress=False
    )
    return run_edit_benchmark(run.token_path, n=32, samples=2, pipe=pipe, classifier=clf, progress=False)


@pytest.mark.slow
def test_null_text_inversion_reconstructs_near_the_vae_ceiling(bench):
    r = bench["reconstruction"]
    assert r["null_text_psnr"] >= r["vae_psnr"] - 1.0
    assert r["null_text_psnr"] >= r["plain_ddim_psnr"] + 5.0


@pytest.mark.slow
def test_deterministic_edit_turns_backgrounds_green_and_keeps_the_circle(bench):
    d = bench["deterministic"]
    assert bench["source"]["green_rate"] == 0.0
    assert d["green_rate"] >= 0.5
    assert d["shape_accuracy"] >= 0.95
    assert d["delta_p"] > 0 and d["delta_p_ci95"][0] > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["noise", "null-vae", "cond-vae"])
def test_stochastic_edits_are_diverse_within_the_upper_bound(bench, method):
    row = bench["methods"][method]
    assert 0 < row["diversity"] < row["upper_bound"]
    assert row["psnr"] is not None and row["distance"] is not None
