"""Loading the user's own images: conversions, resizing, failures, errors, names."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from disco_inspect.editing.images import ImageLoad, find_images, load_images
from disco_inspect.errors import DiscoInspectError


def _save(path, img, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _rgb(path, w=8, h=8, colour=(10, 200, 30)):
    return _save(path, Image.new("RGB", (w, h), colour))


def test_rgb_at_size_has_no_notes(tmp_path):
    _rgb(tmp_path / "a.png", 8, 8, (255, 0, 0))
    out = load_images(tmp_path / "a.png", 8)
    assert isinstance(out, ImageLoad)
    assert out.images.shape == (1, 3, 8, 8) and out.images.dtype == torch.float32
    assert torch.allclose(out.images[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert out.notes == [[]] and out.failures == [] and out.names == ["a"]
    assert out.paths == [tmp_path / "a.png"]


def test_grey_becomes_rgb(tmp_path):
    _save(tmp_path / "g.png", Image.new("L", (8, 8), 51))
    out = load_images(tmp_path / "g.png", 8)
    assert torch.allclose(out.images[0], torch.full((3, 8, 8), 0.2))
    assert out.notes == [["grey -> RGB"]]


def test_rgba_transparent_pixel_becomes_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    img.putpixel((3, 4), (255, 0, 0, 0))
    _save(tmp_path / "t.png", img)
    out = load_images(tmp_path / "t.png", 8)
    assert torch.allclose(out.images[0, :, 4, 3], torch.ones(3))
    assert torch.allclose(out.images[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert out.notes == [["RGBA composited on white"]]


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_is_scaled_not_clipped(tmp_path, mode):
    arr = np.array([[0, 32768], [65535, 1000]], dtype="<u2" if mode == "I;16" else ">u2")
    img = Image.frombytes(mode, (2, 2), arr.tobytes())
    if mode == "I;16":
        out = load_images(_save(tmp_path / "deep.png", img), 2)
    else:  # PNG stores it little-endian; feed the big-endian image through the converter via a TIFF
        _save(tmp_path / "deep.tif", img)
        out = load_images(tmp_path / "deep.tif", 2)
    x = out.images[0]
    assert x[:, 1, 0].tolist() == [1.0, 1.0, 1.0]
    assert x[0, 0, 1].item() == pytest.approx(0.5, abs=0.01)
    assert x[0, 0, 0].item() == 0.0
    assert "16-bit -> 8-bit" in out.notes[0]


def test_palette_and_palette_transparency(tmp_path):
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 255] + [0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    _save(tmp_path / "p.png", pal)
    pal_t = pal.copy()
    _save(tmp_path / "q.png", pal_t, transparency=1)
    out = load_images(tmp_path, 8)
    assert out.names == ["p", "q"]
    assert torch.allclose(out.images[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(out.images[0, :, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    assert out.notes[0] == ["palette -> RGB"]
    assert torch.allclose(out.images[1, :, 0, 0], torch.ones(3))  # the transparent palette entry
    assert torch.allclose(out.images[1, :, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    assert out.notes[1] == ["palette with transparency composited on white"]


def test_one_bit_and_cmyk(tmp_path):
    _save(tmp_path / "a.png", Image.new("1", (4, 4), 1))
    _save(tmp_path / "b.jpg", Image.new("CMYK", (4, 4), (0, 0, 0, 0)))
    out = load_images(tmp_path, 4)
    assert torch.allclose(out.images[0], torch.ones(3, 4, 4))
    assert out.notes[0] == ["1-bit -> RGB"] and out.notes[1] == ["CMYK -> RGB"]
    assert out.images[1].min() > 0.9  # no ink is white


def test_resize_and_centre_crop(tmp_path):
    img = Image.new("RGB", (64, 48), (0, 0, 255))
    for x in range(4):  # red stripes at the left and right edges are cropped away
        for y in range(48):
            img.putpixel((x, y), (255, 0, 0))
            img.putpixel((63 - x, y), (255, 0, 0))
    _save(tmp_path / "wide.png", img)
    out = load_images(tmp_path / "wide.png", 32)
    assert out.images.shape == (1, 3, 32, 32)
    assert out.notes == [["resized 64x48 -> shorter side 32, centre-cropped to 32x32"]]
    assert (
        out.images[0, 0].max() < 0.05 and out.images[0, 2].min() > 0.95
    )  # 64x48 -> 43x32, crop keeps x 5..37


def test_downscaling_is_antialiased(tmp_path):
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    _save(tmp_path / "c.png", Image.fromarray(checker))
    x = load_images(tmp_path / "c.png", 16).images[0]
    assert (x - 0.5).abs().max() < 0.1  # a 1-pixel checkerboard averages to grey; no aliasing


def test_crop_only_and_square_resize_notes(tmp_path):
    _rgb(tmp_path / "a.png", 48, 32)
    _rgb(tmp_path / "b.png", 64, 64)
    out = load_images(tmp_path, 32)
    assert out.notes == [["48x32 centre-cropped to 32x32"], ["resized 64x64 -> 32x32"]]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (255, 0, 0))
    for y in range(2):
        for x in range(2, 4):
            img.putpixel((x, y), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated 90 degrees clockwise
    _save(tmp_path / "rot.png", img, exif=exif)
    out = load_images(tmp_path / "rot.png", 2)
    assert "EXIF orientation 6 applied" in out.notes[0]
    x = out.images[0]  # upright: 2 wide, 4 tall, red on top; the centre crop keeps one red and one blue row
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(x[:, 1, 0], torch.tensor([0.0, 0.0, 1.0]))


def test_unreadable_file_is_a_failure_not_a_stop(tmp_path, caplog):
    _rgb(tmp_path / "a.png")
    (tmp_path / "x.png").write_text("not an image")
    _rgb(tmp_path / "z.png")
    good = _rgb(tmp_path / "trunc.png", 64, 64)
    good.write_bytes(good.read_bytes()[:60])  # truncated
    with caplog.at_level(logging.WARNING):
        out = load_images(tmp_path, 8)
    assert out.names == ["a", "z"] and len(out.images) == 2
    assert [f["file"] for f in out.failures] == [str(tmp_path / "trunc.png"), str(tmp_path / "x.png")]
    assert all(f["error"] for f in out.failures)
    assert "x.png" in caplog.text


def test_glob_tries_any_extension_and_all_failing_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _rgb(tmp_path / "a.png")
    out = load_images(str(tmp_path / "*"), 8)
    assert out.names == ["a"] and [f["file"] for f in out.failures] == [str(tmp_path / "notes.txt")]
    with pytest.raises(DiscoInspectError, match="notes.txt"):
        load_images(str(tmp_path / "*.txt"), 8)


def test_empty_folder_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DiscoInspectError, match=r"holds no image files.*glob pattern") as e:
        find_images(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_glob_matching_nothing_error(tmp_path):
    pattern = str(tmp_path / "*.jpg")
    with pytest.raises(DiscoInspectError, match="matches no files") as e:
        load_images(pattern, 8)
    assert pattern in str(e.value)


def test_nonexistent_path_error(tmp_path):
    missing = tmp_path / "nope" / "cat.png"
    with pytest.raises(DiscoInspectError, match="does not exist") as e:
        load_images(missing, 8)
    assert str(missing) in str(e.value)
    with pytest.raises(DiscoInspectError, match="does not exist"):  # one bad item of a list is an error too
        find_images([_rgb(tmp_path / "a.png"), missing])


def test_duplicate_stems_get_unique_names(tmp_path):
    a = _rgb(tmp_path / "one" / "cat.png")
    b = _rgb(tmp_path / "two" / "cat.jpg")
    c = _rgb(tmp_path / "two" / "Cat.png")
    out = load_images([tmp_path / "one", tmp_path / "two"], 8)
    assert out.paths == [a, c, b]  # folder order, each folder sorted
    assert out.names == ["cat", "Cat_2", "cat_3"]  # unique even on case-insensitive file systems


def test_names_are_sanitised(tmp_path):
    paths = [_rgb(tmp_path / n) for n in ("my photo (1).png", "été.png", "..hidden.png", "CON.png")]
    out = load_images(paths, 8)
    assert out.names == ["my_photo__1_", "_t_", "hidden", "_CON"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in out.names)


def test_list_spec_dedupes_and_max_images(tmp_path, caplog):
    for n in "abcd":
        _rgb(tmp_path / f"{n}.png")
    assert find_images([tmp_path, str(tmp_path / "a.png")]) == [tmp_path / f"{n}.png" for n in "abcd"]
    with caplog.at_level(logging.WARNING):
        out = load_images(tmp_path, 8, max_images=2)
    assert out.names == ["a", "b"] and "skipped 2" in caplog.text


@pytest.mark.parametrize("kw", [{"size": 0}, {"size": 8, "max_images": 0}, {"size": True}])
def test_bad_arguments(tmp_path, kw):
    _rgb(tmp_path / "a.png")
    with pytest.raises(DiscoInspectError, match="positive whole number"):
        load_images(tmp_path, **kw)


def test_class_folders_finds_a_labelled_tree_and_nothing_else(tmp_path):
    from disco_inspect.cli.checks import check_images
    from disco_inspect.editing.images import class_folders
    from disco_inspect.engine.run_folder import save_png

    for label in ("cat", "dog"):
        save_png(tmp_path / "tree" / label / "a.png", torch.rand(3, 8, 8))
    (tmp_path / "tree" / "empty").mkdir()
    assert sorted(class_folders(tmp_path / "tree")) == ["cat", "dog"]
    assert class_folders(tmp_path / "tree" / "cat") is None  # a folder of images is not a tree
    assert class_folders([tmp_path / "tree"]) is None and class_folders(tmp_path / "missing") is None
    check_images(str(tmp_path / "tree"))  # the CLI's early check accepts a tree
