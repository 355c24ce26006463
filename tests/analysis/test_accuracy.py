"""Table 1 over classes: per-class and mean top-1/top-5 without/with the token, bootstrap intervals."""

import pytest

from disco_inspect.analysis.accuracy import accuracy_table, format_accuracy_table
from disco_inspect.errors import DiscoInspectError


def _items(preds, target=0):
    return [
        {"pred": p, "topk": [[p, "x", 0.9], [target, "t", 0.05]] if p != target else [[p, "t", 0.9]]}
        for p in preds
    ]


def _result(name, base_hits, token_hits, n=40, target=0):
    base = [target if i < base_hits else 1 for i in range(n)]
    tok = [target if i < token_hits else 1 for i in range(n)]
    return {
        "class_name": name,
        "target": target,
        "baseline_items": _items(base, target),
        "token_items": _items(tok, target),
    }


def test_rows_means_gains_and_intervals():
    table = accuracy_table([_result("circle", 10, 30), _result("square", 20, 20)], n_boot=500)
    circle, square = table["rows"]
    assert (
        circle["top1"]["baseline"] == 0.25
        and circle["top1"]["token"] == 0.75
        and circle["top1"]["gain"] == 0.5
    )
    lo, hi = circle["top1"]["gain_ci"]
    assert 0.2 < lo < 0.5 < hi < 0.8
    assert (
        square["top1"]["gain"] == 0 and square["top5"]["token"] == 1.0
    )  # every image has the target in top-5
    mean = table["mean"]
    assert mean["top1"]["baseline"] == pytest.approx(0.375) and mean["top1"]["gain"] == pytest.approx(0.25)
    # the stratified interval of the mean is narrower than one class's
    assert mean["top1"]["gain_ci"][1] - mean["top1"]["gain_ci"][0] < hi - lo
    text = format_accuracy_table(table)
    assert "| circle | 40 | 0.250 | 0.750 | +0.500 [" in text and "**mean of 2**" in text


def test_the_table_is_deterministic_and_refuses_unpaired_input():
    a = accuracy_table([_result("circle", 10, 30)], n_boot=200)
    assert a == accuracy_table([_result("circle", 10, 30)], n_boot=200)
    bad = _result("circle", 1, 2)
    bad["token_items"] = bad["token_items"][:-1]
    with pytest.raises(DiscoInspectError, match="same seeds"):
        accuracy_table([bad])
    with pytest.raises(DiscoInspectError, match="empty"):
        accuracy_table([])
    with pytest.raises(DiscoInspectError, match="`level` = 2"):
        accuracy_table([_result("circle", 1, 2)], level=2)
