"""Inversion and editing on tiny random diffusers components (behaviour, not numbers of a trained model)."""

from __future__ import annotations

import pytest
import torch

from disco_inspect import DiscoInspectError
from disco_inspect.editing.controller import AttentionInjection, inject_attention, token_alignment
from disco_inspect.editing.edit import edit, insert_token
from disco_inspect.editing.inversion import invert, reconstruct
from disco_inspect.editing.stochastic import EmbeddingVAE, NullVAE


def _images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone()
    base[:, :, 8:24, 8:24] = torch.rand(n, 3, 1, 1, generator=g)
    return base


def _token(pipe, scale: float = 1.0) -> tuple[str, torch.Tensor]:
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    return "<S>", torch.randn(width, generator=torch.Generator().manual_seed(3)) * scale


def test_insert_token_goes_before_the_class_name():
    assert insert_token("a photo of a circle", "<S>", "circle") == "a photo of a <S> circle"
    assert insert_token("a Circle on a circle mat", "<S>", "circle") == "a Circle on a <S> circle mat"
    with pytest.raises(DiscoInspectError, match="does not name the class"):
        insert_token("a photo of a dog", "<S>", "circle")


def test_token_alignment_maps_shared_words_around_the_insertion(tiny_pipe):
    _ = tiny_pipe.load_textual_inversion({"<S>": _token(tiny_pipe)[1]})
    index, alpha = token_alignment(tiny_pipe.tokenizer, "a photo of a circle", "a photo of a <S> circle")
    # [bos] a photo of a <S> circle [eos]: the token (position 5) is new, "circle" (6) maps to the source's 5
    assert alpha[5] == 0 and alpha[:5].eq(1).all() and alpha[6] == 1
    assert index[6] == 5 and index[4] == 4


def test_null_text_inversion_beats_plain_ddim_under_guidance(tiny_pipe, monkeypatch):
    """Sampled back under guidance, the tuned null embeddings end nearer the encoded image than the empty prompt's
    (in latent space: a random VAE decodes every latent to nearly the same picture)."""
    imgs = _images()
    inv = invert(
        tiny_pipe,
        imgs,
        "a photo of a circle",
        num_inference_steps=4,
        guidance_scale=5.0,
        method="null-text",
        progress=False,
    )
    assert inv.latents.shape[:2] == (5, 2) and inv.null_embeddings.shape[:2] == (4, 2)
    monkeypatch.setattr("disco_inspect.engine.sampling.decode", lambda pipe, x: x)  # keep the latents
    err_tuned = (reconstruct(tiny_pipe, inv) - inv.latents[0]).pow(2).mean()
    err_plain = (reconstruct(tiny_pipe, inv, use_null=False) - inv.latents[0]).pow(2).mean()
    assert err_tuned < 0.9 * err_plain


