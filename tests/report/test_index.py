"""The index page over many audits: one row per (model, class), failures with their error, sortable."""

import re
import subprocess

from disco_inspect.report.html import write_index

from .test_report import chromium_command


def _doc(concept, shift, confirmed=True):
    factor = {"concept": concept, "baseline_rate": 0.1, "token_rate": 0.9, "confirmed": confirmed}
    return {
        "factors": {"ranked": [factor], "reported": [concept]},
        "evaluation": {"target_prob_shift": {"effect": shift, "ci_low": shift - 0.1, "ci_high": shift + 0.1}},
    }


def _entries():
    return [
        {
            "model": "a.pt",
            "class_name": "circle",
            "href": "a/0-circle/index.html",
            "doc": _doc("background=green", 0.2),
        },
        {
            "model": "b.pt",
            "class_name": "square",
            "href": "b/1-square/index.html",
            "doc": None,
            "status": "failed",
            "error": "DiscoInspectError: <b>out of memory</b>",
        },
        {
            "model": "a.pt",
            "class_name": "cross",
            "href": "a/3-cross/index.html",
            "doc": _doc("color=red", 0.5),
        },
    ]


def test_index_lists_every_task_and_the_failed_one_with_its_error(tmp_path):
    page = write_index(_entries(), tmp_path, "audit").read_text()
    assert 'href="a/0-circle/index.html"' in page and 'href="a/3-cross/index.html"' in page
    assert "1 failed" in page and "failed: DiscoInspectError: &lt;b&gt;out of memory&lt;/b&gt;" in page
    assert 'href="b/1-square/index.html"' not in page  # no link to a report that was never written
    assert "<th>model</th>" in page  # two models: the model column is shown
    assert "<th>model</th>" not in write_index(_entries()[:1], tmp_path / "one", "audit").read_text()


def _rows_after_chromium(page, fragment, tmp_path):
    cmd = chromium_command(tmp_path / "profile", page.as_uri() + fragment)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln] == []
    body = proc.stdout[proc.stdout.index("<tbody>") :]
    return re.findall(r"<td>(?:<a [^>]*>)?(circle|square|cross)<", body)


def test_index_sorts_by_a_column_in_the_browser(tmp_path):
    page = write_index(_entries(), tmp_path, "audit")
    assert _rows_after_chromium(page, "", tmp_path) == ["circle", "square", "cross"]
    # column 6 = delta target probability; descending puts cross (+0.5) before circle (+0.2)
    rows = _rows_after_chromium(page, "#sort=6-desc", tmp_path)
    assert rows.index("cross") < rows.index("circle")
    assert _rows_after_chromium(page, "#sort=1-asc", tmp_path) == ["circle", "cross", "square"]
