"""Concept scorers: the world oracle and an open_clip zero-shot scorer on a tiny random model."""

import pytest
import torch

from disco_inspect.analysis.concepts import ConceptScorer, OpenClipScorer, load_concepts
from disco_inspect.errors import DiscoInspectError
from disco_inspect.world.scenes import generate_scenes
from disco_inspect.world.scorer import OracleScorer


def test_oracle_scorer_reads_the_planted_background():
    scorer = OracleScorer()
    assert isinstance(scorer, ConceptScorer)
    green = generate_scenes(20, seed=3, fixed={"background": "green"}).images
    gray = generate_scenes(20, seed=4, fixed={"background": "gray"}).images
    col = scorer.concepts.index("background=green")
    assert scorer.score(green)[:, col].mean() > 0.9 > 0.1 > scorer.score(gray)[:, col].mean()
    assert scorer.score(green).shape == (20, len(scorer.concepts))


@pytest.fixture(scope="module")
def tiny_clip():
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
    )
    return model, open_clip.get_tokenizer("ViT-B-32")


def test_open_clip_scorer_shapes_and_range(tiny_clip):
    model, tok = tiny_clip
    scorer = OpenClipScorer(model, tok, ["a plate", "the sea", "<script>"], image_size=32)
    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    s = scorer.score(images)
    assert s.shape == (5, 3) and ((0 <= s) & (s <= 1)).all()
    assert torch.equal(s, scorer.score(images))  # deterministic
    assert not torch.allclose(s[0], s[1])  # depends on the image


def test_open_clip_missing_weights_is_clear(tmp_path):
    with pytest.raises(DiscoInspectError, match="never downloads"):
        OpenClipScorer.from_pretrained("ViT-B-32", tmp_path / "nope.bin")