def test_an_interrupted_edit_keeps_the_edits_it_finished(tiny_pipe, tmp_path, monkeypatch):
    """A crash during the third image's edit: the rerun reads the first two from the cache, samples only the rest,
    and gives the edits an uninterrupted run gives (token edits with noise samples, and concept edits)."""
    from disco_inspect.editing import edit as edit_module
    from disco_inspect.editing.edit import edit_to_prompts

    _ = tiny_pipe.load_textual_inversion({"<S>": _token(tiny_pipe)[1]})
    inv = invert(
        tiny_pipe,
        _images(3),
        "a photo of a circle",
        num_inference_steps=3,
        guidance_scale=3.0,
        cache_dir=tmp_path / "inv",
        progress=False,
    )
    kw = {"class_name": "circle", "method": "noise", "samples": 2, "batch_size": 1, "progress": False}
    clean = edit(tiny_pipe, inv, _token(tiny_pipe), **kw)
    real_batch, calls, crash = edit_module._sample_batch, [], [True]

    def crash_on_third(pipe, inversion, sched, rows, images, extra, on_step):
        calls.append(images[0])
        if crash[0] and len(calls) == 3:
            raise KeyboardInterrupt
        return real_batch(pipe, inversion, sched, rows, images, extra, on_step)

    monkeypatch.setattr(edit_module, "_sample_batch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        edit(tiny_pipe, inv, _token(tiny_pipe), cache_dir=tmp_path / "edits", **kw)
    crash[0] = False
    calls.clear()
    again = edit(tiny_pipe, inv, _token(tiny_pipe), cache_dir=tmp_path / "edits", **kw)
    assert calls == [2, 0, 1, 2]  # deterministic pass: image 2 only; the stochastic pass had not started
    assert torch.allclose(again.edits, clean.edits) and torch.allclose(again.samples, clean.samples)
    assert torch.allclose(again.edit_latents, clean.edit_latents)
    calls.clear()
    other = edit(tiny_pipe, inv, _token(tiny_pipe, scale=2.0), cache_dir=tmp_path / "edits", **kw)
    assert len(calls) == 6 and not torch.allclose(other.edits, clean.edits)  # another token: nothing reused
    # concept edits: the second call reads every image of every prompt from the cache
    prompts = ["a circle on a green background", "a circle on a red background"]
    first = edit_to_prompts(
        tiny_pipe, inv, prompts, batch_size=1, cache_dir=tmp_path / "edits", progress=False
    )
    calls.clear()
    second = edit_to_prompts(
        tiny_pipe, inv, prompts, batch_size=1, cache_dir=tmp_path / "edits", progress=False
    )
    assert calls == [] and torch.equal(first, second)


def test_inversion_refuses_bad_input(tiny_pipe):
    with pytest.raises(DiscoInspectError, match="works at 32x32"):
        invert(tiny_pipe, torch.rand(1, 3, 16, 16), "a circle", progress=False)
    with pytest.raises(DiscoInspectError, match="prompts"):
        invert(tiny_pipe, _images(2), ["a", "b", "c"], progress=False)
    with pytest.raises(DiscoInspectError, match="empty"):
        invert(tiny_pipe, torch.rand(0, 3, 32, 32), "a circle", progress=False)


@pytest.mark.parametrize("method", ["null-text", "direct"])
def test_edit_without_token_change_reproduces_the_reconstruction(tiny_pipe, method, monkeypatch):
    """Edit rows start at the source's x_T and the source row is the inversion's reconstruction (direct: it lands
    on the encoded image's latent, to the float error of this random UNet, whose outputs are ~30)."""
    if method == "direct":
        monkeypatch.setattr("disco_inspect.engine.sampling.decode", lambda pipe, x: x)  # compare latents
    imgs = _images()
    inv = invert(
        tiny_pipe,
        imgs,
        "a photo of a circle",
        num_inference_steps=3,
        guidance_scale=3.0,
        method=method,
        progress=False,
    )
    res = edit(tiny_pipe, inv, _token(tiny_pipe), class_name="circle", progress=False)
    assert torch.allclose(
        res.reconstructions, reconstruct(tiny_pipe, inv), atol=1e-4 if method == "null-text" else 2e-3
    )
    if method == "direct":
        assert torch.allclose(res.reconstructions, inv.latents[0], atol=2e-3)
    assert res.edits.shape == res.reconstructions.shape and res.samples is None
    assert res.edit_prompts == ["a photo of a <S> circle"] * 2
    assert res.edit_latents.shape[0] == 4  # x_T plus one latent per step


def test_edit_is_deterministic_and_samples_are_seeded(tiny_pipe):
    inv = invert(
        tiny_pipe, _images(), "a photo of a circle", num_inference_steps=3, guidance_scale=3.0, progress=False
    )
    a = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="noise",
        samples=3,
        seed=1,
        progress=False,
    )
    b = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="noise",
        samples=3,
        seed=1,
        progress=False,
    )
    c = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="noise",
        samples=3,
        seed=2,
        progress=False,
    )
    assert torch.equal(a.edits, b.edits) and torch.equal(a.samples, b.samples)
    assert a.samples.shape == (2, 3, 3, 32, 32)
    assert not torch.equal(a.samples, c.samples)
    assert (a.samples[:, 0] - a.samples[:, 1]).abs().max() > 1e-4  # samples differ from each other


def test_cross_attention_injection_pulls_the_edit_toward_the_source(tiny_pipe):
    """Null-text: both rows share the tuned null embeddings, so what differs is the attention (direct inversion's
    edit rows drift from its pinned source row on this random UNet whatever the attention does)."""
    inv = invert(
        tiny_pipe,
        _images(),
        "a photo of a circle",
        num_inference_steps=4,
        guidance_scale=3.0,
        method="null-text",
        progress=False,
    )
    tok = _token(tiny_pipe, scale=5.0)
    free = edit(tiny_pipe, inv, tok, class_name="circle", cross_replace=0.0, self_replace=0.0, progress=False)
    kept = edit(tiny_pipe, inv, tok, class_name="circle", cross_replace=1.0, self_replace=1.0, progress=False)
    d_free = (free.edits - free.reconstructions).abs().mean()
    d_kept = (kept.edits - kept.reconstructions).abs().mean()
    assert d_kept < d_free


