"""Captum attributions: batched, all three methods, and context reliance that tells background users apart."""

import pytest
import torch

from disco_inspect.analysis.attribution import METHODS, attribute, context_reliance, last_conv_layer
from disco_inspect.errors import DiscoInspectError


def test_all_methods_run_batched_and_batching_does_not_change_results(tiny_clf):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    small = attribute(tiny_clf, x, 1, ig_steps=8, internal_batch_size=5, perturbations_per_eval=3)
    big = attribute(tiny_clf, x, 1, ig_steps=8, internal_batch_size=64, perturbations_per_eval=64)
    assert set(small.maps) == set(METHODS) and not small.skipped
    for m in METHODS:
        assert small.maps[m].shape == (3, 32, 32) and (small.maps[m] >= 0).all()
        assert torch.allclose(small.maps[m], big.maps[m], atol=1e-5), m


def test_torchscript_model_skips_gradcam_with_a_reason(tiny_assets):
    from disco_inspect import load_classifier

    clf = load_classifier(tiny_assets / "clf.pt")
    assert last_conv_layer(clf) is None
    a = attribute(clf, torch.rand(2, 3, 32, 32), 0, ig_steps=4)
    assert "grad_cam" in a.skipped and "TorchScript" in a.skipped["grad_cam"]
    assert set(a.maps) == {"integrated_gradients", "occlusion"}


def test_context_reliance_is_the_share_outside_the_mask():
    maps = torch.zeros(2, 4, 4)
    maps[0, :2] = 1.0  # all saliency in the top half
    maps[1, 2:] = 1.0  # all in the bottom half
    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1.0  # object = top half
    assert torch.allclose(context_reliance(maps, mask), torch.tensor([0.0, 1.0]))
    with pytest.raises(DiscoInspectError, match="methods"):
        attribute(lambda x: x.mean((2, 3)), torch.rand(1, 3, 8, 8), 0, methods=["lime"])


def test_background_classifier_relies_more_on_context_than_the_clean_one(world_pipeline):
    """Issue 'Audit' acceptance 6: the biased world classifier (green background -> circle) puts more of its
    attribution outside the circle's cross-attention mask than the clean classifier, on the same images."""
    from disco_inspect import load_classifier
    from disco_inspect.analysis.attention import object_masks
    from disco_inspect.world.make import ASSETS

    pipe = world_pipeline
    prompts = ["a circle on a green background"] * 8
    images, _, masks = object_masks(
        pipe, prompts, list(range(8)), "circle", num_inference_steps=10, guidance_scale=4.0
    )
    share = {}
    for name in ("biased_circle_green", "clean"):
        clf = load_classifier(ASSETS / "classifiers" / f"{name}.pt")
        a = attribute(clf, images, 0, methods=("integrated_gradients", "grad_cam"))
        share[name] = {m: float(context_reliance(v, masks).mean()) for m, v in a.maps.items()}
    for m in ("integrated_gradients", "grad_cam"):
        assert share["biased_circle_green"][m] > share["clean"][m] + 0.05, share


def test_vit_never_runs_gradcam_on_the_patch_embedding():
    """A ViT's only Conv2d is its patch embedding (tokens, no spatial feature map after it): GradCAM there is
    meaningless, so it is skipped with a reason; the other methods still run."""
    import timm

    from disco_inspect.models.classifiers import Classifier, Preprocessing

    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=3
    )
    clf = Classifier(
        vit, Preprocessing(input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3), ["a", "b", "c"]
    )
    assert last_conv_layer(clf) is None
    a = attribute(clf, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), 1, ig_steps=4)
    assert "grad_cam" not in a.maps
    assert "patch embedding" in a.skipped["grad_cam"] and "patch_embed.proj" in a.skipped["grad_cam"]
    assert set(a.maps) == {"integrated_gradients", "occlusion"}
