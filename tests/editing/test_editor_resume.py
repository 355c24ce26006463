"""An edit interrupted after its inversions were cached resumes in the same ``--out`` folder."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from disco_inspect import DiscoInspectError
from disco_inspect.editor import EditSettings, edit_images


def _pngs(folder, n: int = 3) -> None:
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        rgb = (torch.rand(3, generator=g) * 255).to(torch.uint8).tolist()
        Image.new("RGB", (32, 32), tuple(rgb)).save(folder / f"img_{i}.png")


def test_an_edit_interrupted_after_inverting_resumes_in_its_folder(
    tiny_pipe, tiny_clf, tmp_path, monkeypatch
):
    """Killed while editing (the inversions are cached in ``out/cache``, no edit.json yet): the rerun into the same
    folder is accepted, reads every inversion from the cache and finishes; someone else's folder is still refused."""
    import disco_inspect.editor as editor

    _pngs(tmp_path / "imgs")
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    token = ("<S>", torch.randn(width, generator=torch.Generator().manual_seed(3)))
    kw = {
        "pipe": tiny_pipe,
        "out": tmp_path / "edits",
        "settings": EditSettings(num_inference_steps=2, samples=1),
        "progress": False,
    }
    real_edit = editor._edit

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(editor, "_edit", killed)
    with pytest.raises(KeyboardInterrupt):
        edit_images(tiny_clf, tiny_clf.label_names[0], tmp_path / "imgs", token, **kw)
    assert not (tmp_path / "edits" / "edit.json").exists()
    monkeypatch.setattr(editor, "_edit", real_edit)
    job = edit_images(tiny_clf, tiny_clf.label_names[0], tmp_path / "imgs", token, **kw)
    assert (tmp_path / "edits" / "edit.json").is_file()
    assert [row["inversion_cached"] for row in job.doc["images"]] == [True, True, True]
    # a folder of someone else's files is never taken for an interrupted edit
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(DiscoInspectError, match="holds other files"):
        edit_images(
            tiny_clf, tiny_clf.label_names[0], tmp_path / "imgs", token, **{**kw, "out": tmp_path / "theirs"}
        )
