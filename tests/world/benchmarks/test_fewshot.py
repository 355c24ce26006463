"""The paper's Table-2 protocol on the world (few-shot classification with generated images), at tiny settings:
schema, k = 0 without a real-only number, the generated-image cache, bad inputs, disjoint real train/test scenes."""

from __future__ import annotations

import json

import pytest
import torch

from disco_inspect.errors import DiscoInspectError
from disco_inspect.world.benchmarks import fewshot
from disco_inspect.world.scenes import SHAPES, generate_scenes

TINY = {
    "ks": (0, 1),
    "n_generated": 4,
    "n_test": 32,
    "train_seeds": (0,),
    "steps": 12,
    "batch": 16,
    "progress": False,
}


@pytest.fixture(scope="module")
def pipe(new_world_pipeline):
    return new_world_pipeline()  # the benchmark installs the tokens on it


def _vector(pipe, seed: int) -> torch.Tensor:
    width = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
    return torch.randn(width, generator=torch.Generator().manual_seed(seed)) * 0.05


def _run(pipe, name: str, vector: torch.Tensor):
    from disco_inspect.engine.token_run import TokenRun
    from disco_inspect.world.presets import world_config

    return TokenRun(
        token="<S>",
        target=SHAPES.index(name),
        class_name=name,
        config=world_config(),
        embedding=vector,
        initial_embedding=vector,
        best_step=0,
        stopped="max_iters",
        trajectory=[],
        baseline={},
    )


@pytest.fixture(scope="module")
def tokens(pipe, tmp_path_factory):
    """Random token vectors: circle and square as in-memory TokenRuns, triangle and cross as token files."""
    from disco_inspect.engine.token import save_token

    folder = tmp_path_factory.mktemp("tokens")
    out = {}
    for i, name in enumerate(SHAPES):
        vec = _vector(pipe, i)
        out[name] = _run(pipe, name, vec) if i < 2 else save_token(folder / f"{name}.safetensors", "<S>", vec)
    return out


class _Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return _REAL_GENERATE(*args, **kwargs)


_REAL_GENERATE = fewshot.generate


@pytest.fixture(scope="module")
def first(pipe, tokens, tmp_path_factory):
    """One tiny run into a fresh folder, counting generation calls."""
    out = tmp_path_factory.mktemp("fewshot")
    counter = _Counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fewshot, "generate", counter)
        result = fewshot.fewshot_table(pipe, tokens, out=out, **TINY)
    return result, counter.calls, out


def test_schema_and_k0_real_arm_is_undefined(first):
    result, calls, out = first
    assert calls == 2 * len(SHAPES)  # text + token images of every class, nothing else
    assert result["classes"] == list(SHAPES) and result["chance"] == 0.25
    assert result["settings"]["n_test"] == 32 and result["settings"]["n_test_per_class"] == 8
    assert [r["k"] for r in result["rows"]] == [0, 1]
    k0, k1 = result["rows"]
    assert k0["arms"]["real"]["undefined"] is True and k0["arms"]["real"]["mean"] is None
    assert "chance" in k0["arms"]["real"]["note"]
    assert k0["gains"]["text_over_real"] is None
    expected_n = {(0, "text"): 16, (0, "token"): 16, (1, "real"): 4, (1, "text"): 20, (1, "token"): 20}
    for (k, arm), n in expected_n.items():
        cell = result["rows"][k]["arms"][arm]
        assert cell["undefined"] is False and cell["n_train"] == n
        assert 0.0 <= cell["mean"] <= 1.0 and len(cell["per_seed"]) == 1
        assert cell["ci95"] is None  # one training seed: no interval
    for row in result["rows"]:
        gain = row["gains"]["token_over_text"]
        assert gain["mean"] == pytest.approx(row["arms"]["token"]["mean"] - row["arms"]["text"]["mean"])
    assert k1["gains"]["text_over_real"]["mean"] == pytest.approx(
        k1["arms"]["text"]["mean"] - k1["arms"]["real"]["mean"]
    )
    for name in SHAPES:
        gen = result["generation"][name]
        assert gen["cached"] == {"text": False, "token": False}
        assert all("<S>" not in p for p in gen["prompts"]["text"])
        assert all("<S>" in p for p in gen["prompts"]["token"])
        assert set(gen["oracle_shape_accuracy"]) == {"text", "token"}
    assert len(result["seeds"]["generation"]) == 4
    assert json.loads((out / fewshot.RESULT_FILE).read_text())["rows"] == result["rows"]
    assert len(list((out / fewshot.CACHE_FOLDER).glob("*.safetensors"))) == 2 * len(SHAPES)
    table = fewshot.format_fewshot_table(result)
    assert "undefined (chance 0.25)" in table and table.count("\n| ") == 4  # header, rule, 2 rows
    assert table.splitlines()[-1].startswith("Oracle shape accuracy")


