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
from disco_inspect.testing import ColourScorer, TinyCNN

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
    from disco_inspect.testing import tiny_pipeline

    torch.manual_seed(0)
    clf = Classifier(
        TinyCNN(3), Preprocessing(input_size=(32, 32)), [EVIL, "cat", "dog"], source="tiny <b>model</b>"
    )
    pipe = tiny_pipeline(seed=0)
    out = tmp_path_factory.mktemp("report") / "audit"
    cfg = DiscoConfig(
        n_images=2,
        num_inference_steps=2,
        guidance_scale=2.0,
        max_iters=3,
        patience=3,
        accuracy_threshold=1.0,
        lr=0.05,
    )
    settings = AuditSettings(
        eval_seeds=4, intervention_seeds=4, attribution_images=2, min_effect=0.0, alpha=0.5
    )
    # module-scoped fixtures run before the autouse 1-thread fixture: pin the thread count here too, so the reuse
    # test compares images computed with the same floating-point order
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = audit(
            pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=out, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    return res, out, (pipe, clf, cfg, settings)


def test_report_files_follow_the_schema(tiny_audit):
    res, out, _ = tiny_audit
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    assert doc["audited"]["class_name"] == EVIL
    assert [f["concept"] for f in doc["factors"]["ranked"]] and {
        "effect",
        "ci_low",
        "ci_high",
        "q_value",
        "confirmed",
    } <= set(doc["factors"]["ranked"][0])
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
    assert not re.search(
        r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', page
    )  # offline: nothing fetched


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


def chromium_command(profile, url, *extra):
    """Headless Chromium that prints the page's DOM after its scripts ran (flags: no network, no sandbox as root)."""
    return [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        "--dump-dom",
        url,
    ]


def test_report_renders_in_headless_chromium(tiny_audit, tmp_path):
    """Issue 'Audit' acceptance 3: no console errors, plotly charts in the DOM, '<script>' shown as text."""
    page = tiny_audit[1] / "index.html"
    cmd = chromium_command(tmp_path / "profile", page.as_uri(), "--virtual-time-budget=10000")
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


def test_a_report_sharing_one_plotly_bundle_renders_offline_in_chromium(tiny_audit, tmp_path):
    """Issue 24 item 4: a page of a many-class folder loads plotly.js from the folder's one shared file (relative
    path, no network) and Chromium still draws its charts without console errors; the page itself is small."""
    from disco_inspect.report.html import write_report, write_shared_plotly

    bundle = write_shared_plotly(tmp_path / "out")
    page = write_report(tiny_audit[0], tmp_path / "out" / "model" / "0-circle", plotly=bundle)
    text = page.read_text()
    assert f'<script src="../../{bundle.name}"></script>' in text and "Plotly" not in text[:20000]
    assert len(text.encode()) < bundle.stat().st_size / 4
    cmd = chromium_command(tmp_path / "profile", page.as_uri(), "--virtual-time-budget=10000")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln] == []
    assert proc.stdout.count('class="main-svg"') >= 2


def test_plotly_is_packed_so_pages_and_the_shared_bundle_stay_small(tiny_audit, tmp_path):
    """Issue 24 item 4: plotly.js (4.8 MB) ships gzip-packed and is unpacked by the browser, so a self-contained
    report is under 2.5 MB (was 5.2 MB) and a 10-class folder's pages, figures and report.json with its one shared
    bundle stay within 10 MB; the packed code is plotly.js byte for byte."""
    import base64
    import gzip

    from plotly.offline import get_plotlyjs

    from disco_inspect.report.html import write_report, write_shared_plotly

    single = tiny_audit[1] / "index.html"
    assert single.stat().st_size < 2_500_000
    bundle = write_shared_plotly(tmp_path / "out")
    assert bundle.stat().st_size < 2_200_000
    packed = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', bundle.read_text()).group(1)
    assert gzip.decompress(base64.b64decode(packed)).decode() == get_plotlyjs()
    for i in range(10):
        write_report(tiny_audit[0], tmp_path / "out" / "model" / f"{i}-class", plotly=bundle)
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) < 10_000_000


def test_notebook_iframe_is_sandboxed(tiny_audit):
    html = tiny_audit[0]._repr_html_()
    assert re.match(r'<iframe srcdoc="[^"]*"[^>]*\ssandbox="allow-scripts"[^>]*>', html)