def test_concept_file(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("# mine\na plate\n\nthe sea  # water\na plate\n")
    assert load_concepts(f) == ["a plate", "the sea"]
    f.write_text("# nothing\n")
    with pytest.raises(DiscoInspectError, match="no concepts"):
        load_concepts(f)


def test_concept_file_with_intervention_prompts(tmp_path):
    from disco_inspect.analysis.concepts import load_concept_file

    f = tmp_path / "concepts.txt"
    f.write_text(
        "# backgrounds\na plate | a photo of a {class_name} on a plate | a photo of a {class_name} in the sea\n"
        "the sea\n\na plate\n"
    )
    concepts, interventions = load_concept_file(f)
    assert concepts == ["a plate", "the sea"]
    assert interventions == {
        "a plate": ("a photo of a {class_name} on a plate", ["a photo of a {class_name} in the sea"])
    }
    f.write_text("a plate | on a plate\n")
    with pytest.raises(DiscoInspectError, match="line 1"):
        load_concept_file(f)
    f.write_text("a plate | a photo on a plate | a photo in the sea\n")
    with pytest.raises(DiscoInspectError, match="class_name"):
        load_concept_file(f)


def test_intervention_prompts_of_both_scorers(tiny_clip):
    fp, contrasts = OracleScorer().intervention("background=green", "circle")
    assert (
        fp == "a circle on a green background"
        and len(contrasts) == 5
        and "a circle on a gray background" in contrasts
    )
    fp, contrasts = OracleScorer().intervention("object=sun", "triangle")
    assert fp == "a triangle with a sun" and contrasts == ["a triangle", "a triangle with a tree"]
    model, tok = tiny_clip
    scorer = OpenClipScorer(
        model,
        tok,
        ["a plate"],
        image_size=32,
        interventions={"a plate": ("a {class_name} on a plate", ["a {class_name} in the sea"])},
    )
    assert scorer.intervention("a plate", "lobster") == ("a lobster on a plate", ["a lobster in the sea"])
    plain = OpenClipScorer(model, tok, ["a kite"], image_size=32)  # in no bank: the stated fallback
    assert plain.intervention("a kite", "leash") == ("a photo of a leash with a kite", ["a photo of a leash"])


def test_the_shipped_bank_phrases_each_kind_with_real_contrasts(tiny_clip):
    """The paper's cases and one concept of each kind, as exact prompt strings; no contrast is the bare class."""
    from disco_inspect.analysis.concepts import DEFAULT_CONCEPTS, DEFAULT_INTERVENTIONS

    scorer = OpenClipScorer(*tiny_clip, image_size=32)
    assert scorer.concepts == list(DEFAULT_CONCEPTS) and set(DEFAULT_INTERVENTIONS) == set(DEFAULT_CONCEPTS)
    assert scorer.intervention("a plate", "lobster") == (
        "a photo of a lobster on a plate",
        ["a photo of a lobster on a table", "a photo of a lobster in the sea"],
    )
    assert scorer.intervention("the sea", "lobster")[0] == "a photo of a lobster in the sea"
    assert scorer.intervention("an athlete", "horizontal bar") == (
        "a photo of a horizontal bar with an athlete",
        [
            "a photo of a horizontal bar with a person in everyday clothes",
            "a photo of a horizontal bar on its own",
        ],
    )
    assert scorer.intervention("an old person", "bald")[1][0] == "a photo of a bald with a young person"
    assert scorer.intervention("a hand", "dog")[0] == "a photo of a dog held in a hand"
    assert scorer.intervention("a watermark", "dog") == (
        "a photo of a dog with a watermark",
        ["a photo of a dog without a watermark"],
    )
    assert scorer.intervention("a black and white photo", "dog") == (
        "a black and white photo of a dog",
        ["a colour photo of a dog"],
    )
    for concept in DEFAULT_CONCEPTS:
        factor, contrasts = scorer.intervention(concept, "dog")
        assert " with the " not in factor and "a photo of a dog" not in contrasts and len(contrasts) >= 1


def test_open_clip_scorer_uses_the_models_preprocess_cfg(tiny_clip):
    import open_clip
    import torch.nn.functional as F

    model, tok = tiny_clip
    cfg = {
        "size": 32,
        "mean": (0.1, 0.2, 0.3),
        "std": (0.4, 0.5, 0.6),
        "interpolation": "bilinear",
        "resize_mode": "shortest",
    }
    attrs = ("preprocess_cfg", "image_mean", "image_std")
    saved = {a: model.visual.__dict__[a] for a in attrs if a in model.visual.__dict__}
    open_clip.set_model_preprocess_cfg(model, cfg)
    try:
        scorer = OpenClipScorer(model, tok, ["a plate"])
        assert scorer.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
        assert scorer.std.flatten().tolist() == pytest.approx([0.4, 0.5, 0.6])
        images = torch.rand(2, 3, 40, 60, generator=torch.Generator().manual_seed(0))
        # open_clip's eval transform: shorter side -> 32 (bilinear), centre crop 32x32, normalise
        x = F.interpolate(images, size=(32, 48), mode="bilinear", align_corners=False, antialias=True)[
            ..., 8:40
        ]
        expected = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(
            1, 3, 1, 1
        )
        torch.testing.assert_close(scorer._prep(images), expected)
        with torch.no_grad():
            f = F.normalize(model.encode_image(expected).float(), dim=-1)
        s_c, s_n = f @ scorer._concept_feats.T, (f @ scorer._neutral)[:, None]
        torch.testing.assert_close(scorer.score(images), torch.sigmoid(model.logit_scale.exp() * (s_c - s_n)))
        # an explicit argument still wins over the model's config
        assert (
            OpenClipScorer(model, tok, ["a plate"], mean=(0.5, 0.5, 0.5)).mean.flatten().tolist() == [0.5] * 3
        )
    finally:  # the model is shared by this module's tests
        for a in attrs:
            model.visual.__dict__.pop(a, None)
        model.visual.__dict__.update(saved)