def test_injection_leaves_the_unconditional_half_and_sources_alone(tiny_pipe):
    state = AttentionInjection(
        [0, 0], [(torch.arange(4), torch.ones(4)), (torch.arange(4), torch.ones(4))], 10, 1.0, 1.0
    )
    probs = torch.rand(4 * 2, 3, 4)  # CFG batch of 2 rows x 2 heads, 3 queries, 4 keys
    out = state.modify(probs.clone(), batch=4, heads=2, is_cross=True).view(4, 2, 3, 4)
    p = probs.view(4, 2, 3, 4)
    assert torch.equal(out[:2], p[:2])  # unconditional rows untouched
    assert torch.equal(out[2], p[2])  # the source row untouched
    assert torch.equal(out[3], p[2])  # the edit row took the source's maps (all words shared)


def test_attention_processors_are_restored(tiny_pipe):
    before = {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()}
    state = AttentionInjection([0], [(torch.arange(77), torch.ones(77))], 2)
    with inject_attention(tiny_pipe.unet, state):
        pass
    assert {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()} == before


def test_null_vae_trains_only_its_own_parameters(tiny_pipe):
    from disco_inspect.editing.stochastic import train_null_vae

    inv = invert(
        tiny_pipe,
        _images(),
        "a photo of a circle",
        num_inference_steps=3,
        guidance_scale=3.0,
        method="null-text",
        progress=False,
    )
    frozen = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    vae, history = train_null_vae(tiny_pipe, inv, steps=3, batch=2, progress=False)
    assert isinstance(vae, NullVAE) and len(history) == 3
    assert all(torch.equal(frozen[k], v) for k, v in tiny_pipe.unet.state_dict().items())
    res = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="null-vae",
        samples=2,
        vae=vae,
        progress=False,
    )
    assert res.samples.shape == (2, 2, 3, 32, 32)


def test_cond_vae_trains_with_a_scorer_and_features(tiny_pipe, tiny_clf):
    from disco_inspect.editing.metrics import classifier_features

    class Scorer:
        concepts = ["bright"]

        def score(self, images):
            return images.mean((1, 2, 3))[:, None]

        def prompt_distance(self, images, prompts):
            return 1 - images.mean((1, 2, 3))

    inv = invert(
        tiny_pipe, _images(), "a photo of a circle", num_inference_steps=3, guidance_scale=3.0, progress=False
    )
    res = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="cond-vae",
        samples=2,
        scorer=Scorer(),
        features=classifier_features(tiny_clf).features,
        classifier=tiny_clf,
        target=0,
        vae_options={"steps": 2, "train_samples": 2},
        progress=False,
    )
    assert res.samples.shape == (2, 2, 3, 32, 32) and len(res.vae_history) == 2
    crossed = edit(
        tiny_pipe,
        inv,
        _token(tiny_pipe),
        class_name="circle",
        method="cond-vae",
        samples=2,
        scorer=Scorer(),
        features=classifier_features(tiny_clf).features,
        classifier=tiny_clf,
        target=0,
        vae_options={"steps": 2, "train_samples": 2, "lam": 0.5},
        progress=False,
    )
    assert all(h["cross"] > 0 for h in crossed.vae_history)  # eq. 2's D(I', C'') is computed with lam < 1
    assert all(h["cross"] == 0 for h in res.vae_history)
    with pytest.raises(DiscoInspectError, match="scorer"):
        edit(
            tiny_pipe,
            inv,
            _token(tiny_pipe),
            class_name="circle",
            method="cond-vae",
            samples=2,
            progress=False,
        )


def test_vae_kl_and_residual_start():
    vae = EmbeddingVAE(4, 8, scale=2.0)
    emb = torch.randn(3, 4, 8)
    out, mu, logvar = vae(emb, torch.tensor([500]), None)
    assert out.shape == emb.shape
    assert (out - emb).abs().mean() < emb.abs().mean()  # starts near its input
    assert EmbeddingVAE.kl(torch.zeros(2, 5), torch.zeros(2, 5)) == 0


def test_edit_refuses_bad_arguments(tiny_pipe):
    inv = invert(
        tiny_pipe,
        _images(1),
        "a photo of a circle",
        num_inference_steps=2,
        guidance_scale=3.0,
        progress=False,
    )
    with pytest.raises(DiscoInspectError, match="method"):
        edit(tiny_pipe, inv, _token(tiny_pipe), class_name="circle", method="magic", progress=False)
    with pytest.raises(DiscoInspectError, match="samples"):
        edit(
            tiny_pipe, inv, _token(tiny_pipe), class_name="circle", method="noise", samples=0, progress=False
        )
    wide = ("<W>", torch.randn(tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1] + 5))
    with pytest.raises(DiscoInspectError, match="another pipeline"):
        edit(tiny_pipe, inv, wide, class_name="circle", progress=False)


