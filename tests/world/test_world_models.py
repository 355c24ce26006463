"""World oracle, world classifiers and the world model's training script (short budgets)."""

import torch

from disco_inspect.world.oracle import WorldOracle, augment, train_oracle
from disco_inspect.world.scene_classifiers import SceneCNN
from disco_inspect.world.scenes import FACTOR_VALUES, generate_scenes


def test_oracle_heads_and_augment_shapes():
    o = WorldOracle()
    x = generate_scenes(4, seed=1).images
    out = o(x)
    assert {k: v.shape[1] for k, v in out.items()} == {k: len(v) for k, v in FACTOR_VALUES.items()}
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not torch.equal(x, y)


def test_oracle_training_is_deterministic():
    a = train_oracle(steps=3, batch=8, seed=3, progress=False)
    b = train_oracle(steps=3, batch=8, seed=3, progress=False)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_scene_cnn_logits():
    assert SceneCNN()(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_world_training_reproduces_first_checkpoints(tmp_path):
    from disco_inspect.world.train import main

    args = [
        "--stage",
        "all",
        "--vae-steps",
        "2",
        "--unet-steps",
        "2",
        "--vae-batch",
        "4",
        "--unet-batch",
        "4",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "1000",
        "--no-progress",
    ]
    for run in ("a", "b"):
        assert main(["--work", str(tmp_path / run), *args]) == 0
    for ckpt in ("vae_ckpt.pt", "unet_ckpt.pt"):
        sa = torch.load(tmp_path / "a" / ckpt, weights_only=True)["model"]
        sb = torch.load(tmp_path / "b" / ckpt, weights_only=True)["model"]
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_quality_report_smoke(tiny_pipe):
    from disco_inspect.world.benchmarks.quality import quality_report

    rep = quality_report(tiny_pipe, n=4, steps=2, batch_size=4)
    assert set(rep["accuracy"]) == {
        "shape",
        "color",
        "background",
        "texture",
        "object",
        "size",
        "object_presence",
    }
    assert all(0 <= v <= 1 for v in rep["accuracy"].values())
    assert all(0 <= v <= 1 for v in rep["shape_only_diversity"].values())


def test_compact_checkpoint_resumes(tmp_path):
    from disco_inspect.world.train import COMPACT_UNET, compact_checkpoint, main

    args = [
        "--vae-steps",
        "2",
        "--vae-batch",
        "4",
        "--unet-batch",
        "4",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "1000",
        "--no-progress",
    ]
    assert main(["--work", str(tmp_path / "a"), "--unet-steps", "2", *args]) == 0
    compact_checkpoint(tmp_path / "a", tmp_path / "c")
    assert main(["--work", str(tmp_path / "c"), "--unet-steps", "4", *args]) == 0  # continues from step 2
    state = torch.load(tmp_path / "c" / "unet_ckpt.pt", weights_only=True)
    assert state["step"] == 4 and state["warm_from"] == 2
    assert (tmp_path / "c" / COMPACT_UNET).stat().st_size < 12_000_000
