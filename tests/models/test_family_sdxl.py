"""SDXL base with random weights in its published configuration (disco_inspect.testing.SDXL_UNET and the others),
nothing downloaded: two text encoders, the pooled embedding and the micro-conditioning time ids.

For CI time, the UNet's block widths are halved (160/320/640; block types, transformer depths 1/2/10, heads, the
2048-wide cross-attention over both encoders and the 2816-wide added embedding kept) and the OpenCLIP-bigG tower has
4 of its 32 layers (its 1280 width and pooled projection kept); images are 64 px, 2 steps. At full size (2.6 B UNet
parameters, 13.7 GB peak) one UNet row takes ~2.5 s on the project's 2-core CPU and building it ~100 s, too slow
for CI: the same checks at full size are `benchmarks/sdxl_shaped.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdxl():
    from disco_inspect.testing import sdxl_shaped_pipeline

    return sdxl_shaped_pipeline(image_size=64, unet_width=0.5, text_2_layers=4)


def test_the_sdxl_shaped_pipeline_has_the_real_interfaces(sdxl):
    assert sdxl.unet.config.cross_attention_dim == 2048 == 768 + sdxl.text_encoder_2.config.hidden_size
    assert (
        sdxl.unet.add_embedding.linear_1.in_features
        == 2816
        == 6 * 256 + sdxl.text_encoder_2.config.projection_dim
    )
    assert list(sdxl.unet.config.transformer_layers_per_block) == [1, 2, 10]


def test_train_two_iterations_changes_only_the_new_rows_of_both_encoders(sdxl, tmp_path):
    from disco_inspect.config import DiscoConfig
    from disco_inspect.engine.optimize import train_token
    from disco_inspect.testing import tiny_classifier

    encoders = (sdxl.text_encoder, sdxl.text_encoder_2)
    before = [te.get_input_embeddings().weight.detach().clone() for te in encoders]
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=2, guidance_scale=3.0, seed=0, token="<X>")
    train_token(
        sdxl, tiny_classifier(seed=0, input_size=64), 0, config=cfg, out=tmp_path / "run", progress=False
    )
    for old, te in zip(before, encoders, strict=True):
        new = te.get_input_embeddings().weight.detach()
        assert new.shape[0] == old.shape[0] + 1 and torch.equal(new[: len(old)], old)


def test_report_through_the_scan_edit_and_evaluate_on_sdxl(sdxl, tmp_path, audit_through_the_scan):
    calls = audit_through_the_scan(sdxl, tmp_path)
    assert calls["interventions"]["unet"] == 3 * 4 * 2 * 2  # 3 distinct prompts x 4 seeds x 2 steps x CFG
