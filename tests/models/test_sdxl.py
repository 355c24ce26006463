"""SDXL (``StableDiffusionXLPipeline``): two text encoders, pooled embeddings and micro-conditioning time ids, on a
tiny random pipeline in SDXL's layout (``disco_inspect.testing.tiny_xl_pipeline``), nothing downloaded."""

from __future__ import annotations

import pytest
import torch

from disco_inspect.engine.sampling import encode, generate
from disco_inspect.testing import tiny_classifier, tiny_xl_pipeline

PROMPTS = ["a photo of a circle", "a red square"]


@pytest.fixture(scope="module")
def xl():
    return tiny_xl_pipeline(seed=0)


def _rows(pipe):
    return [
        te.get_input_embeddings().weight.detach().clone() for te in (pipe.text_encoder, pipe.text_encoder_2)
    ]


def test_our_sampler_reproduces_the_stock_sdxl_pipeline(xl):
    """The denoising loop hands the UNet the pooled embedding and time ids as StableDiffusionXLPipeline does (its
    empty prompt zeros, as ``force_zeros_for_empty_prompt``): the same images, bit for bit."""
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    stock = xl(PROMPTS, generator=gens, num_inference_steps=3, guidance_scale=4.0, output_type="pt").images
    ours = generate(xl, PROMPTS, [1, 2], num_inference_steps=3, guidance_scale=4.0)
    torch.testing.assert_close(ours, stock, rtol=0, atol=1e-6)
    assert encode(xl, [""]).abs().sum() == 0 and encode(xl, PROMPTS).shape == (2, 78, 32)


def test_training_changes_only_the_new_rows_and_the_file_loads_with_diffusers(xl, tmp_path):
    """`train` 2 iterations: in both text encoders only the appended row of <S> changed; the token file is diffusers'
    SDXL layout (clip_l, clip_g) and loads into a fresh pipeline with ``load_textual_inversion`` per encoder as
    diffusers documents, giving the same images as the trained pipeline."""
    from safetensors.torch import load_file

    from disco_inspect.config import DiscoConfig
    from disco_inspect.engine.optimize import train_token

    before = _rows(xl)
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=2, guidance_scale=3.0, seed=0)
    run = train_token(xl, tiny_classifier(seed=0), 0, config=cfg, out=tmp_path / "run", progress=False)
    for old, new in zip(before, _rows(xl), strict=True):
        assert new.shape[0] == old.shape[0] + 1 and torch.equal(new[: len(old)], old)
    state = load_file(str(run.token_path))
    assert {k: v.shape for k, v in state.items()} == {"clip_l": (16,), "clip_g": (16,)}
    fresh = tiny_xl_pipeline(seed=0)
    fresh.load_textual_inversion(
        state["clip_l"], token="<S>", text_encoder=fresh.text_encoder, tokenizer=fresh.tokenizer
    )
    fresh.load_textual_inversion(
        state["clip_g"], token="<S>", text_encoder=fresh.text_encoder_2, tokenizer=fresh.tokenizer_2
    )
    prompt = ["a photo of a <S> circle"]
    torch.testing.assert_close(
        generate(fresh, prompt, [3], num_inference_steps=2, guidance_scale=3.0),
        generate(xl, prompt, [3], num_inference_steps=2, guidance_scale=3.0),
    )


def test_a_token_file_of_another_pipeline_is_refused_naming_both_widths(xl, tmp_path):
    from disco_inspect.engine.token import install_token, save_token
    from disco_inspect.errors import DiscoInspectError

    path = save_token(tmp_path / "sd.safetensors", "<T>", torch.zeros(24))
    with pytest.raises(DiscoInspectError, match=r"24-dimensional .* 16 \+ 16 dimensions"):
        install_token(xl, path)


def test_inversion_reconstructs_as_on_sd_and_the_token_edit_runs_on_sdxl(xl, tmp_path):
    """Null-text inversion on SDXL conditioning reconstructs its image as closely as on the SD pipeline of the same
    toy size and VAE (both random UNets: the error is the few-step inversion's, not the VAE's), and a learned token
    edits it."""
    from disco_inspect.editing.edit import edit
    from disco_inspect.editing.inversion import invert, reconstruct, vae_roundtrip
    from disco_inspect.engine.token import save_token
    from disco_inspect.testing import tiny_pipeline

    images = torch.full((1, 3, 32, 32), 0.3)
    images[:, :, 8:24, 8:24] = 0.9
    errors, inversions = {}, {}
    for name, pipe in (("xl", xl), ("sd", tiny_pipeline(seed=0))):
        inversions[name] = inv = invert(
            pipe, images, "a photo of a circle", num_inference_steps=4, guidance_scale=5.0, progress=False
        )
        errors[name] = float((reconstruct(pipe, inv) - vae_roundtrip(pipe, images)).abs().mean())
    assert errors["xl"] <= 2.0 * errors["sd"] + 0.01, errors
    token = save_token(tmp_path / "t.safetensors", "<E>", torch.randn(32), widths=[16, 16])
    res = edit(xl, inversions["xl"], token, class_name="circle", progress=False)
    assert res.edits.shape == images.shape and torch.isfinite(res.edits).all()


def test_report_through_the_scan_and_evaluate_on_sdxl(xl, tmp_path):
    """`report` (token, evaluation, the scan on the colour scorer's 2 concepts) and `evaluate` on SDXL conditioning;
    report.json validates and the scan counted 3 prompts x 4 seeds x 2 steps x CFG UNet rows."""
    import json

    from disco_inspect.auditor import AuditSettings, audit
    from disco_inspect.config import DiscoConfig
    from disco_inspect.engine.evaluate import evaluate_accuracy
    from disco_inspect.report.schema import validate_report
    from disco_inspect.testing import ColourScorer

    clf = tiny_classifier(seed=0)
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=2, guidance_scale=3.0, seed=0)
    settings = AuditSettings(eval_seeds=4, intervention_seeds=4, attribution_images=0, null_control=False)
    res = audit(
        xl, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=tmp_path, progress=False
    )
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    assert doc["calls"]["interventions"]["unet"] == 3 * 4 * 2 * 2
    assert doc["audited"]["pipeline"]["class"] == "StableDiffusionXLPipeline"
    acc = evaluate_accuracy(xl, clf, 0, res.run, n_seeds=2, num_inference_steps=2, guidance_scale=3.0)
    assert 0.0 <= acc.token["accuracy"] <= 1.0


def test_a_float16_sdxl_vae_with_force_upcast_decodes_in_float32():
    """SDXL's VAE overflows in float16, so (as StableDiffusionXLPipeline) one whose config sets force_upcast decodes
    and encodes in float32 and is cast back after; the images come back in the latents' dtype."""
    from disco_inspect.editing.inversion import encode_images
    from disco_inspect.engine.sampling import decode

    pipe = tiny_xl_pipeline(seed=0).to(torch.float16)
    assert pipe.vae.config.force_upcast
    seen = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
        for m in (pipe.vae.decoder, pipe.vae.encoder)
    ]
    latents = encode_images(pipe, torch.rand(1, 3, 32, 32))
    images = decode(pipe, latents)
    for h in hooks:
        h.remove()
    assert seen == [torch.float32, torch.float32] and pipe.vae.dtype == torch.float16
    assert latents.dtype == images.dtype == torch.float16 and torch.isfinite(images).all()