def test_reports_carry_no_absolute_local_paths(tiny_assets, tmp_path):
    """report.json, the HTML and the run's config.json name files relative to the report, never /home/..."""
    from disco_inspect import load_classifier, load_pipeline

    clf = load_classifier(tiny_assets / "clf.pt")
    pipe = load_pipeline(tiny_assets / "pipe")
    cfg = DiscoConfig(
        n_images=2,
        num_inference_steps=2,
        guidance_scale=2.0,
        max_iters=2,
        patience=3,
        accuracy_threshold=1.0,
        lr=0.05,
    )
    settings = AuditSettings(
        eval_seeds=4, intervention_seeds=4, attribution_images=0, min_effect=0.0, alpha=0.5
    )
    out = tmp_path / "shareable"
    audit(pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=out, progress=False)
    for name in ("report.json", "index.html", "run/config.json"):
        text = (out / name).read_text()
        for local in {str(tiny_assets), str(tmp_path), str(tiny_assets.resolve())}:
            assert local not in text, f"{name} holds the local path {local}"
    doc = json.loads((out / "report.json").read_text())
    assert doc["audited"]["classifier"]["source"] == "torchscript:clf.pt"
    assert doc["audited"]["pipeline"]["source"] == "pipe"


def test_math_like_labels_do_not_break_the_figures(tmp_path):
    """A class name such as 'a$^$b' is shown verbatim: matplotlib must not parse it as mathtext."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from disco_inspect.report.figures import factor_figure, trajectory_figure

    doc = {
        "audited": {"class_name": "a$^$b"},
        "trajectory": [{"step": 0, "target_prob_mean": 0.5, "accuracy": 0.5, "top5_accuracy": 1.0}],
        "factors": {
            "ranked": [
                {
                    "concept": "x$^$y",
                    "effect": 0.2,
                    "ci_low": 0.1,
                    "ci_high": 0.3,
                    "significant": True,
                    "confirmed": False,
                }
            ]
        },
    }
    for fig in (trajectory_figure(doc), factor_figure(doc)):
        fig.savefig(tmp_path / "f.png")  # raised ValueError (mathtext) before


def test_report_json_is_kept_when_validation_fails(tiny_audit, tmp_path, monkeypatch):
    from disco_inspect.report import html as report_html
    from disco_inspect.report import schema

    def broken(doc):
        raise DiscoInspectError("schema says no")

    monkeypatch.setattr(schema, "validate_report", broken)
    with pytest.raises(DiscoInspectError, match="schema says no"):
        report_html.write_report(tiny_audit[0], tmp_path / "out")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["audited"]["class_name"] == EVIL


def test_a_changed_model_file_is_not_reused(tiny_assets, tmp_path):
    """Run identity is the model's content, not its path: overwrite the file with other weights -> refused."""
    import shutil as _sh

    from disco_inspect import load_classifier, load_pipeline, train_token
    from disco_inspect.models.classifiers import save_torchscript_classifier

    model = tmp_path / "model.pt"
    _sh.copy(tiny_assets / "clf.pt", model)
    pipe = load_pipeline(tiny_assets / "pipe")
    cfg = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=2, lr=0.05)
    out = tmp_path / "run"
    train_token(pipe, load_classifier(model), "circle", config=cfg, out=out, progress=False)
    torch.manual_seed(123)
    other = load_classifier(model)
    save_torchscript_classifier(
        Classifier(TinyCNN(4), other.preprocessing, other.label_names).module,
        model,
        label_names=other.label_names,
        preprocessing=other.preprocessing,
    )
    with pytest.raises(DiscoInspectError, match="classifier"):
        train_token(pipe, load_classifier(model), "circle", config=cfg, out=out, progress=False)


