"""FID in the world oracle's feature space: it separates shapes, and the Table-3 adapter runs on the world pipeline."""

from __future__ import annotations

import math

import pytest
import torch

from disco_inspect.errors import DiscoInspectError


@pytest.fixture(scope="module")
def world(new_world_pipeline):
    torch.set_num_threads(1)
    return new_world_pipeline()  # the FID table installs the token on it


def test_oracle_penultimate_is_the_trunk_output():
    from disco_inspect.world.oracle import load_oracle
    from disco_inspect.world.scenes import generate_scenes

    oracle = load_oracle()
    x = generate_scenes(5, seed=0).images
    h = oracle.penultimate(x, batch_size=2)
    assert h.shape == (5, 256) and not h.requires_grad and not oracle.training
    expected = oracle.heads["shape"](h)
    torch.testing.assert_close(expected, oracle(x)["shape"], rtol=1e-4, atol=1e-4)


def test_oracle_fid_separates_circles_from_squares():
    from disco_inspect.analysis.fid import frechet_distance
    from disco_inspect.world.benchmarks.oracle_fid import OracleFeatures
    from disco_inspect.world.scenes import generate_scenes

    feats = OracleFeatures()
    circles_a = generate_scenes(64, seed=1, fixed={"shape": "circle"}).images
    circles_b = generate_scenes(64, seed=2, fixed={"shape": "circle"}).images
    squares = generate_scenes(64, seed=3, fixed={"shape": "square"}).images
    same = frechet_distance(circles_a, circles_b, feats)
    different = frechet_distance(circles_a, squares, feats)
    assert 0 < same * 5 < different, (same, different)  # measured: 262 vs 2971
    # other sizes are resized to the oracle's 32x32
    assert feats(torch.nn.functional.interpolate(circles_a[:4], size=64)).shape == (4, 256)


def test_world_fid_table_runs_on_the_world_pipeline(world):
    from disco_inspect.engine.token import put_token
    from disco_inspect.engine.token_run import TokenRun
    from disco_inspect.world import world_fid_table
    from disco_inspect.world.presets import world_config

    width = world.text_encoder.get_input_embeddings().weight.shape[-1]
    scale = world.text_encoder.get_input_embeddings().weight.norm(dim=-1).mean()
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(width, generator=g)
    run = TokenRun(
        token="<S>",
        target=0,
        class_name="circle",
        config=world_config(),
        embedding=vec / vec.norm() * scale,
        initial_embedding=vec,
        best_step=0,
        stopped="max_iters",
        trajectory=[],
        baseline={},
    )
    other = torch.randn(width, generator=g)
    put_token(world, "<fid>", other / other.norm() * scale)
    table = world_fid_table(world, {"circle": run, "square": "<fid>"}, n=8, real_seed=5)

    assert table["metric"] == "FID (oracle features)"
    assert list(table["rows"]) == ["circle", "square", "mean"]
    for row in table["rows"].values():
        assert set(row) == {"baseline", "token", "n_real", "n_generated"}
        assert math.isfinite(row["baseline"]) and math.isfinite(row["token"])
        assert row["baseline"] >= 0 and row["token"] >= 0
    assert table["rows"]["circle"]["n_real"] == 8 and table["rows"]["circle"]["n_generated"] == 8
    assert table["rows"]["mean"]["n_generated"] == 16
    assert table["seeds"]["circle"] == list(range(1000, 1008))  # held out of the run's training seeds 35..74

    with pytest.raises(DiscoInspectError, match="'lobster'.*not a world class"):
        world_fid_table(world, {"lobster": run}, n=8)
    with pytest.raises(DiscoInspectError, match="run for the class 'circle'"):
        world_fid_table(world, {"square": run}, n=8)
    with pytest.raises(DiscoInspectError, match="'<nope>' is not in the pipeline's tokenizer"):
        world_fid_table(world, {"square": "<nope>"}, n=8)
    with pytest.raises(DiscoInspectError, match="`n` = 1"):
        world_fid_table(world, {"circle": run}, n=1)
