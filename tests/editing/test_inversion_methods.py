"""The three inversion methods on tiny random components: what each one reconstructs and what it costs."""

from __future__ import annotations

import pytest
import torch

from disco_inspect import DiscoInspectError
from disco_inspect.editing.edit import edit_to_prompts
from disco_inspect.editing.inversion import INVERSION_METHODS, invert, reconstruct


def _images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone()
    base[:, :, 8:24, 8:24] = torch.rand(n, 3, 1, 1, generator=g)
    return base


def _counting(monkeypatch, pipe) -> list[int]:
    """Rows the UNet sees per call (a CFG call on B images counts 2B rows)."""
    rows, forward = [], pipe.unet.forward

    def counted(sample, *a, **k):
        rows.append(int(sample.shape[0]))
        return forward(sample, *a, **k)

    monkeypatch.setattr(pipe.unet, "forward", counted)
    return rows


def _invert(pipe, method, **kw):
    return invert(
        pipe,
        _images(),
        "a photo of a circle",
        num_inference_steps=4,
        guidance_scale=5.0,
        method=method,
        progress=False,
        **kw,
    )


def test_direct_inversion_reconstructs_the_pivot_exactly(tiny_pipe, monkeypatch):
    """Under guidance, sampling with direct inversion's offsets lands on the encoded image (to float error); null-text
    only approximately; plain DDIM (no correction) worst."""
    monkeypatch.setattr("disco_inspect.engine.sampling.decode", lambda pipe, x: x)  # keep the latents
    err = {}
    for method in INVERSION_METHODS:
        inv = _invert(tiny_pipe, method)
        assert inv.method == method and inv.settings()["inversion"] == method
        err[method] = float((reconstruct(tiny_pipe, inv) - inv.latents[0]).pow(2).mean())
    plain = float((reconstruct(tiny_pipe, inv, use_null=False) - inv.latents[0]).pow(2).mean())
    assert err["direct"] < 1e-6 and err["direct"] < 1e-3 * err["null-text"] and err["null-text"] < plain
    assert err["negative-prompt"] < plain


def test_negative_prompt_and_direct_cost_a_fraction_of_null_text(tiny_pipe, monkeypatch):
    """UNet rows per image and step: negative-prompt 1 (the DDIM pass only, no gradient), direct 1 + 2 (one guided
    pass on the pivot), null-text far more (Adam on every step)."""
    rows = _counting(monkeypatch, tiny_pipe)
    cost = {}
    for method in INVERSION_METHODS:
        rows.clear()
        _invert(tiny_pipe, method)
        cost[method] = sum(rows) / (2 * 4)  # 2 images, 4 steps
    assert cost["negative-prompt"] == 1 and cost["direct"] == 3 and cost["null-text"] > 6


def test_negative_prompt_inversion_uses_the_source_prompt_as_null(tiny_pipe):
    from disco_inspect.engine.sampling import encode

    inv = _invert(tiny_pipe, "negative-prompt")
    cond = encode(tiny_pipe, ["a photo of a circle"]).float()
    assert torch.allclose(inv.null_embeddings, cond.expand(4, 2, -1, -1))
    assert inv.offsets is None and torch.isnan(inv.null_loss).all()  # nothing was fitted


def test_methods_are_cached_apart_and_edits_follow_the_method(tiny_pipe, tmp_path):
    """One cache folder, three methods: each is inverted once and read back as itself; a concept edit from a direct
    inversion keeps the source row on the pivot (its source image is the exact reconstruction)."""
    first = {m: _invert(tiny_pipe, m, cache_dir=tmp_path) for m in INVERSION_METHODS}
    again = {m: _invert(tiny_pipe, m, cache_dir=tmp_path) for m in INVERSION_METHODS}
    assert len({tuple(inv.keys) for inv in first.values()}) == 3
    for m in INVERSION_METHODS:
        assert again[m].cached == [True, True] and again[m].method == m
        assert torch.equal(first[m].null_embeddings, again[m].null_embeddings)
    assert torch.equal(first["direct"].offsets, again["direct"].offsets)
    prompts = ["a circle on a green background"]
    edits = edit_to_prompts(tiny_pipe, again["direct"], prompts, batch_size=2, progress=False)
    assert edits.shape == (1, 2, 3, 32, 32) and torch.isfinite(edits).all()
    sub = again["direct"].select([1])
    assert sub.offsets.shape[1] == 1 and torch.equal(sub.offsets[:, 0], again["direct"].offsets[:, 1])


def test_an_unknown_inversion_method_is_refused(tiny_pipe):
    with pytest.raises(
        DiscoInspectError, match="`method` = 'pnp' is not an inversion method; use one of null-text"
    ):
        _invert(tiny_pipe, "pnp")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_direct_inversion_keeps_its_offsets_in_float32_on_a_half_precision_pipeline(dtype):
    from disco_inspect.testing import tiny_pipeline

    pipe = tiny_pipeline().to(dtype)
    inv = _invert(pipe, "direct")
    assert inv.offsets.dtype == torch.float32 and torch.isfinite(inv.offsets).all()
    edits = edit_to_prompts(pipe, inv, ["a circle on a green background"], progress=False)
    assert torch.isfinite(edits).all()


def test_the_null_text_vae_needs_null_text_inversion(tiny_pipe):
    """Method 1 samples the tuned null embeddings: a direct inversion has none, so it is refused in one line (and the
    edit settings pick null-text for it by default)."""
    from disco_inspect.editing.edit import edit
    from disco_inspect.editor import EditSettings

    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    token = ("<S>", torch.randn(width))
    with pytest.raises(DiscoInspectError, match="'null-vae' samples the tuned null embeddings"):
        edit(
            tiny_pipe, _invert(tiny_pipe, "direct"), token, class_name="circle", method="null-vae", samples=1
        )
    assert EditSettings(method="null-vae").resolved(tiny_pipe)["inversion"] == "null-text"
    assert EditSettings().resolved(tiny_pipe)["inversion"] == "direct"
    with pytest.raises(DiscoInspectError, match="use `inversion` = 'null-text'"):
        EditSettings(method="null-vae", inversion="direct")
