"""Behaviour of train_token on tiny random diffusers components."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from disco_inspect import DiscoConfig, DiscoInspectError, train_token
from disco_inspect.engine.sampling import generate
from disco_inspect.testing import tiny_pipeline

FAST = dict(
    n_images=4,
    num_inference_steps=4,
    guidance_scale=3.0,
    lr=0.05,
    max_iters=6,
    patience=100,
    accuracy_threshold=1.0,
    templates=("a photo of a {token} {class_name}",),
)


def test_only_new_row_changes_and_target_probability_rises(tiny_pipe, tiny_clf, tmp_path):
    table_before = tiny_pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    run = train_token(
        tiny_pipe, tiny_clf, "triangle", config=DiscoConfig(**FAST), out=tmp_path / "run", progress=False
    )
    table_after = tiny_pipe.text_encoder.get_input_embeddings().weight.detach()
    n = table_before.shape[0]
    assert table_after.shape[0] == n + 1
    assert torch.equal(table_after[:n], table_before), "a frozen embedding row changed"
    new_row = table_after[n]
    assert not torch.allclose(new_row, run.initial_embedding), "the new row did not move"
    assert torch.equal(new_row, run.embedding.to(new_row)), "the pipeline holds the best embedding"
    probs = run.target_probs()
    assert len(probs) == FAST["max_iters"]
    assert probs[-1] > probs[0], f"target probability did not rise: {probs}"
    # every trainable parameter of the pipeline is still frozen and unchanged in count
    assert not any(p.requires_grad for p in tiny_pipe.text_encoder.parameters())


def test_run_folder_contents(tiny_pipe, tiny_clf, tmp_path):
    out = tmp_path / "run"
    run = train_token(
        tiny_pipe, tiny_clf, "square", config=DiscoConfig(**{**FAST, "max_iters": 3}), out=out, progress=False
    )
    meta = json.loads((out / "config.json").read_text())
    assert meta["target"] == {"index": 1, "class_name": "square", "label": "square"}
    lines = [json.loads(x) for x in (out / "trajectory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2]
    for r in lines:
        assert len(r["items"]) == 4 and len(r["items"][0]["topk"]) == 4
        assert {"loss", "accuracy", "target_prob_mean", "token_norm", "token_dist", "seconds"} <= set(r)
        for j in range(4):
            assert (out / "images" / f"step_{r['step']:04d}" / f"{j:02d}.png").is_file()
        assert (out / "tokens" / f"step_{r['step']:04d}.safetensors").is_file()
    assert (out / "images" / "baseline" / "00.png").is_file()
    baseline = json.loads((out / "baseline.json").read_text())
    assert [it["seed"] for it in baseline["items"]] == [it["seed"] for it in lines[0]["items"]]
    assert "<S>" not in baseline["items"][0]["prompt"] and "<S>" in lines[0]["items"][0]["prompt"]
    assert (out / "learned_embeds.safetensors").is_file()
    assert json.loads((out / "result.json").read_text())["stopped"] == "max_iters"
    assert run.stopped == "max_iters"


def test_saved_token_reproduces_last_images_in_fresh_pipeline(tiny_pipe, tiny_clf, tmp_path):
    cfg = DiscoConfig(**{**FAST, "max_iters": 3})
    out = tmp_path / "run"
    run = train_token(tiny_pipe, tiny_clf, "cross", config=cfg, out=out, progress=False)
    last = run.steps[-1]
    fresh = tiny_pipeline(seed=0)
    fresh.load_textual_inversion(str(out / "tokens" / f"step_{last:04d}.safetensors"))
    prompts, seeds = cfg.prompts("cross"), cfg.seeds()
    images = generate(
        fresh, prompts, seeds, num_inference_steps=cfg.num_inference_steps, guidance_scale=cfg.guidance_scale
    )
    torch.testing.assert_close(images, run.last_images, atol=1e-5, rtol=1e-4)
    for j in range(len(seeds)):
        png = (
            np.asarray(Image.open(out / "images" / f"step_{last:04d}" / f"{j:02d}.png"), dtype=np.float32)
            / 255
        )
        assert np.abs(png - images[j].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    # and the stock diffusers pipeline, given the same noise, draws the same images
    from disco_inspect.engine.sampling import initial_noise

    noise = initial_noise(fresh, seeds, 32, 32)
    stock = fresh(
        prompts,
        num_inference_steps=cfg.num_inference_steps,
        guidance_scale=cfg.guidance_scale,
        latents=noise,
        output_type="pt",
    ).images
    torch.testing.assert_close(stock, images, atol=1e-5, rtol=1e-4)


def test_gradient_through_all_steps_runs(tiny_pipe, tiny_clf):
    run = train_token(
        tiny_pipe,
        tiny_clf,
        0,
        config=DiscoConfig(**{**FAST, "max_iters": 2, "grad_steps": -1}),
        progress=False,
    )
    assert len(run.trajectory) == 2 and run.trajectory[0]["grad_norm"] > 0


def test_gradient_depth_changes_the_gradient(tiny_clf):
    grads = {}
    for k in (1, 4):
        pipe = tiny_pipeline(seed=0)
        run = train_token(
            pipe, tiny_clf, 2, config=DiscoConfig(**{**FAST, "max_iters": 1, "grad_steps": k}), progress=False
        )
        grads[k] = run.trajectory[0]["grad_norm"]
    assert grads[1] > 0 and grads[4] > 0 and grads[1] != grads[4]


def test_stops_on_accuracy_and_keeps_judged_embedding(tiny_pipe, tiny_clf, tmp_path):
    cfg = DiscoConfig(**{**FAST, "accuracy_threshold": 0.0, "max_iters": 5})
    # the class the random classifier already predicts most often stops at once
    base = train_token(
        tiny_pipeline(seed=0), tiny_clf, 0, config=cfg.replace(max_iters=1), progress=False
    ).baseline
    counts = np.bincount([it["pred"] for it in base["items"]], minlength=4)
    target = int(counts.argmax())
    run = train_token(tiny_pipe, tiny_clf, target, config=cfg, out=tmp_path / "r", progress=False)
    assert run.stopped == "accuracy" and len(run.trajectory) == 1
    assert torch.equal(
        run.embedding, run.initial_embedding
    )  # the judged (only) embedding, not one update past it


def test_patience_stop(tiny_pipe, tiny_clf):
    run = train_token(
        tiny_pipe,
        tiny_clf,
        1,
        config=DiscoConfig(**{**FAST, "lr": 1e-9, "patience": 0, "max_iters": 10}),
        progress=False,
    )
    assert run.stopped == "patience" and len(run.trajectory) < 10


def test_finished_run_is_reused_and_retraining_can_be_extended(tiny_pipe, tiny_clf, tmp_path):
    out = tmp_path / "run"
    cfg = DiscoConfig(**{**FAST, "max_iters": 2})
    train_token(tiny_pipe, tiny_clf, 1, config=cfg, out=out, progress=False)
    mtime = (out / "trajectory.jsonl").stat().st_mtime_ns
    again = train_token(tiny_pipeline(seed=0), tiny_clf, 1, config=cfg, out=out, progress=False)
    assert (out / "trajectory.jsonl").stat().st_mtime_ns == mtime and len(again.trajectory) == 2
    longer = train_token(
        tiny_pipeline(seed=0), tiny_clf, 1, config=cfg.replace(max_iters=3), out=out, progress=False
    )
    assert longer.steps == [0, 1, 2]
    straight = train_token(
        tiny_pipeline(seed=0), tiny_clf, 1, config=cfg.replace(max_iters=3), progress=False
    )
    assert longer.trajectory[-1]["loss"] == pytest.approx(straight.trajectory[-1]["loss"], rel=1e-4)


def test_different_run_in_same_folder_is_refused(tiny_pipe, tiny_clf, tmp_path):
    out = tmp_path / "run"
    train_token(
        tiny_pipe, tiny_clf, 1, config=DiscoConfig(**{**FAST, "max_iters": 1}), out=out, progress=False
    )
    with pytest.raises(DiscoInspectError, match="config.lr"):
        train_token(
            tiny_pipeline(seed=0),
            tiny_clf,
            1,
            config=DiscoConfig(**{**FAST, "max_iters": 1, "lr": 0.1}),
            out=out,
            progress=False,
        )


def test_notebook_rerun_on_same_pipeline(tiny_pipe, tiny_clf):
    cfg = DiscoConfig(**{**FAST, "max_iters": 1})
    a = train_token(tiny_pipe, tiny_clf, 1, config=cfg, progress=False)
    b = train_token(tiny_pipe, tiny_clf, 1, config=cfg, progress=False)
    assert torch.equal(a.initial_embedding, b.initial_embedding)
    assert a.trajectory[0]["loss"] == pytest.approx(b.trajectory[0]["loss"])


def test_gradient_clipping_happens_after_backward(tiny_pipe, tiny_clf, monkeypatch):
    seen = []
    original = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(float(self.param_groups[0]["params"][0].grad.norm()))
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    run = train_token(
        tiny_pipe,
        tiny_clf,
        1,
        config=DiscoConfig(**{**FAST, "max_iters": 2, "max_grad_norm": 1e-9}),
        progress=False,
    )
    assert seen and all(g <= 1e-9 * 1.0001 for g in seen)
    assert all(r["grad_norm"] > 1e-9 for r in run.trajectory)  # recorded before clipping


def test_downsampled_images(tiny_pipe, tiny_clf, tmp_path):
    out = tmp_path / "r"
    train_token(
        tiny_pipe,
        tiny_clf,
        1,
        config=DiscoConfig(**{**FAST, "max_iters": 1, "image_save_size": 16}),
        out=out,
        progress=False,
    )
    assert Image.open(out / "images" / "step_0000" / "00.png").size == (16, 16)
    assert Image.open(out / "images" / "baseline" / "00.png").size == (16, 16)


def test_seed_pool_cycles_through_noises(tiny_pipe, tiny_clf):
    cfg = DiscoConfig(**{**FAST, "n_images": 2, "max_iters": 4, "seed": 10, "seed_pool": 6})
    assert [cfg.iteration_seeds(t) for t in range(4)] == [[10, 11], [12, 13], [14, 15], [10, 11]]
    assert (
        DiscoConfig(**FAST).iteration_seeds(3) == DiscoConfig(**FAST).seeds()
    )  # default: the paper's fixed seeds
    run = train_token(tiny_pipe, tiny_clf, 1, config=cfg, progress=False)
    assert [[it["seed"] for it in r["items"]] for r in run.trajectory] == [
        cfg.iteration_seeds(t) for t in range(4)
    ]
    with pytest.raises(DiscoInspectError, match="seed_pool"):
        DiscoConfig(**{**FAST, "seed_pool": 3})  # smaller than n_images


def test_with_a_seed_pool_only_same_seed_iterations_are_judged(tiny_pipe, tiny_clf, tmp_path):
    """Best token, patience and accuracy stop compare losses on the same seeds (the baseline's), never on the
    luckiest subset of the pool."""
    cfg = DiscoConfig(**{**FAST, "n_images": 2, "seed_pool": 6, "max_iters": 7, "patience": 1})
    run = train_token(tiny_pipe, tiny_clf, "triangle", config=cfg, out=tmp_path / "run", progress=False)
    first = [it["seed"] for it in run.baseline["items"]]
    for r in run.trajectory:
        same = [it["seed"] for it in r["items"]] == first
        assert r["validation"] == same, r["step"]
        assert not r["best"] or same, f"step {r['step']} on other seeds was chosen as best"
    assert [r["step"] for r in run.trajectory if r["validation"]] == [0, 3, 6][: len(run.trajectory) // 3 + 1]
    assert run.best_step % 3 == 0
    # patience 1 counts validation iterations only: at least two more are needed after the best to stop
    assert run.stopped in ("max_iters", "patience")
    if run.stopped == "patience":
        assert run.trajectory[-1]["validation"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_pipeline_trains_the_token_in_float32(tiny_clf, tmp_path, dtype, monkeypatch):
    """GPUs run float16 (bfloat16 where it is fast): the token's one optimised parameter is float32 (cast
    into the half-precision table) and gets finite gradients, only its new row is added, and the classifier keeps its own dtype."""
    from disco_inspect.engine.token import load_token

    trained: list[torch.dtype] = []
    adamw = torch.optim.AdamW

    def recording(params, *a, **k):
        params = list(params)
        trained.extend(p.dtype for p in params)
        return adamw(params, *a, **k)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    pipe = tiny_pipeline().to(dtype)
    before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    cfg = DiscoConfig(n_images=1, num_inference_steps=1, guidance_scale=0.0, max_iters=2)
    run = train_token(pipe, tiny_clf, 0, config=cfg, out=tmp_path / "run", progress=False)
    table = pipe.text_encoder.get_input_embeddings().weight
    assert table.dtype == dtype and torch.equal(table[: len(before)], before)
    assert all(r["grad_norm"] > 0 and r["grad_norm"] == r["grad_norm"] for r in run.trajectory)
    _, vector = load_token(run.token_path)
    assert torch.isfinite(vector).all() and not torch.equal(table[len(before)].float(), vector * 0)
    assert next(tiny_clf.parameters()).dtype == torch.float32
    assert trained == [torch.float32]  # the one optimised parameter, the token's row, is float32
