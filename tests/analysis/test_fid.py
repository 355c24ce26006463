"""FID in a caller-supplied feature space (torchmetrics' custom-module path): zero on identical sets, monotone in a
shift, never downloads, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from disco_inspect.analysis.fid import features_from_classifier, fid_table, frechet_distance
from disco_inspect.errors import DiscoInspectError


def _features() -> nn.Module:
    """A tiny fixed random conv network: images [N, 3, H, W] -> [N, 8]."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def _images(n: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_a_set_against_itself_is_zero(no_network):
    x = _images()
    assert frechet_distance(x, x, _features()) == pytest.approx(0.0, abs=1e-9)


def test_fid_grows_monotonically_with_a_darkening_shift(no_network):
    x, feats = _images(), _features()
    values = [frechet_distance(x, x * (1 - s), feats, batch_size=16) for s in (0.0, 0.1, 0.3, 0.6)]
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_the_feature_module_keeps_its_mode_and_is_not_given_a_299px_probe(no_network):
    calls: list[tuple[int, ...]] = []

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _features()

        def forward(self, images):
            calls.append(tuple(images.shape[-2:]))
            return self.net(images)

    feats = Recording().train()
    value = frechet_distance(_images(8), _images(8, seed=2), feats, batch_size=4)
    assert value > 0
    assert feats.training and feats.net[0].training  # mode restored
    assert set(calls) == {(16, 16)}  # torchmetrics never probed with its default 299x299 dummy


def test_fid_table_rows_and_mean(no_network):
    x, feats = _images(), _features()
    table = fid_table(
        {"a": x, "b": x * 0.5},
        {"a": {"baseline": x * 0.8, "token": x}, "b": {"baseline": x * 0.5, "token": x * 0.9}},
        feats,
        batch_size=32,
    )
    assert table["metric"] == "FID (custom features)"
    rows = table["rows"]
    assert list(rows) == ["a", "b", "mean"]
    assert rows["a"]["token"] == pytest.approx(0.0, abs=1e-9) and rows["a"]["baseline"] > 0
    assert rows["b"]["baseline"] == pytest.approx(0.0, abs=1e-9) and rows["b"]["token"] > 0
    assert rows["mean"]["baseline"] == pytest.approx((rows["a"]["baseline"] + rows["b"]["baseline"]) / 2)
    assert rows["a"]["n_real"] == 48 and rows["a"]["n_generated"] == 48 and rows["mean"]["n_real"] == 96


def test_features_from_classifier_gives_penultimate_features(tiny_clf, no_network):
    feats = features_from_classifier(tiny_clf)
    x = _images(6)
    out = feats(x)
    assert out.ndim == 2 and out.shape[0] == 6
    assert feats.name == "classifier penultimate features"
    table = fid_table({"c": x}, {"c": {"baseline": x, "token": x.flip(-1)}}, feats)
    assert table["metric"] == "FID (classifier penultimate features)"
    assert table["rows"]["c"]["baseline"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(DiscoInspectError, match="Classifier"):
        features_from_classifier(nn.Linear(3, 2))


class _Bad(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, images):
        if self.kind == "4d":
            return images
        out = images.mean(dim=(2, 3))
        return out / 0 if self.kind == "nan" else out


@pytest.mark.parametrize(
    ("real", "generated", "features", "match"),
    [
        (_images(1), _images(8), _features(), r"`real` holds 1 image"),
        (_images(8), _images(1), _features(), r"`generated` holds 1 image"),
        (_images(8), torch.rand(8, 1, 16, 16), _features(), r"`generated` has 1 channels but `real` has 3"),
        (_images(8), _images(8), _Bad("4d"), r"returned shape \(2, 3, 16, 16\).*2-D"),
        (_images(8), _images(8), _Bad("nan"), r"non-finite values"),
        (_images(8) * 255, _images(8), _features(), r"`real` has values in \[.*255"),
        (_images(8).long(), _images(8), _features(), r"`real` must be a float tensor.*torch.int64"),
    ],
)
def test_bad_inputs_name_the_value(real, generated, features, match):
    with pytest.raises(DiscoInspectError, match=match):
        frechet_distance(real, generated, features)


def test_bad_table_inputs_name_the_value():
    x, feats = _images(8), _features()
    with pytest.raises(DiscoInspectError, match=r"only generated images for \['b'\]"):
        fid_table({"a": x}, {"a": {"baseline": x, "token": x}, "b": {"baseline": x, "token": x}}, feats)
    with pytest.raises(DiscoInspectError, match="8 baseline and 4 token"):
        fid_table({"a": x}, {"a": {"baseline": x, "token": x[:4]}}, feats)
    with pytest.raises(DiscoInspectError, match=r"generated_by_class\['a'\].*'baseline'"):
        fid_table({"a": x}, {"a": {"token": x}}, feats)
    with pytest.raises(DiscoInspectError, match="`batch_size` = 0"):
        frechet_distance(x, x, feats, batch_size=0)


def test_tables_of_separate_tasks_merge_into_one_with_a_mean_row():
    from disco_inspect.analysis.fid import format_fid_table, merge_fid_tables

    def one(cls, b, t):
        row = {"baseline": b, "token": t, "n_real": 8, "n_generated": 4}
        return {"metric": "FID (oracle features)", "rows": {cls: row, "mean": row}}

    merged = merge_fid_tables([one("circle", 10.0, 6.0), one("square", 20.0, 30.0)])
    assert list(merged["rows"]) == ["circle", "square", "mean"]
    assert merged["rows"]["mean"] == {"baseline": 15.0, "token": 18.0, "n_real": 16, "n_generated": 8}
    assert "| **mean** | 15.0 | 18.0 | 16 / 8 |" in format_fid_table(merged)
    other = {"metric": "FID (classifier logits)", "rows": {}}
    with pytest.raises(DiscoInspectError, match="different features"):
        merge_fid_tables([one("circle", 1.0, 1.0), other])
