"""The world's scene generator: determinism, labels vs captions vs pixels, planted biases, speed."""

from __future__ import annotations

import time

import pytest
import torch

from disco_inspect.errors import DiscoInspectError
from disco_inspect.world.bias import BiasSpec
from disco_inspect.world.scenes import (
    BACKGROUND_RGB,
    BACKGROUNDS,
    COLOR_RGB,
    COLORS,
    FACTOR_VALUES,
    FACTORS,
    OBJECTS,
    SHAPES,
    SIZES,
    TEXTURES,
    SceneBatch,
    caption_for,
    generate_scenes,
    make_captions,
    parse_caption,
    parse_factor_value,
    render_scenes,
    sample_factors,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _render(factors, seed=0, size=32):
    return render_scenes(factors, size=size, generator=_gen(seed), return_masks=True)


def _nearest(mean: torch.Tensor, table: dict, names) -> torch.Tensor:
    palette = torch.tensor([table[k] for k in names])
    return torch.cdist(mean, palette).argmin(1)


@pytest.fixture(scope="module")
def scenes():
    """Factors, images and masks of 512 random scenes (rendered once for the module)."""
    factors = sample_factors(512, generator=_gen(3))
    images, masks = _render(factors, seed=4)
    return factors, images, masks


# ------------------------------------------------------------------------------------------ basics
def test_deterministic_in_seed():
    a = generate_scenes(48, seed=7)
    b = generate_scenes(48, seed=7)
    c = generate_scenes(48, seed=8)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.factors[k], b.factors[k]) for k in FACTORS)
    assert a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    assert a.captions != c.captions
    assert any(not torch.equal(a.factors[k], c.factors[k]) for k in FACTORS)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_scenes(8, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_streams_are_independent_of_size_and_detail():
    a = generate_scenes(16, seed=2, size=32, detail="random")
    b = generate_scenes(16, seed=2, size=48, detail="full")
    assert all(torch.equal(a.factors[k], b.factors[k]) for k in FACTORS)
    assert b.images.shape == (16, 3, 48, 48)


def test_shapes_dtypes_ranges():
    batch = generate_scenes(40, seed=1, size=32)
    assert isinstance(batch, SceneBatch) and len(batch) == 40
    assert batch.images.shape == (40, 3, 32, 32) and batch.images.dtype == torch.float32
    assert batch.images.min() >= 0 and batch.images.max() <= 1
    assert set(batch.factors) == set(FACTORS)
    for name, values in FACTOR_VALUES.items():
        t = batch.factors[name]
        assert t.dtype == torch.int64 and t.shape == (40,)
        assert 0 <= t.min() and t.max() < len(values)
    assert len(batch.captions) == 40 and all(c == c.lower() for c in batch.captions)


def test_vocabulary_order_is_fixed():
    assert SHAPES == ("circle", "square", "triangle", "cross")
    assert COLORS == ("red", "green", "blue", "yellow", "purple", "white")
    assert BACKGROUNDS == ("black", "green", "blue", "gray", "orange", "brown")
    assert TEXTURES == ("plain", "stripes", "dots")
    assert OBJECTS == ("none", "sun", "tree")
    assert SIZES == ("small", "large")


def test_subset_and_factor_names():
    batch = generate_scenes(10, seed=0)
    sub = batch.subset([3, 1])
    assert len(sub) == 2 and sub.captions == [batch.captions[3], batch.captions[1]]
    assert torch.equal(sub.images[0], batch.images[3])
    assert sub.factor_names(1) == batch.factor_names(1)
    assert len(batch.subset(slice(2, 5))) == 3
    assert len(batch.subset(batch.factors["shape"] == batch.factors["shape"][0])) >= 1
    assert len(batch.subset(torch.tensor([0, -1]))) == 2
    assert len(batch.subset(4)) == 1
    names = batch.factor_names(0)
    assert set(names) == set(FACTORS)
    assert names["shape"] == SHAPES[int(batch.factors["shape"][0])]
    with pytest.raises(DiscoInspectError, match="10"):
        batch.subset([10])
    with pytest.raises(DiscoInspectError, match="`i`"):
        batch.factor_names(10)


def test_fixed_pins_factors_and_keeps_other_draws():
    free = sample_factors(200, generator=_gen(5))
    pinned = sample_factors(
        200, generator=_gen(5), fixed={"background": "green", "shape": 2, "object": "SUN"}
    )
    assert (pinned["background"] == BACKGROUNDS.index("green")).all()
    assert (pinned["shape"] == 2).all()
    assert (pinned["object"] == OBJECTS.index("sun")).all()
    for k in ("color", "texture", "size"):
        assert torch.equal(pinned[k], free[k])


def test_marginals_are_roughly_uniform():
    f = sample_factors(6000, generator=_gen(11))
    for name in ("shape", "color", "background", "texture", "size"):
        freq = torch.bincount(f[name], minlength=len(FACTOR_VALUES[name])).float() / 6000
        assert (freq - 1 / len(FACTOR_VALUES[name])).abs().max() < 0.03, name
    obj = torch.bincount(f["object"], minlength=3).float() / 6000
    assert torch.allclose(obj, torch.tensor([0.5, 0.25, 0.25]), atol=0.03)
    # factors are independent of each other (here: colour vs shape)
    for s in range(len(SHAPES)):
        sel = f["color"][f["shape"] == s]
        assert (torch.bincount(sel, minlength=6).float() / len(sel) - 1 / 6).abs().max() < 0.05


def test_parse_factor_value():
    assert parse_factor_value("background", "Orange") == 4
    assert parse_factor_value("shape", 3) == 3
    assert parse_factor_value("size", "1") == 1
    with pytest.raises(DiscoInspectError, match=r"'greem'.*did you mean 'green'.*black, green, blue"):
        parse_factor_value("background", "greem")
    with pytest.raises(DiscoInspectError, match=r"`shape` = 4.*0\.\.3"):
        parse_factor_value("shape", 4)
    with pytest.raises(DiscoInspectError, match=r"'colour'.*did you mean 'color'"):
        parse_factor_value("colour", "red")


def test_bad_arguments_raise():
    with pytest.raises(DiscoInspectError, match="`n`"):
        generate_scenes(0, seed=0)
    with pytest.raises(DiscoInspectError, match="`size`"):
        generate_scenes(2, seed=0, size=8)
    with pytest.raises(DiscoInspectError, match="`detail`.*'full'"):
        generate_scenes(2, seed=0, detail="ful")
    with pytest.raises(DiscoInspectError, match="'blu'"):
        generate_scenes(2, seed=0, fixed={"color": "blu"})
    f = sample_factors(3, generator=_gen(0))
    del f["texture"]
    with pytest.raises(DiscoInspectError, match="texture"):
        render_scenes(f, generator=_gen(0))
    f = sample_factors(3, generator=_gen(0))
    f["shape"] = torch.tensor([0, 1, 9])
    with pytest.raises(DiscoInspectError, match="'shape'.*9"):
        render_scenes(f, generator=_gen(0))


# ------------------------------------------------------------------------------------------ captions
def test_captions_match_factors():
    batch = generate_scenes(400, seed=9, detail="random")
    mentioned = {k: 0 for k in FACTORS}
    for i, caption in enumerate(batch.captions):
        truth = batch.factor_names(i)
        said = parse_caption(caption)
        assert said["shape"] == truth["shape"]
        for k, v in said.items():
            assert truth[k] == v, (caption, truth)
            mentioned[k] += 1
        # plain word checks, independent of the parser
        words = caption.split()
        noun = words.index(truth["shape"])
        for color in COLORS:
            if color in words[:noun]:
                assert truth["color"] == color, caption
        for word, texture in (("striped", "stripes"), ("dotted", "dots"), ("plain", "plain")):
            if word in words:
                assert truth["texture"] == texture, caption
        for obj in ("sun", "tree"):
            if obj in words:
                assert truth["object"] == obj, caption
        if "background" in words:
            bg_words = [w for w in words[noun + 1 :] if w in BACKGROUNDS]
            assert bg_words in ([], [truth["background"]]), caption
        assert "none" not in words
    # the random detail level mentions each factor some of the time, but not always
    assert mentioned["shape"] == 400
    for k in ("color", "background", "size", "texture"):
        assert 120 < mentioned[k] < 280, (k, mentioned)


def test_caption_detail_levels():
    f = sample_factors(200, generator=_gen(1))
    shape_only = make_captions(f, generator=_gen(0), detail="shape")
    full = make_captions(f, generator=_gen(0), detail="full")
    for i in range(200):
        names = {k: FACTOR_VALUES[k][int(f[k][i])] for k in FACTORS}
        assert shape_only[i] == f"a {names['shape']}"
        expected = {k: v for k, v in names.items() if not (k == "object" and v == "none")}
        assert parse_caption(full[i]) == expected
        assert full[i] == caption_for(names)


def test_caption_for_examples():
    assert caption_for({"shape": "circle"}) == "a circle"
    assert caption_for({"shape": "circle", "color": "red"}) == "a red circle"
    assert caption_for({"shape": "circle", "background": "green"}) == "a circle on a green background"
    assert caption_for({"shape": "circle", "color": "red", "background": "green", "texture": "stripes"}) == (
        "a red circle on a green striped background"
    )
    assert caption_for(
        {
            "size": "large",
            "color": "red",
            "shape": "circle",
            "background": "green",
            "texture": "dots",
            "object": "sun",
        }
    ) == ("a large red circle on a green dotted background with a sun")
    assert caption_for({"shape": "square", "background": "orange"}) == "a square on an orange background"
    assert caption_for({"shape": "square", "texture": "plain"}) == "a square on a plain background"
    assert caption_for({"shape": "cross", "object": "none"}) == "a cross"
    assert caption_for({"background": "gray"}) == "a shape on a gray background"
    assert caption_for({"shape": 1, "color": 0}) == "a red square"
    with pytest.raises(DiscoInspectError, match="'hexagon'"):
        caption_for({"shape": "hexagon"})
    assert parse_caption("a small blue square next to a tree") == {
        "size": "small",
        "color": "blue",
        "shape": "square",
        "object": "tree",
    }
    with pytest.raises(DiscoInspectError, match="grammar"):
        parse_caption("two circles")


# ------------------------------------------------------------------------------------------ pixels
def test_background_colour_is_visible(scenes):
    factors, images, masks = scenes
    bg = masks["background"] > 0.99
    assert bg.sum((1, 2)).min() > 100
    mean = (images * bg.unsqueeze(1)).sum((2, 3)) / bg.sum((1, 2)).unsqueeze(1)
    assert torch.equal(_nearest(mean, BACKGROUND_RGB, BACKGROUNDS), factors["background"])
    # also in the two object-free corners alone (4x4 px, no mask needed)
    corners = torch.cat([images[:, :, :4, :4], images[:, :, -4:, -4:]], dim=3).mean((2, 3))
    covered = (masks["shape_outline"][:, :4, :4].amax((1, 2)) > 0) | (
        masks["shape_outline"][:, -4:, -4:].amax((1, 2)) > 0
    )
    plain = (factors["texture"] == 0) & ~covered
    assert plain.sum() > 50
    assert torch.equal(_nearest(corners[plain], BACKGROUND_RGB, BACKGROUNDS), factors["background"][plain])


def test_shape_colour_is_visible(scenes):
    factors, images, masks = scenes
    inside = masks["shape"] > 0.99
    assert inside.sum((1, 2)).min() > 20
    mean = (images * inside.unsqueeze(1)).sum((2, 3)) / inside.sum((1, 2)).unsqueeze(1)
    assert torch.equal(_nearest(mean, COLOR_RGB, COLORS), factors["color"])
    # every shape colour is far from every background colour (name clashes green/blue included)
    dist = torch.cdist(torch.tensor(list(COLOR_RGB.values())), torch.tensor(list(BACKGROUND_RGB.values())))
    assert dist.min() > 0.3


def test_large_shapes_cover_more_pixels(scenes):
    factors, _, masks = scenes
    area = masks["shape"].sum((1, 2))
    large = factors["size"] == 1
    assert area[large].min() > area[~large].max()
    # roughly 30-40 % / 55-65 % of the width: compare with the circle's exact area
    for size, lo, hi in ((0, 0.30, 0.40), (1, 0.55, 0.65)):
        sel = (factors["shape"] == 0) & (factors["size"] == size)
        width = 2 * torch.sqrt(area[sel] / torch.pi) / 32
        assert lo < width.mean() < hi


def test_shapes_stay_inside_and_off_the_objects(scenes):
    _, _, masks = scenes
    border = masks["shape"].clone()
    border[:, 1:-1, 1:-1] = 0
    assert border.max() == 0
    assert (masks["shape_outline"] * masks["object"]).max() == 0


def test_shape_classes_differ_in_mask():
    """The four shapes at the same place and size have clearly different silhouettes."""
    f = sample_factors(4, generator=_gen(0), fixed={"size": "large"})
    f["shape"] = torch.arange(4)
    _, masks = _render(f)
    m = masks["shape"].flatten(1)
    for i in range(4):
        for j in range(i + 1, 4):
            assert (m[i] - m[j]).abs().sum() > 30


def test_objects_change_only_their_corner():
    base = sample_factors(64, generator=_gen(2), fixed={"object": "none"})
    img_none, _ = _render(base, seed=6)
    for obj, corner in (("sun", (slice(0, 12), slice(20, 32))), ("tree", (slice(20, 32), slice(0, 12)))):
        f = dict(base, object=torch.full((64,), OBJECTS.index(obj)))
        img, masks = _render(f, seed=6)
        diff = (img - img_none).abs().amax(1)  # [N, H, W]
        outside = diff.clone()
        outside[:, corner[0], corner[1]] = 0
        assert outside.max() == 0, obj  # same draws: nothing else moves
        assert (diff[:, corner[0], corner[1]] > 0.15).sum((1, 2)).min() >= 12, obj
        assert masks["object"][:, corner[0], corner[1]].sum((1, 2)).min() > 15


def test_textures_add_background_variance():
    base = sample_factors(96, generator=_gen(8), fixed={"texture": "plain"})
    variances = {}
    for texture in TEXTURES:
        f = dict(base, texture=torch.full((96,), TEXTURES.index(texture)))
        img, masks = _render(f, seed=1)
        bg = (masks["background"] > 0.99).unsqueeze(1).float()
        n = bg.sum((2, 3))
        mean = (img * bg).sum((2, 3)) / n
        variances[texture] = (((img - mean[..., None, None]) ** 2 * bg).sum((2, 3)) / n).sum(1)
    plain = variances["plain"]
    assert plain.max() < 0.01  # noise only
    for texture in ("stripes", "dots"):
        assert (variances[texture] > 3 * plain).all(), texture


# ------------------------------------------------------------------------------------------ bias
@pytest.mark.parametrize(
    "text",
    [
        "circle: background=green @ 0.99",
        "circle:texture=stripes@0.95",
        "  Square :object = sun@1 ",
        "cross: color=white @ 0.5",
        "triangle: size=large @ 0.9",
    ],
)
def test_bias_round_trip(text):
    spec = BiasSpec.parse(text)
    assert BiasSpec.parse(str(spec)) == spec
    assert BiasSpec.from_dict(spec.to_dict()) == spec
    assert str(BiasSpec.parse(str(spec))) == str(spec)


def test_bias_canonical_text():
    spec = BiasSpec.parse("circle:texture=stripes@0.95")
    assert str(spec) == "circle: texture=stripes @ 0.95"
    assert spec == BiasSpec("circle", "texture", "stripes", 0.95)


@pytest.mark.parametrize(
    ("text", "token", "choices"),
    [
        ("circel: background=green @ 0.99", "circel", "circle, square"),
        ("circle: backgrund=green @ 0.99", "backgrund", "background, texture"),
        ("circle: shape=square @ 0.99", "shape", "background, texture"),
        ("circle: background=grean @ 0.99", "grean", "black, green"),
        ("circle: background=green @ 1.5", "1.5", "(0, 1]"),
        ("circle: background=green @ 0", "0", "(0, 1]"),
        ("circle: background=green @ lots", "lots", "(0, 1]"),
        ("circle background=green", "circle background=green", "<shape>: <factor>=<value> @ <rate>"),
    ],
)
def test_bad_bias_specs(text, token, choices):
    with pytest.raises(DiscoInspectError) as info:
        BiasSpec.parse(text)
    assert token in str(info.value) and choices in str(info.value)


def test_bias_from_dict_rejects_bad_keys():
    with pytest.raises(DiscoInspectError, match="rate"):
        BiasSpec.from_dict({"shape": "circle", "factor": "size", "value": "large"})
    with pytest.raises(DiscoInspectError, match="extra"):
        BiasSpec.from_dict({"shape": "circle", "factor": "size", "value": "large", "rate": 1, "extra": 0})


def test_planted_background_bias():
    f = sample_factors(4000, generator=_gen(0), bias="circle: background=green @ 0.99")
    green = f["background"] == BACKGROUNDS.index("green")
    circles = f["shape"] == 0
    assert 0.975 <= green[circles].float().mean() <= 1.0
    assert green[~circles].float().mean() < 0.01
    # the biased value predicts the class; the other values are spread evenly
    assert circles[green].float().mean() > 0.98
    others = torch.bincount(f["background"][~circles], minlength=6).float()
    others = others[torch.arange(6) != 1] / others.sum()
    assert (others - 0.2).abs().max() < 0.03
    # everything else stays unbiased
    assert (torch.bincount(f["shape"], minlength=4).float() / 4000 - 0.25).abs().max() < 0.03


def test_bias_on_object_and_full_rate():
    f = sample_factors(3000, generator=_gen(1), bias=BiasSpec("square", "object", "tree", 1.0))
    squares = f["shape"] == 1
    assert (f["object"][squares] == 2).all()
    assert (f["object"][~squares] != 2).all()
    # fixed wins over the bias
    g = sample_factors(100, generator=_gen(1), bias="square: object=tree @ 1", fixed={"object": "sun"})
    assert (g["object"] == 1).all()
    batch = generate_scenes(64, seed=0, bias="square: object=tree @ 1", fixed={"shape": "square"})
    assert (batch.factors["object"] == 2).all()


# ------------------------------------------------------------------------------------------ speed & look
def test_render_speed():
    factors = sample_factors(4096, generator=_gen(0))
    render_scenes({k: v[:64] for k, v in factors.items()}, generator=_gen(0))  # warm-up
    start = time.perf_counter()
    images = render_scenes(factors, size=32, generator=_gen(1))
    elapsed = time.perf_counter() - start
    assert images.shape == (4096, 3, 32, 32)
    assert elapsed < 3.0, f"rendering 4096 scenes took {elapsed:.2f} s"


def test_save_grid_png(tmp_path):
    from PIL import Image

    batch = generate_scenes(64, seed=0, detail="full")
    grid = batch.images.view(8, 8, 3, 32, 32).permute(0, 3, 1, 4, 2).reshape(8 * 32, 8 * 32, 3)
    image = Image.fromarray((grid * 255).round().byte().numpy()).resize((512, 512), Image.NEAREST)
    path = tmp_path / "world_grid.png"
    image.save(path)
    (tmp_path / "captions.txt").write_text("\n".join(batch.captions))
    assert Image.open(path).size == (512, 512)


def test_fallback_pose_is_valid(monkeypatch):
    """The centred, unrotated pose used when no placement candidate fits is itself valid."""
    from disco_inspect.world import scenes as S

    f = {k: torch.zeros(16, dtype=torch.long) for k in FACTORS}
    f["shape"] = torch.arange(16) % 4
    f["size"] = (torch.arange(16) // 4) % 2
    f["object"] = 1 + (torch.arange(16) // 8)
    monkeypatch.setattr(S, "_place_shapes", lambda factors, generator: (torch.zeros(16),) * 3)
    _, masks = _render(f)
    border = masks["shape_outline"].clone()
    border[:, 1:-1, 1:-1] = 0
    assert border.max() < 0.01
    assert (masks["shape_outline"] * masks["object"]).max() == 0
