"""`disco-inspect edit` on the world: outputs, unreadable files, and bad input refused before any work."""

from __future__ import annotations

import json

import pytest
import torch

from disco_inspect.cli import main
from disco_inspect.engine.run_folder import save_png
from disco_inspect.engine.token import save_token
from disco_inspect.world.presets import WORLD_EDIT


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from disco_inspect.world.scenes import generate_scenes

    folder = tmp_path_factory.mktemp("imgs")
    scenes = generate_scenes(2, seed=3, fixed={"shape": "circle"})
    for i, img in enumerate(scenes.images):
        save_png(folder / f"circle_{i}.png", img)
    from PIL import Image

    Image.new("LA", (48, 40), (120, 255)).save(folder / "grey.png")  # grey + alpha, another size: converted
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _token(tmp_path, width=384):
    return save_token(
        tmp_path / "tok.safetensors", "<S>", torch.randn(width, generator=torch.Generator().manual_seed(0))
    )


def test_edit_writes_json_html_and_pngs(image_dir, tmp_path, capsys):
    out = tmp_path / "edits"
    code = main(
        [
            "edit",
            "world:biased_circle_green",
            "--class",
            "circle",
            "--images",
            str(image_dir),
            "--token-file",
            str(_token(tmp_path)),
            "--steps",
            "3",
            "--samples",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--prompt",
            "a {class_name}",
        ]
    )
    assert code == 0
    data = json.loads((out / "edit.json").read_text())
    assert [r["name"] for r in data["images"]] == ["circle_0", "circle_1", "grey"]
    assert data["failures"] and data["failures"][0]["file"].endswith("broken.png")
    grey = data["images"][2]
    assert any("RGB" in n for n in grey["notes"]) and any("32" in n for n in grey["notes"])
    row = data["images"][0]
    assert row["edit_prompt"] == "a <S> circle" and len(row["p_target"]["samples"]) == 2
    assert {"psnr", "ssim", "vae_psnr", "plain_ddim_psnr"} <= set(row["reconstruction"])
    assert "background=green" in row["concept_shift"]
    assert data["summary"]["distance"].startswith("classifier-feature distance")
    for f in ("source.png", "reconstruction.png", "edit.png", "sample_00.png", "sample_01.png"):
        assert (out / "images" / "circle_0" / f).is_file()
    html = (out / "index.html").read_text()
    assert html.count("<img") == 3 * 5 and "broken.png" in html
    assert "p(circle)" in capsys.readouterr().out
    # a second run reads the inversions from the cache
    assert (
        main(
            [
                "edit",
                "world:biased_circle_green",
                "--class",
                "circle",
                "--images",
                str(image_dir / "circle_*.png"),
                "--token-file",
                str(_token(tmp_path)),
                "--steps",
                "3",
                "--method",
                "none",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )  # the world's default prompt is its caption style, "a {class_name}"
    again = json.loads((out / "edit.json").read_text())
    assert [r["inversion_cached"] for r in again["images"]] == [True, True]
    assert (
        again["images"][0]["edit_prompt"] == "a <S> circle"
        and again["settings"]["cross_replace"] == WORLD_EDIT["cross_replace"]
    )
    # another inversion method is inverted anew into the same cache; direct inversion reconstructs as the VAE does
    direct = tmp_path / "direct"
    argv = [
        "edit",
        "world:biased_circle_green",
        "--class",
        "circle",
        "--images",
        str(image_dir / "circle_*.png"),
    ]
    argv += ["--token-file", str(_token(tmp_path)), "--steps", "3", "--method", "none", "--no-progress"]
    assert main([*argv, "--inversion", "direct", "--out", str(direct)]) == 0
    doc = json.loads((direct / "edit.json").read_text())
    assert doc["settings"]["inversion"] == "direct"
    for row in doc["images"]:
        assert row["reconstruction"]["psnr"] >= row["reconstruction"]["vae_psnr"] - 0.1


def test_edit_refuses_bad_input_before_any_work(image_dir, tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise AssertionError("inverted before checking the input")

    monkeypatch.setattr("disco_inspect.editing.inversion.invert", boom)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [
        "edit",
        "world:biased_circle_green",
        "--class",
        "circle",
        "--token-file",
        str(_token(tmp_path)),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]

    def error(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert str(empty) in error([*args, "--images", str(empty)])
    assert "nope_" in error([*args, "--images", str(tmp_path / "nope_*.png")])
    wide = save_token(tmp_path / "wide.safetensors", "<W>", torch.randn(768))
    assert "another pipeline" in error(
        [
            "edit",
            "world:biased_circle_green",
            "--class",
            "circle",
            "--token-file",
            str(wide),
            "--images",
            str(image_dir),
            "--out",
            str(tmp_path / "o2"),
            "--no-progress",
        ]
    )
    assert "class_name" in error([*args, "--images", str(image_dir), "--prompt", "a photo"])
    with pytest.raises(SystemExit):  # argparse's one line: the flag, the value and the choices
        main([*args, "--images", str(image_dir), "--inversion", "pnp"])
    assert "argument --inversion: invalid choice: 'pnp'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_save_circle_scenes_writes_images_the_edit_command_reads(tmp_path):
    from disco_inspect.editing.images import load_images
    from disco_inspect.world.benchmarks.edits import save_circle_scenes

    paths = save_circle_scenes(tmp_path / "my_circles", 3)
    loaded = load_images(str(tmp_path / "my_circles" / "*.png"), 32)
    assert [p.name for p in loaded.paths] == [p.name for p in paths] and not loaded.failures
