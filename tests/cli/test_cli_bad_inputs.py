"""Issue 21, items 1-7: every bad input is refused with exit 2 and one line on stderr (no traceback), before any
expensive work, naming the flag the user typed, and leaving no file or folder behind."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from disco_inspect.cli import build_parser, main
from disco_inspect.engine.token import save_token


def _listing(root):
    """Every path under ``root`` with its size and modification time (what "nothing changed" compares)."""
    return sorted(
        (str(p.relative_to(root)), p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    )


@pytest.fixture
def refused(tmp_path, capsys, monkeypatch):
    """``refused(argv, *needles)``: run the command in ``tmp_path``; assert exit 2, one error line holding every
    needle, no traceback, no file or folder created or changed, and that the pipeline was never loaded."""
    monkeypatch.chdir(tmp_path)

    def no_load(*a, **k):
        raise AssertionError("the pipeline was loaded before the arguments were checked")

    monkeypatch.setattr("disco_inspect.models.pipelines.load_pipeline", no_load)

    def run(argv, *needles, absent=()):
        before = _listing(tmp_path)
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("disco-inspect: error:"), err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in lines[0], lines[0]
        for word in absent:
            assert word not in lines[0], lines[0]
        assert _listing(tmp_path) == before, "a refused command created or changed files"
        return lines[0]

    return run


@pytest.fixture
def token_file(tmp_path_factory):
    """A token file of the world's width (384)."""
    folder = tmp_path_factory.mktemp("tok")
    return save_token(
        folder / "tok.safetensors", "<S>", torch.randn(384, generator=torch.Generator().manual_seed(0))
    )


