"""The report: files, schema, escaping, reuse of the run folder, notebook display, headless Chromium."""
import json
import os
import re
import shutil
import subprocess

import pytest
import torch

from disco_inspect import DiscoConfig
from disco_inspect.auditor import AuditSettings, audit
from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import Classifier, Preprocessing
from disco_inspect.report.schema import validate_report
from disco_inspect.testing import TinyCNN

EVIL = "<script>alert(1)</script>"


class ColourScorer:
    """A user-written concept scorer: mean redness and greenness of the image."""

    concepts = ["red", "green"]

    def score(self, images):
        return torch.stack([images[:, 0].mean((1, 2)), images[:, 1].mean((1, 2))], 1)

    def intervention(self, concept, class_name):
        other = "blue" if concept == "red" else "red"
        return f"a {concept} {class_name}", [f"a {other} {class_name}"]


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
    from disco_inspect.testing import tiny_pipeline

    torch.manual_seed(0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), [EVIL, "cat", "dog"], source="tiny <b>model</b>")
    pipe = tiny_pipeline(seed=0)
    out = tmp_path_factory.mktemp("report") / "audit"
    cfg = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=3, patience=3,
                      accuracy_threshold=1.0, lr=0.05)
    settings = AuditSettings(eval_seeds=4, intervention_seeds=4, attribution_images=2, min_effect=0.0, alpha=0.5)
    res = audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=out, progress=False)
    return res, out, (pipe, clf, cfg, settings)


def test_report_files_follow_the_schema(tiny_audit):
    res, out, _ = tiny_audit
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    assert doc["audited"]["class_name"] == EVIL
    assert [f["concept"] for f in doc["factors"]["ranked"]] and {"effect", "ci_low", "ci_high", "q_value", "confirmed"} <= set(doc["factors"]["ranked"][0])
    assert len(doc["trajectory"]) == 3 and doc["evaluation"]["n_pairs"] == 4
    assert set(doc["attribution"]["methods"]) == {"integrated_gradients", "grad_cam", "occlusion"}
    for name in ("trajectory.png", "trajectory.pdf", "factors.png", "factors.pdf"):
        assert (out / "figures" / name).stat().st_size > 0
    assert not list(out.rglob("*.tmp"))  # nothing half-written left behind


def test_schema_rejects_a_broken_document(tiny_audit):
    doc = json.loads((tiny_audit[1] / "report.json").read_text())
    del doc["factors"]["ranked"][0]["q_value"]
    with pytest.raises(DiscoInspectError, match="q_value"):
        validate_report(doc)


def test_user_text_is_escaped_everywhere(tiny_audit):
    page = (tiny_audit[1] / "index.html").read_text()
    assert EVIL not in page and "<b>model</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(1)</script>" not in page  # not even inside chart JSON
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', page)  # offline: nothing fetched


def test_finished_run_is_reused_not_retrained(tiny_audit):
    res, out, (pipe, clf, cfg, settings) = tiny_audit
    state = out / "run" / "state.pt"
    mtime = state.stat().st_mtime_ns
    again = audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=out, progress=False)
    assert state.stat().st_mtime_ns == mtime
    assert again.run.trajectory == res.run.trajectory
    assert torch.equal(again.token_probs, res.token_probs)  # same token, same seeds, same images


def test_notebook_display_is_an_isolated_iframe(tiny_audit):
    html = tiny_audit[0]._repr_html_()
    assert html.startswith("<iframe srcdoc=") and EVIL not in html


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
    if path is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


def test_report_renders_in_headless_chromium(tiny_audit, tmp_path):
    """Issue 'Audit' acceptance 3: no console errors, plotly charts in the DOM, '<script>' shown as text."""
    page = tiny_audit[1] / "index.html"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    dom = proc.stdout
    assert dom.count('class="main-svg"') >= 2  # plotly drew the trajectory and factor charts
    for fig in ("fig-curves", "fig-factors"):
        start = dom.index(f'id="{fig}"')
        assert "plot-container" in dom[start : start + 400], fig
    assert '<span id="class-name">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in dom
    assert "<script>alert(1)</script>" not in dom
