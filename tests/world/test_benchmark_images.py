"""`world benchmark --images K`: every case gets a validation split of its classifier's training distribution (the
bias at its rate, fresh seeds), and each evidence channel is judged on its own."""

import pytest

from disco_inspect.world.benchmarks.user_images import channel_summary, validation_split


def test_the_split_follows_the_training_distribution_not_the_ground_truth_scenes(tmp_path):
    from disco_inspect.editing.images import load_images
    from disco_inspect.world.oracle import load_oracle

    case = {
        "name": "case00",
        "class_name": "circle",
        "bias": "circle: background=green @ 0.99",
        "train_seed": 5,
    }
    folder = validation_split(case, 40, tmp_path / "imgs")
    files = sorted(folder.iterdir())
    assert len(files) == 40
    images = load_images(folder, 32).images
    read = load_oracle().probabilities(images)
    assert (read["shape"].argmax(1) == 0).float().mean() > 0.9  # circles
    green = (read["background"].argmax(1) == 1).float().mean()
    assert green > 0.9  # the bias at its rate: conflicting images are rare
    # written once, reused; a clean case is uniform over backgrounds
    stamp = files[0].stat().st_mtime_ns
    validation_split(case, 40, tmp_path / "imgs")
    assert files[0].stat().st_mtime_ns == stamp
    clean = validation_split({**case, "bias": None, "name": "clean0"}, 40, tmp_path / "clean")
    bg = load_oracle().probabilities(load_images(clean, 32).images)["background"].argmax(1)
    assert (bg == 1).float().mean() < 0.5


def test_each_channel_gets_its_own_recall_precision_and_clean_false_positives():
    def row(planted, sig, real):
        ch = {"significant": sig, "real": dict(zip(sig, real, strict=True))}
        return {
            "planted": planted,
            "relied": bool(planted),
            "channels": {"generated": ch, "real_data": ch, "real_edit": ch},
        }

    rows = [row("a=1", ["a=1", "b=2"], [True, False]), row("c=3", [], []), row(None, ["d=4"], [False])]
    s = channel_summary(rows)
    assert s["generated"]["recall"] == 0.5 and s["generated"]["precision"] == 0.5
    assert s["real_data"]["clean_false_positives"] == 1
    assert channel_summary([{"planted": None, "relied": False, "channels": None}]) == {}


def test_images_flag_is_checked_before_any_work(capsys):
    from disco_inspect.cli import main

    assert main(["world", "benchmark", "--images", "8"]) == 2
    assert "`--images` = 8 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["world", "benchmark", "--random", "1", "--images", "x"])