def test_report_with_images_adds_the_edit_section(tmp_path, monkeypatch):
    """`report --images DIR`: the user's images are inverted and edited with the learned token; the report gains
    their rows and report.json their summary, and edits/ holds the edit page."""
    from disco_inspect.editor import EditSettings
    from disco_inspect.engine.run_folder import save_png
    from disco_inspect.testing import tiny_pipeline

    torch.manual_seed(0)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["bird", "cat", "dog"], source="tiny")
    pipe = tiny_pipeline(seed=0)
    imgs = tmp_path / "mine"
    for i in range(2):
        save_png(imgs / f"cat_{i}.png", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)))
    (imgs / "broken.png").write_text("not an image")
    import disco_inspect.editing.images as images_module

    reads = []
    real_load = images_module.load_images

    def counting_load(*a, **k):
        reads.append(a[0])
        return real_load(*a, **k)

    monkeypatch.setattr(images_module, "load_images", counting_load)
    cfg = DiscoConfig(
        n_images=2,
        num_inference_steps=2,
        guidance_scale=2.0,
        max_iters=2,
        patience=3,
        accuracy_threshold=1.0,
        lr=0.05,
    )
    settings = AuditSettings(
        eval_seeds=4, intervention_seeds=4, attribution_images=0, min_effect=0.0, alpha=0.5
    )
    out = tmp_path / "audit"
    res = audit(
        pipe,
        clf,
        "cat",
        scorer=ColourScorer(),
        config=cfg,
        settings=settings,
        out=out,
        progress=False,
        user_images=imgs,
        edit_settings=EditSettings(num_inference_steps=3, samples=2),
    )
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    assert doc["edits"]["href"] == "edits/index.html" and len(doc["edits"]["images"]) == 2
    assert doc["edits"]["images"][0]["edit_prompt"] == "a photo of a <S> cat"
    assert (out / "edits" / "edit.json").is_file() and (
        out / "edits" / "images" / "cat_0" / "edit.png"
    ).is_file()
    html = (out / "index.html").read_text()
    assert 'id="edits"' in html and html.count('alt="cat_0:') == 5  # source, reconstruction, edit, 2 samples
    assert res.edits["summary"]["n_images"] == 2
    # the images are evidence too, read once: too few to conclude, the unreadable one listed, the summary says so
    assert len(reads) == 1
    images = doc["evidence"]["images"]
    assert images["n_read"] == 2 and images["real_data"] is None
    assert images["cannot_conclude"].startswith("cannot conclude: 2 usable images")
    assert [u["file"].endswith("broken.png") for u in images["unreadable"]] == [True]
    assert "2 of your images, 1 unreadable" in doc["evidence"]["summary"]
    assert all(f["evidence"]["real_data"] is None for f in doc["factors"]["ranked"])


def test_report_with_enough_images_shows_the_evidence_side_by_side(tmp_path):
    """With 12 images the real data are judged: report.json has a slice per concept (valid schema), every factor a
    real_data line, and the page the evidence table and summary."""
    from disco_inspect.editor import EditSettings
    from disco_inspect.engine.run_folder import save_png
    from disco_inspect.testing import tiny_pipeline

    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["bird", "cat", "dog"], source="tiny")
    imgs = tmp_path / "mine"
    for i in range(12):
        save_png(imgs / f"cat_{i:02d}.png", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)))
    cfg = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=1, patience=3, lr=0.05)
    settings = AuditSettings(
        eval_seeds=4,
        intervention_seeds=4,
        attribution_images=0,
        min_effect=0.0,
        alpha=0.5,
        adaptive_scan="off",
    )
    out = tmp_path / "audit"
    res = audit(
        tiny_pipeline(seed=0),
        clf,
        "cat",
        scorer=ColourScorer(),
        config=cfg,
        settings=settings,
        out=out,
        progress=False,
        user_images=imgs,
        edit_settings=EditSettings(num_inference_steps=2, samples=1),
    )
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    real = doc["evidence"]["images"]["real_data"]
    assert real is not None and set(real["slices"]) == set(doc["audited"]["concepts"])
    assert all(f["evidence"]["real_data"]["unit"] == "your images" for f in doc["factors"]["ranked"])
    assert doc["evidence"]["summary"].startswith("4 generated seeds per concept; 12 of your images")
    html = (out / "index.html").read_text()
    assert 'id="evidence-summary"' in html and 'id="evidence"' in html
    assert res.evidence.n_read == 12 and "real_data" in res.timings
    # the counterfactual scan of the real images: a shortlist, edit-took rates, a third line, a grid per concept
    edits = doc["evidence"]["real_edits"]
    assert edits["n_images"] == 12 and 1 <= len(edits["concepts"]) <= settings.real_edit_concepts
    for c, e in edits["concepts"].items():
        line = next(f for f in doc["factors"]["ranked"] if f["concept"] == c)["evidence"]["real_edit"]
        assert line["took_rate"] == e["took_rate"] and line["n"] == 12
        assert line["also_moved"] == e["also_moved"] and set(e["also_moved"]) <= {"red", "green"} - {c}
        if e["also_moved"]:  # what else the edits moved is shown beside the effect
            assert f"the same edits also moved {', '.join(e['also_moved'])}" in html
    assert html.count("Your images edited:") == len(edits["concepts"]) and "real_edits" in res.timings
    assert "edits of 12 of your images toward" in doc["evidence"]["summary"]
    # every edit is cached per image beside the inversions (an interrupted run keeps them): the token edit and its
    # sample, and the concept edits (each concept's factor prompt, and at least one contrast)
    cached = list((out / "edits" / "cache").glob("edit-*.safetensors"))
    assert len(cached) >= 12 * (2 + len(edits["concepts"]) + 1)