def test_measure_edits_names_every_distance_and_adds_lpips_and_clip(tiny_pipe, tiny_clf):
    from disco_inspect.editing.measure import measure_edits
    from disco_inspect.editing.metrics import FeatureDistance

    class Clip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.img = torch.nn.Linear(3, 8)

        def encode_image(self, x):
            return self.img(x.mean((2, 3)))

        def encode_text(self, tokens):
            return torch.ones(len(tokens), 8)

    class Scorer:
        concepts = ["red", "green"]

        def score(self, images):
            return images[:, :2].mean((2, 3))

    inv = invert(
        tiny_pipe, _images(), "a photo of a circle", num_inference_steps=2, guidance_scale=3.0, progress=False
    )
    res = edit(
        tiny_pipe, inv, _token(tiny_pipe), class_name="circle", method="noise", samples=2, progress=False
    )
    fake_lpips = FeatureDistance("LPIPS (test)", lambda x: x.flatten(1))
    m = measure_edits(
        res,
        tiny_clf,
        0,
        scorer=Scorer(),
        lpips=fake_lpips,
        clip=(Clip(), lambda texts: torch.zeros(len(texts), 4, dtype=torch.long), lambda x: x),
    )
    row, s = m["images"][0], m["summary"]
    assert s["distance"].startswith("classifier-feature distance") and s["lpips"] == "LPIPS (test)"
    assert {"edit", "diversity"} <= set(row["lpips"]) and {"clip_t", "clip_i"} <= set(row["clip"])
    assert set(row["concept_shift"]) == {"red", "green"}
    assert len(row["p_target"]["samples"]) == 2 and 0 <= row["p_target"]["edit"] <= 1
    assert row["upper_bound"] == row["fidelity"]["edit"]["distance"]
    lo, hi = s["delta_p_edit_ci95"]
    assert lo <= s["delta_p_edit"] <= hi


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_pipeline_inverts_and_edits(dtype):
    """GPUs run float16 or bfloat16: the null embeddings are tuned in float32 and cast for the UNet (diffusers'
    null-text pipeline fails in fp16); VAEs train in float32; the UNet keeps the pipeline's dtype."""
    from disco_inspect.testing import tiny_pipeline

    pipe = tiny_pipeline().to(dtype)
    inv = invert(
        pipe,
        _images(),
        "a photo of a circle",
        num_inference_steps=2,
        guidance_scale=3.0,
        method="null-text",
        progress=False,
    )
    assert inv.null_embeddings.dtype == torch.float32
    res = edit(
        pipe,
        inv,
        _token(pipe),
        class_name="circle",
        method="null-vae",
        samples=2,
        vae_options={"steps": 2, "batch": 2},
        progress=False,
    )
    assert res.edits.dtype == torch.float32 and torch.isfinite(res.samples).all()
    assert pipe.unet.dtype == dtype and torch.isfinite(inv.latents).all()


def test_concept_edits_share_the_source_rows_and_give_the_same_edits(tiny_pipe):
    """Three prompts in one pass: the edits one prompt at a time gives, with 3 + 1 rows per image and step instead of
    3 x 2 (counted on the UNet). Null-text: on this random UNet (outputs ~30) direct inversion pins the rows to
    latents where batch-size float noise (~1e-4) shows, which says nothing about sharing rows."""
    from disco_inspect.editing.edit import edit_to_prompts

    inv = invert(
        tiny_pipe,
        _images(2),
        "a photo of a circle",
        num_inference_steps=3,
        guidance_scale=3.0,
        method="null-text",
        progress=False,
    )
    prompts = ["a photo of a red circle", "a photo of a big circle", "a circle on grass"]
    rows: list[int] = []
    hook = tiny_pipe.unet.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    try:
        alone = edit_to_prompts(tiny_pipe, inv, prompts, prompts_per_pass=1, progress=False)
        n_alone, rows[:] = sum(rows), []
        shared = edit_to_prompts(tiny_pipe, inv, prompts, progress=False)
    finally:
        hook.remove()
    assert torch.allclose(alone, shared, atol=1e-5)
    assert n_alone == 2 * 3 * 3 * 2 * 2 and sum(rows) == 2 * 4 * 3 * 2  # images x rows x steps x guidance
    with pytest.raises(DiscoInspectError, match="prompts_per_pass"):
        edit_to_prompts(tiny_pipe, inv, prompts, prompts_per_pass=0, progress=False)