@pytest.fixture
def image_file(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "circle.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(path)
    return path


REPORT = ["report", "world:clean", "--class", "circle", "--no-progress"]
TRAIN = ["train", "world:clean", "--class", "circle", "--no-progress"]


# -- item 1: `--token` is the new token's text; a learned token file is `--token-file` ------------------------------


@pytest.mark.parametrize("value", ["good_token.safetensors", "runs/0-circle/run", "emb.bin", "existing"])
def test_a_path_as_the_token_string_is_refused(refused, tmp_path, value):
    (tmp_path / "existing").write_text("x")
    refused([*REPORT, "--out", "r", "--token", value], "`--token`", repr(value), "--token-file")
    refused([*TRAIN, "--out", "t", "--token", value], "`--token`", repr(value), "--token-file")


@pytest.mark.parametrize("command", ["edit", "evaluate", "generate"])
def test_the_token_file_flag_is_token_file(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    dests = {a.dest: a.option_strings for a in sub._actions}
    assert dests["token_file"] == ["--token-file"] and "token" not in dests


def test_a_missing_token_file_is_refused_before_loading(refused, image_file):
    missing = "missing.safetensors"
    refused(["generate", "--token-file", missing, "--prompt", "a <S> circle"], "`--token-file`", missing)
    refused(
        ["evaluate", "world:clean", "--class", "circle", "--token-file", missing], "`--token-file`", missing
    )
    refused(
        ["edit", "world:clean", "--class", "circle", "--images", image_file, "--token-file", missing],
        "`--token-file`",
        missing,
    )


# -- item 2: train uses the world preset like report; report's help states the real --objective default ----------


def test_train_checks_flags_against_the_world_preset(refused):
    # the world preset has 10 denoising steps (the paper's 30 would accept 20 gradient steps)
    refused(
        [*TRAIN, "--out", "run", "--grad-steps", "20"],
        "`--grad-steps`",
        "1..10",
        absent=("num_inference_steps",),
    )


def test_train_runs_with_the_world_preset(tmp_path, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_train(pipe, clf, idx, config, **kw):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr("disco_inspect.models.pipelines.load_pipeline", lambda *a, **k: object())
    monkeypatch.setattr("disco_inspect.engine.optimize.train_token", fake_train)
    with pytest.raises(Stop):
        main([*TRAIN, "--out", str(tmp_path / "run")])
    from disco_inspect.world.presets import world_config

    assert seen["config"] == world_config()


def test_report_help_states_the_objective_default_of_default_config():
    from disco_inspect.defaults import default_config

    sub = build_parser()._subparsers._group_actions[0].choices["report"]
    text = " ".join(sub.format_help().split())
    assert f"(default: {default_config(None).objective})" in text and "default: toward" not in text


# -- item 3: values that were accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["-1", "0"])
def test_generate_refuses_bad_steps(refused, token_file, steps):
    refused(
        ["generate", "--token-file", token_file, "--prompt", "a <S> circle", "--steps", steps, "--out", "g"],
        "`--steps`",
        absent=("num_inference_steps",),
    )


@pytest.mark.parametrize("command", [REPORT, ["world", "benchmark", "--random", "1"]])
def test_a_bad_scan_step_count_is_refused_before_any_work(refused, command):
    refused([*command, "--scan-steps", "0"], "`--scan-steps` = 0", absent=("scan_steps",))
    refused([*command, "--real-edit-images", "-1"], "`--real-edit-images` = -1", absent=("real_edit_images",))


def test_generate_does_not_write_into_a_folder_that_is_not_ours(refused, tmp_path, token_file):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_text("photo")
    refused(
        ["generate", "--token-file", token_file, "--prompt", "a <S> circle", "--out", "mine"],
        "`--out`",
        "holiday.jpg",
    )


def test_report_refuses_an_unreadable_image_before_any_work(refused, tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    refused([*REPORT, "--out", "r", "--images", "fake.png"], "`--images`", "fake.png")


def test_a_tiny_image_is_upscaled_with_a_warning(tmp_path, caplog):
    from PIL import Image

    from disco_inspect.editing.images import load_images

    Image.new("RGB", (1, 1), (0, 0, 0)).save(tmp_path / "dot.png")
    with caplog.at_level(logging.WARNING):
        load_images(tmp_path / "dot.png", 32)
    assert any("dot.png" in r.getMessage() and "1x1" in r.getMessage() for r in caplog.records)


def test_a_one_output_classifier_is_refused(refused, tmp_path):
    from disco_inspect.models.classifiers import save_torchscript_classifier

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1))
    save_torchscript_classifier(net, tmp_path / "one.pt", label_names=["only"])
    refused(["train", "one.pt", "--class", "0", "--out", "run"], "one.pt", "2 classes")


def test_report_refuses_control_draws_below_minus_one(refused):
    refused([*REPORT, "--out", "r", "--control-draws", "-5"], "`--control-draws`", "-1")


# -- item 4: one line instead of a traceback -----------------------------------------------------------------------


def test_an_out_that_is_a_file_is_refused(refused, tmp_path, token_file):
    (tmp_path / "afile").write_text("mine")
    refused([*TRAIN, "--out", "afile"], "`--out`", "afile")
    refused([*REPORT, "--out", "afile"], "`--out`", "afile")
    refused(["generate", "--token-file", token_file, "--prompt", "a <S> circle", "--out", "afile"], "`--out`")


def test_generate_refuses_an_empty_seed_range(refused, token_file):
    refused(
        ["generate", "--token-file", token_file, "--prompt", "a <S> circle", "--seeds", "5-2"],
        "`--seeds`",
        "5-2",
    )


def test_make_classifier_refuses_zero_steps_before_training(refused, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained before checking the flags")

    monkeypatch.setattr("disco_inspect.world.scene_classifiers.train_world_classifier", boom)
    refused(["world", "make-classifier", "--out", "c.pt", "--train-steps", "0"], "`--train-steps`", "0")
    refused(["world", "make-oracle", "--train-steps", "0"], "`--train-steps`")


# -- item 5: nothing left behind -----------------------------------------------------------------------------------


def test_train_into_a_foreign_folder_leaves_no_lock(refused, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    refused([*TRAIN, "--out", "mine"], "`--out`", "notes.txt")


def test_world_train_checks_its_flags_and_folder_first(refused, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained before checking the flags")

    monkeypatch.setattr("disco_inspect.world.train.train_vae", boom)
    refused(["world", "train", "--work", "ww", "--vae-steps", "-1"], "`--vae-steps`", absent=("vae_steps",))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    refused(["world", "train", "--work", "mine"], "`--work`", "notes.txt")


def test_make_classifier_checks_out_before_training(refused, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr("disco_inspect.world.scene_classifiers.train_world_classifier", boom)
    (tmp_path / "adir").mkdir()
    refused(["world", "make-classifier", "--out", "adir", "--train-steps", "5"], "`--out`", "adir")
    (tmp_path / "notes.txt").write_text("mine")
    refused(["world", "make-classifier", "--out", "notes.txt", "--train-steps", "5"], "`--out`", "notes.txt")


@pytest.mark.parametrize("name", ["index.html", "report.json"])
def test_report_refuses_a_foreign_report_file_in_the_class_folder(refused, tmp_path, name):
    folder = tmp_path / "r" / "clean" / "0-circle"
    folder.mkdir(parents=True)
    (folder / name).write_text("<html>my page</html>" if name == "index.html" else json.dumps({"mine": 1}))
    refused([*REPORT, "--out", "r"], name, "0-circle")


# -- item 6: everything that needs no model is checked before the pipeline loads --------------------------------------


def test_edit_checks_before_loading(refused, tmp_path, token_file, image_file):
    edit = ["edit", "world:clean", "--class", "circle", "--token-file", token_file, "--no-progress"]
    (tmp_path / "empty").mkdir()
    refused([*edit, "--images", "empty", "--out", "e"], "`--images`", "empty")
    refused(
        [*edit, "--images", image_file, "--concepts", "nope.txt", "--out", "e"], "`--concepts`", "nope.txt"
    )
    (tmp_path / "afile").write_text("x")
    refused([*edit, "--images", image_file, "--out", "afile"], "`--out`", "afile")
    refused(
        [*edit, "--images", image_file, "--steps", "0", "--out", "e"], "`--steps`", absent=("num_inference",)
    )


def test_evaluate_checks_before_loading(refused, token_file):
    evaluate = ["evaluate", "world:clean", "--class", "circle", "--token-file", token_file]
    refused([*evaluate, "--eval-seeds", "0"], "`--eval-seeds`")
    refused([*evaluate, "--steps", "0"], "`--steps`", absent=("num_inference_steps",))
    refused([*evaluate, "--label-map", "m.json"], "`--label-map`")


def test_report_checks_config_and_concepts_before_loading(refused):
    refused([*REPORT, "--out", "r", "--steps", "0"], "`--steps`", absent=("num_inference_steps",))
    refused([*REPORT, "--out", "r", "--concepts", "nope.txt"], "`--concepts`", "nope.txt")


# -- item 7: messages name the flag the user typed ---------------------------------------------------------------------


def test_messages_name_flags_not_fields(refused):
    refused([*REPORT, "--out", "r", "--eval-seeds", "1"], "`--eval-seeds`", absent=("`eval_seeds`",))
    refused([*TRAIN, "--out", "run", "--n-images", "0"], "`--n-images`", absent=("n_images",))
    refused([*TRAIN[:3], "99", "--out", "run"], "`--class`", absent=("`target`",))


def test_report_class_typo_suggests_the_class(refused):
    refused(["report", "world:clean", "--class", "circel", "--out", "r"], "did you mean", "'circle'")


class _NeedsGrey(torch.nn.Module):
    """A classifier that refuses RGB input (its TorchScript error's last line is the real cause)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        if x.shape[1] != 1:
            raise RuntimeError("expects 1-channel images")
        return self.lin(x.mean((2, 3)))


def test_torchscript_failures_show_the_real_cause(refused, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(_NeedsGrey()), str(tmp_path / "grey.pt"))
    line = refused(["train", "grey.pt", "--class", "0", "--out", "run"], "expects 1-channel images")
    assert "TorchScript interpreter" not in line


def test_report_images_for_several_classes_must_be_a_labelled_tree(refused, image_file):
    refused(
        ["report", "world:clean", "--classes", "circle,square", "--images", image_file],
        "`--images`",
        "DIR/<class>/",
    )