def test_a_labelled_tree_gives_the_other_classes_as_evidence_and_bad_trees_fail_before_training(
    tmp_path, monkeypatch
):
    """`user_images` = DIR/<class>/...: the audited class's folder is the evidence, the other classes' images give
    the false-positive slice; a tree without the class, or with a folder that is no class, is refused first."""
    from disco_inspect.editor import EditSettings
    from disco_inspect.engine.run_folder import save_png
    from disco_inspect.testing import tiny_pipeline

    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["bird", "cat", "dog"], source="tiny")
    tree = tmp_path / "val"
    for label in ("cat", "dog"):
        for i in range(9):
            g = torch.Generator().manual_seed(hash(label) % 1000 + i)
            save_png(tree / label / f"{label}_{i}.png", torch.rand(3, 32, 32, generator=g))
    base = {"scorer": ColourScorer(), "progress": False}

    def boom(*a, **k):
        raise AssertionError("trained before checking the images")

    with monkeypatch.context() as m:
        m.setattr("disco_inspect.engine.optimize.train_token", boom)
        with pytest.raises(DiscoInspectError, match="none for the audited class 'bird'"):
            audit(tiny_pipeline(seed=0), clf, "bird", out=tmp_path / "a", user_images=tree, **base)
        (tree / "zebra").mkdir()
        save_png(tree / "zebra" / "z.png", torch.rand(3, 32, 32))
        with pytest.raises(DiscoInspectError, match="zebra.*not a class of the classifier"):
            audit(tiny_pipeline(seed=0), clf, "cat", out=tmp_path / "b", user_images=tree, **base)
    shutil.rmtree(tree / "zebra")
    cfg = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=2.0, max_iters=1, patience=3, lr=0.05)
    settings = AuditSettings(
        eval_seeds=4,
        intervention_seeds=4,
        attribution_images=0,
        min_effect=0.0,
        alpha=0.5,
        real_edit_images=0,
        adaptive_scan="off",
    )
    res = audit(
        tiny_pipeline(seed=0),
        clf,
        "cat",
        config=cfg,
        settings=settings,
        out=tmp_path / "c",
        user_images=tree,
        edit_settings=EditSettings(num_inference_steps=2, samples=1),
        **base,
    )
    doc = json.loads((tmp_path / "c" / "report.json").read_text())
    validate_report(doc)
    assert res.evidence.n_read == 9 and res.evidence.n_other == 9
    assert doc["evidence"]["images"]["other_classes"] is not None
    assert "9 images of other classes" in doc["evidence"]["summary"]
    assert all("other_classes" in f["evidence"] for f in doc["factors"]["ranked"])


def test_report_images_are_checked_before_training(tmp_path, monkeypatch):
    from disco_inspect.testing import tiny_pipeline

    def boom(*a, **k):
        raise AssertionError("trained before checking the images")

    monkeypatch.setattr("disco_inspect.engine.optimize.train_token", boom)
    clf = Classifier(TinyCNN(3), Preprocessing(input_size=(32, 32)), ["bird", "cat", "dog"], source="tiny")
    with pytest.raises(DiscoInspectError, match="nothing|empty|exist"):
        audit(
            tiny_pipeline(seed=0),
            clf,
            "cat",
            scorer=ColourScorer(),
            out=tmp_path / "a",
            progress=False,
            user_images=tmp_path / "missing",
        )


def _audit_against(tiny_audit, out, reference, **settings):
    """The tiny audit again, against ``reference`` and with confirmations that need the differential effect;
    returns the result and its validated report.json."""
    _, _, (pipe, clf, cfg, _) = tiny_audit
    base = {
        "eval_seeds": 4,
        "intervention_seeds": 4,
        "attribution_images": 0,
        "min_effect": 0.0,
        "alpha": 0.5,
    }
    settings = AuditSettings(**base, confirm_differential=True, **settings)
    res = audit(
        pipe,
        clf,
        0,
        scorer=ColourScorer(),
        config=cfg,
        settings=settings,
        reference=reference,
        out=out,
        progress=False,
    )
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    return res, doc


