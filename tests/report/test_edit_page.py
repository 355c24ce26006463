"""The counterfactual-edit page: images inline, numbers shown, user text escaped, failures listed, offline."""

from __future__ import annotations

import re

import pytest
import torch

from disco_inspect.errors import DiscoInspectError
from disco_inspect.report.edit_page import format_value, render_edit_page

EVIL = "<script>alert(1)</script>"


def _summary(n_samples=(3, 2)):
    return {
        "class_name": EVIL,
        "target": 7,
        "method": "cond-vae",
        "token": "<S>",
        "settings": {
            "steps": 20,
            "guidance": 7.5,
            "cross_replace": 0.8,
            "vae": {"beta": 0.1, "path": "v<b>.pt"},
        },
        "images": [
            {
                "name": f"img{i}",
                "source_file": f"photos/img{i}.png",
                "source_prompt": "a photo",
                "edit_prompt": "a photo of <S> <i>evil</i>",
                "reconstruction": {"psnr": 31.234, "ssim": 0.91234},
                "p_target": {
                    "source": 0.1,
                    "reconstruction": 0.12,
                    "edit": 0.87654,
                    "samples": [0.5 + 0.1 * j for j in range(n)],
                },
                "notes": ["grey -> RGB"] if i == 0 else [],
            }
            for i, n in enumerate(n_samples)
        ],
        "failures": [{"file": "photos/x.png", "error": "UnidentifiedImageError: cannot identify <img> file"}],
        "summary": {
            "mean_p_edit": 0.876543,
            "n_images": 2,
            "note": "ok",
            "missing": None,
            "psnr": {"mean": 30.123456, "min": 29.0},
        },
    }


def _images(n_samples=(3, 2)):
    g = torch.Generator().manual_seed(0)
    return {
        f"img{i}": {
            "source": torch.rand(3, 8, 8, generator=g),
            "reconstruction": torch.rand(3, 8, 8, generator=g),
            "edit": torch.rand(3, 8, 8, generator=g),
            "samples": torch.rand(n, 3, 8, 8, generator=g) if n else None,
        }
        for i, n in enumerate(n_samples)
    }


def test_renders_one_img_per_cell(tmp_path):
    out = render_edit_page(_summary(), _images(), tmp_path / "OUT" / "index.html")
    assert out == tmp_path / "OUT" / "index.html"
    page = out.read_text(encoding="utf-8")
    assert page.count("<img") == (3 + 3) + (3 + 2)
    assert page.count('src="data:image/png;base64,') == 11
    assert page.count('class="edit-row"') == 2
    assert "image-rendering: pixelated" in page and "width: 96px" in page
    for text in (
        "p=0.877",
        "p=0.100",
        "p=0.700",
        "PSNR 31.23 dB",
        "SSIM 0.912",
        "grey -&gt; RGB",
        "photos/img1.png",
    ):
        assert text in page, text


def test_no_samples_and_folder_out_path(tmp_path):
    summary = _summary((0, 0))
    summary["method"] = "none"
    for e in summary["images"]:
        e["p_target"]["samples"] = []
    out = render_edit_page(summary, _images((0, 0)), tmp_path)
    assert out == tmp_path / "index.html"
    assert out.read_text(encoding="utf-8").count("<img") == 6


def test_user_text_is_escaped(tmp_path):
    page = render_edit_page(_summary(), _images(), tmp_path / "index.html").read_text(encoding="utf-8")
    assert EVIL not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;S&gt;" in page and "&lt;i&gt;evil&lt;/i&gt;" in page and "v&lt;b&gt;.pt" in page
    assert "<i>evil" not in page


def test_failures_listed(tmp_path):
    page = render_edit_page(_summary(), _images(), tmp_path / "index.html").read_text(encoding="utf-8")
    section = page[page.index('id="failures"') : page.index('id="settings"')]
    assert "photos/x.png" in section and "cannot identify &lt;img&gt; file" in section


def test_method_summary_table(tmp_path):
    page = render_edit_page(_summary(), _images(), tmp_path / "index.html").read_text(encoding="utf-8")
    section = page[page.index('id="method-summary"') : page.index('id="images"')]
    for key, value in (
        ("mean_p_edit", "0.877"),
        ("n_images", "2"),
        ("note", "ok"),
        ("missing", "–"),
        ("psnr.mean", "30.1"),
        ("psnr.min", "29"),
    ):
        assert re.search(rf"<th>{re.escape(key)}</th><td[^>]*>{re.escape(value)}</td>", section), key


def test_offline(tmp_path):
    page = render_edit_page(_summary(), _images(), tmp_path / "index.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page


def test_format_value():
    assert format_value(0.123456) == "0.123" and format_value(1234.5) == "1230"
    assert format_value(2.5e7) == "2.5e+07" and format_value(-0.000123456) == "-0.000123"
    assert (
        format_value(None) == "–" and format_value(float("nan")) == "–" and format_value(float("inf")) == "∞"
    )
    assert (
        format_value(3) == "3"
        and format_value(torch.tensor(0.5)) == "0.5"
        and format_value([0.25, "a"]) == "0.25, a"
    )


def test_missing_key_is_an_error(tmp_path):
    summary = _summary()
    del summary["token"]
    with pytest.raises(DiscoInspectError, match="'token'"):
        render_edit_page(summary, _images(), tmp_path / "index.html")
    assert not (tmp_path / "index.html").exists()
