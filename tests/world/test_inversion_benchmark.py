"""The inversion methods side by side on the world (issue 24): every method is measured on the same scenes."""

from __future__ import annotations

import torch


def test_the_inversion_table_measures_every_method_on_the_same_scenes(new_world_pipeline):
    """On 2 rendered circles (1 timed run each): direct inversion reconstructs at the VAE's own ceiling; every
    method's row has its reconstruction, green rate, Δp and its cost as a ratio to one generation."""
    from disco_inspect.world.benchmarks.inversions import compare_inversions, format_inversion_table

    pipe = new_world_pipeline()  # the edit installs the token
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    token = ("<S>", torch.randn(width, generator=torch.Generator().manual_seed(0)))
    res = compare_inversions(token, n=2, repeats=1, pipe=pipe)
    assert list(res["methods"]) == ["null-text", "negative-prompt", "direct"]
    direct = res["methods"]["direct"]
    assert abs(direct["reconstruction_psnr"] - res["vae"]["psnr"]) < 0.1
    for row in res["methods"].values():
        assert 0 <= row["green_rate"] <= 1 and row["inversion_vs_one_generation"] > 0
    neg, null = res["methods"]["negative-prompt"], res["methods"]["null-text"]
    assert neg["inversion_seconds_per_image"] < null["inversion_seconds_per_image"]
    table = format_inversion_table(res)
    assert table.count("\n| ") == 4 and "× one generation" in table