def test_a_rerun_reads_the_cache_and_a_new_token_regenerates_only_its_images(
    first, pipe, tokens, monkeypatch
):
    result, _, out = first
    counter = _Counter()
    monkeypatch.setattr(fewshot, "generate", counter)
    again = fewshot.fewshot_table(pipe, tokens, out=out, **TINY)
    assert counter.calls == 0
    assert all(again["generation"][n]["cached"] == {"text": True, "token": True} for n in SHAPES)
    assert again["rows"] == result["rows"]  # same images, same seeds: the same classifiers

    changed = {**tokens, "circle": _run(pipe, "circle", _vector(pipe, 99))}
    third = fewshot.fewshot_table(pipe, changed, out=out, **TINY)
    assert counter.calls == 1  # circle's token images; its text images do not depend on the token
    assert third["generation"]["circle"]["cached"] == {"text": True, "token": False}


def test_real_training_and_test_scenes_are_disjoint(first):
    result, _, _ = first
    seeds = result["seeds"]
    test = set(seeds["real_test"].values())
    train = {s for per_class in seeds["real_train"].values() for s in per_class.values()}
    assert len(test) == len(SHAPES) and len(train) == len(SHAPES) and not test & train
    test_images = torch.cat(
        [generate_scenes(8, seed=seeds["real_test"][n], fixed={"shape": n}).images for n in SHAPES]
    )
    train_images = torch.cat(
        [generate_scenes(1, seed=seeds["real_train"]["0"][n], fixed={"shape": n}).images for n in SHAPES]
    )
    same = (test_images[:, None] - train_images[None]).abs().flatten(2).amax(-1) == 0
    assert not same.any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": ("square", "cross")}, "misses the classes square, cross"),
        ({"extra": "hexagon"}, "hexagon"),
        ({"ks": (0, -1)}, "`ks`"),
        ({"n_generated": 0}, "`n_generated`"),
        ({"n_test": 3}, "`n_test`"),
        ({"train_seeds": ()}, "`train_seeds`"),
        ({"steps": 5}, "`steps`"),
        ({"wrong_run": True}, "token run for 'circle'"),
    ],
)
def test_bad_inputs_raise_before_generating(pipe, tokens, monkeypatch, change, message):
    def fail(*args, **kwargs):
        raise AssertionError("generated before checking the inputs")

    monkeypatch.setattr(fewshot, "generate", fail)
    runs = {k: v for k, v in tokens.items() if k not in change.get("drop", ())}
    if "extra" in change:
        runs[change["extra"]] = tokens["circle"]
    if change.get("wrong_run"):
        runs["square"] = tokens["circle"]
    kwargs = {**TINY, **{k: v for k, v in change.items() if k in TINY}}
    with pytest.raises(DiscoInspectError, match=message.replace("(", r"\(")):
        fewshot.fewshot_table(pipe, runs, **kwargs)


def test_train_on_images_checks_its_inputs():
    from disco_inspect.world.scene_classifiers import train_on_images

    images = torch.rand(4, 3, 32, 32)
    with pytest.raises(DiscoInspectError, match="`labels`"):
        train_on_images(images, torch.tensor([0, 1, 2]), steps=12, progress=False)
    with pytest.raises(DiscoInspectError, match="outside"):
        train_on_images(images, torch.tensor([0, 1, 2, 4]), steps=12, progress=False)
    with pytest.raises(DiscoInspectError, match="`steps`"):
        train_on_images(images, torch.tensor([0, 1, 2, 3]), steps=10, progress=False)


def test_accuracy_interval_is_a_t_interval_over_seeds_clipped_to_the_range():
    s = fewshot._summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6)
    assert s["ci95"] == pytest.approx([0.6 - 4.303 * 0.1 / 3**0.5, 0.6 + 4.303 * 0.1 / 3**0.5], abs=1e-4)
    assert fewshot._summary([0.1, 0.9, 1.0])["ci95"][1] == 1.0
    assert fewshot._summary([0.4])["ci95"] is None