def test_log_odds_scan_against_a_reference_is_recorded_and_rendered(tiny_audit, tmp_path):
    """A log-odds scan whose confirmations require the differential effect: report.json says which scale and margin,
    every intervention carries its scale, the HTML speaks of log-odds, and against itself nothing is confirmed."""
    clf = tiny_audit[2][1]
    res, doc = _audit_against(tiny_audit, tmp_path, clf, scan_scale="logodds", confirm_min_logodds=0.0)
    assert (
        doc["factors"]["method"]["scan_scale"] == "logodds" and doc["factors"]["method"]["confirm_min"] == 0.0
    )
    assert all(f["intervention"]["scale"] == "logodds" for f in doc["factors"]["ranked"])
    assert "differential effect" in doc["factors"]["method"]["interventions"]
    assert not res.factors.reported  # the differential against itself is exactly 0
    assert "log-odds" in (tmp_path / "index.html").read_text()


def test_confirm_differential_needs_a_reference(tiny_audit):
    _, _, (pipe, clf, cfg, _) = tiny_audit
    with pytest.raises(DiscoInspectError, match="confirm_differential.*reference"):
        audit(
            pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=AuditSettings(confirm_differential=True)
        )


def test_scan_scale_is_chosen_by_the_regime_when_auto():
    from disco_inspect.auditor import scan_scale

    auto = AuditSettings(scan_scale="auto")
    assert scan_scale(auto, "saturated") == "logodds" and scan_scale(auto, "learning") == "p"
    assert scan_scale(AuditSettings(), "saturated") == "p"  # the default stays on probabilities
    assert scan_scale(AuditSettings(scan_scale="logodds"), "learning") == "logodds"
    with pytest.raises(DiscoInspectError, match="scan_scale.*'odds'"):
        AuditSettings(scan_scale="odds")
    with pytest.raises(DiscoInspectError, match="confirm_min_logodds"):
        AuditSettings(confirm_min_logodds=-1)


def test_several_references_are_recorded_and_validated(tiny_audit, tmp_path):
    clf = tiny_audit[2][1]

    class Tempered(torch.nn.Module):
        def __init__(self, t):
            super().__init__()
            self.t = t

        def forward(self, x):
            return clf(x).float() / self.t

    warm = Classifier(Tempered(2.0), Preprocessing(input_size=(32, 32)), clf.label_names, source="warm")
    _, doc = _audit_against(tiny_audit, tmp_path, [clf, warm])
    assert [m["source"] for m in doc["reference"]["models"]][1] == "warm"
    assert all(
        f["intervention"]["reference"]["between_models"]["n_models"] == 2 for f in doc["factors"]["ranked"]
    )
    assert "between models" in doc["factors"]["method"]["interventions"]
    assert "1 more" in (tmp_path / "index.html").read_text()


def test_saturated_regime_audits_with_its_own_intervention_seeds(tiny_audit, tmp_path):
    """A classifier that already recognises the class (p ~ 1) compresses every effect: with
    `saturated_intervention_seeds` the scan uses that many paired seeds in the saturated regime (and report.json lists
    them), while the learning regime keeps `intervention_seeds`."""
    from disco_inspect.auditor import intervention_seed_list

    _, _, (pipe, clf, cfg, _) = tiny_audit

    class Sure(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = clf.module

        def forward(self, x):
            return self.net(x) + torch.tensor([8.0, 0.0, 0.0])

    sure = Classifier(Sure(), Preprocessing(input_size=(32, 32)), clf.label_names, source="sure")
    settings = AuditSettings(
        eval_seeds=4,
        intervention_seeds=4,
        saturated_intervention_seeds=6,
        attribution_images=0,
        min_effect=0.0,
        alpha=0.5,
        null_control=False,
    )
    res = audit(
        pipe, sure, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=tmp_path, progress=False
    )
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    assert doc["token"]["regime"] == "saturated"
    assert doc["audited"]["seeds"]["intervention"] == [1000 + 10_000 + i for i in range(6)]
    assert all(f["intervention"]["n"] == 6 for f in doc["factors"]["ranked"])
    assert "on 6 paired seeds" in res.factors.method["interventions"]
    assert len(intervention_seed_list(settings, "learning")) == 4
    assert (
        len(intervention_seed_list(AuditSettings(intervention_seeds=5), "saturated")) == 5
    )  # default: the same
    with pytest.raises(DiscoInspectError, match="saturated_intervention_seeds"):
        AuditSettings(saturated_intervention_seeds=2)
