"""Render an audit as one self-contained HTML file (plotly.js embedded, images inline; works offline).

Many reports in one output folder can share one plotly.js file instead (:func:`write_shared_plotly`; each page
loads it by a relative path, still offline): a 10-class folder then holds the 4.6 MB bundle once, not ten times.

All user-derived text goes through Jinja2's autoescaping; chart data is JSON with ``<``, ``>`` and ``&``
escaped as unicode escapes, so a class name like ``<script>`` is shown as text everywhere.
"""

from __future__ import annotations

import functools
import html
import json
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import missing_extra
from ..io import atomic_write_text, write_json
from .render import env as _env
from .render import image_uri  # noqa: F401 - re-exported (the report's public helper)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _safe_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(obj, allow_nan=False, default=float)
    for a, b in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(a, b)
    return text


def _clean(obj: Any) -> Any:
    """Replace NaN/inf floats by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def heat_overlay(image: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """Saliency [H, W] (normalised per image) over a dimmed grey copy of ``image`` [3, H, W]; 'inferno' colours."""
    try:
        from matplotlib import colormaps
    except ImportError as e:
        raise missing_extra("matplotlib") from e
    s = saliency.float()
    s = (s - s.min()) / (s.max() - s.min()).clamp(min=1e-12)
    heat = torch.from_numpy(colormaps["inferno"](s.numpy())[..., :3]).permute(2, 0, 1).float()
    grey = image.float().mean(0, keepdim=True).expand(3, -1, -1)
    return (0.35 * grey + 0.65 * heat).clamp(0, 1)


def _figures(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Plotly figure specs (data + layout) built from report.json alone."""
    figs = {
        "curves": _curves_figure(doc["trajectory"]),
        "factors": _factors_figure(doc["factors"]["ranked"][:12]),
        "concepts": _concepts_figure(
            doc.get("trajectory_concepts"), (doc["factors"].get("reported") or [])[:3]
        ),
    }
    return {name: fig for name, fig in figs.items() if fig is not None}


def _curves_figure(traj: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean target probability and top-1/top-5 accuracy per iteration (None without a trajectory)."""
    if not traj:
        return None
    steps = [r["step"] for r in traj]
    return {
        "data": [
            {
                "x": steps,
                "y": [r[k] for r in traj],
                "name": name,
                "mode": "lines+markers",
                "type": "scatter",
            }
            for k, name in (
                ("target_prob_mean", "mean target probability"),
                ("accuracy", "top-1 accuracy"),
                ("top5_accuracy", "top-5 accuracy"),
            )
        ],
        "layout": {
            "title": {"text": "Optimisation trajectory"},
            "xaxis": {"title": {"text": "iteration"}},
            "yaxis": {"title": {"text": "value"}, "range": [0, 1.05]},
            "height": 360,
            "margin": {"t": 40, "l": 50, "r": 10, "b": 40},
        },
    }


def _factors_figure(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Horizontal bars of the ranked factors' presence shifts with their intervals (None without factors)."""
    if not ranked:
        return None
    rev = list(reversed(ranked))
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [f["concept"] for f in rev],
                "x": [f["effect"] for f in rev],
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [f["ci_high"] - f["effect"] for f in rev],
                    "arrayminus": [f["effect"] - f["ci_low"] for f in rev],
                },
                "marker": {"color": ["#c0392b" if f["significant"] else "#95a5a6" for f in rev]},
                "name": "presence shift",
            }
        ],
        "layout": {
            "title": {"text": "Concept presence shift (token - baseline), 95% CI"},
            "xaxis": {"title": {"text": "shift"}},
            "height": 60 + 26 * len(rev),
            "margin": {"t": 40, "l": 180, "r": 10, "b": 40},
        },
    }


def _concepts_figure(tc: dict[str, Any] | None, top: list[str]) -> dict[str, Any] | None:
    """The top factors' presence and the target probability along the trajectory (None without either)."""
    if not (tc and top):
        return None
    return {
        "data": [
            {
                "x": tc["steps"],
                "y": tc["target_prob"],
                "name": "mean target probability",
                "type": "scatter",
                "mode": "lines",
                "line": {"dash": "dot", "color": "#333"},
            }
        ]
        + [
            {"x": tc["steps"], "y": tc[c], "name": c, "type": "scatter", "mode": "lines+markers"} for c in top
        ],
        "layout": {
            "title": {"text": "Top factors along the trajectory (step -1 = baseline)"},
            "xaxis": {"title": {"text": "iteration"}},
            "yaxis": {"range": [0, 1.05]},
            "height": 340,
            "margin": {"t": 40, "l": 50, "r": 10, "b": 40},
        },
    }


def _strips(result: Any) -> list[dict[str, Any]]:
    """Per seed: images at the baseline and at up to 8 evenly spaced recorded iterations."""
    from ..engine.run_folder import load_pngs

    run = result.run
    if run.run_dir is None or not run.trajectory:
        return []
    first = run.config.seeds()
    # with a seed pool only some iterations reuse the baseline's seeds; strips show those
    steps = [r["step"] for r in run.trajectory if [it["seed"] for it in r["items"]] == first]
    pick = sorted({steps[round(i * (len(steps) - 1) / 7)] for i in range(8)}) if len(steps) > 8 else steps
    n = min(result.settings.strip_seeds, run.config.n_images)
    rows = []
    cols = [("baseline", "baseline")] + [(s, f"it {s}") for s in pick]
    loaded = {s: load_pngs(run.image_paths(s)) for s, _ in cols}
    probs = {"baseline": [r["target_prob"] for r in run.baseline.get("items", [])]}
    for r in run.trajectory:
        probs[r["step"]] = [it["target_prob"] for it in r["items"]]
    for j in range(n):
        cells = []
        for s, label in cols:
            imgs = loaded.get(s)
            if imgs is None:
                continue
            p = probs.get(s, [])
            cells.append({"uri": image_uri(imgs[j]), "label": label, "p": p[j] if j < len(p) else None})
        rows.append({"seed": first[j], "prompt": run.config.prompts(run.class_name)[j], "cells": cells})
    return rows


def _attribution_rows(result: Any) -> list[dict[str, Any]]:
    """Per attributed image: the image, its object mask and one saliency overlay per attribution method."""
    att, imgs = result.attribution, result.images
    if not att:
        return []
    methods = list(att["methods"])
    rows = []
    for side in ("baseline", "token"):
        for j in range(att["n_images"]):
            base = imgs[side][j]
            cells = [
                {"label": "image", "uri": image_uri(base)},
                {"label": "object mask", "uri": image_uri(base * (0.25 + 0.75 * imgs[f"{side}_masks"][j]))},
            ]
            for m in methods:
                share = att["methods"][m][side]["per_image"][j]
                cells.append(
                    {
                        "label": f"{m} ({share:.0%} outside)",
                        "uri": image_uri(heat_overlay(base, imgs[f"attr_{side}_{m}"][j])),
                    }
                )
            rows.append({"side": side, "cells": cells})
    return rows


#: How the page unpacks plotly.js: gzip in base64, inflated by the browser's DecompressionStream (Chromium 80+,
#: Firefox 113+, Safari 16.4+), then run as a script; ``window.plotlyReady`` resolves once ``Plotly`` exists.
_UNPACK = """window.plotlyReady = (function () {{
  if (typeof DecompressionStream === "undefined") {{
    return Promise.reject(new Error("this browser cannot unpack the charts (DecompressionStream)"));
  }}
  var b = atob("{data}"), u = new Uint8Array(b.length);
  for (var i = 0; i < b.length; i++) {{ u[i] = b.charCodeAt(i); }}
  var text = new Blob([u]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(text).text().then(function (code) {{
    var el = document.createElement("script");
    el.textContent = code;
    document.head.appendChild(el);
    return window.Plotly;
  }});
}})();
"""


@functools.cache
def _plotly_js() -> str:
    """plotly.js packed for the page (gzip + base64, unpacked in the browser: 1.9 MB instead of 4.8 MB; the report
    still works offline)."""
    import base64
    import gzip

    try:
        from plotly.offline import get_plotlyjs, get_plotlyjs_version
    except ImportError as e:
        raise missing_extra("plotly") from e
    data = base64.b64encode(gzip.compress(get_plotlyjs().encode(), compresslevel=9, mtime=0)).decode()
    head = f"/* plotly.js {get_plotlyjs_version()} (MIT licence, Plotly, Inc.), gzip-packed */\n"
    return head + _UNPACK.format(data=data)


def write_shared_plotly(folder: str | Path) -> Path:
    """Write the packed plotly.js once into ``folder`` (``plotly-<version>.min.js``, atomically; kept if already
    there) for the reports below it to share (``write_report(..., plotly=path)``); returns its path."""
    from importlib.metadata import version

    text = _plotly_js()
    path = Path(folder) / f"plotly-{version('plotly')}.min.js"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return path


def _plotly_tag(plotly: str | Path | None, page_dir: Path | None) -> dict[str, str | None]:
    """The template's plotly: the bundle inline (``plotly`` None), or a ``src`` relative to the page's folder."""
    import os

    if plotly is None or page_dir is None:
        return {"plotly_js": _plotly_js(), "plotly_src": None}
    rel = os.path.relpath(Path(plotly).resolve(), Path(page_dir).resolve())
    return {"plotly_js": None, "plotly_src": Path(rel).as_posix()}


def _edit_rows(result: Any) -> list[dict[str, Any]]:
    """Rows of the user's edited images (source | reconstruction | edit | samples) if the audit made them."""
    edits = getattr(result, "edits", None) or {}
    if not edits:
        return []
    from .edit_page import edit_rows

    return edit_rows(edits, edits.get("tensors") or {})


def _real_edit_grids(result: Any, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per shortlisted concept of the real-image counterfactual scan (reported factors first): its prompts, numbers
    and example rows source | edit toward the concept | edit toward the first contrast, with p(target)."""
    scan = getattr(result, "real_edits", None)
    if scan is None:
        return []
    reported = doc["factors"].get("reported", [])
    order = sorted(
        scan.concepts, key=lambda c: (c not in reported, reported.index(c) if c in reported else 0)
    )
    grids = []
    for c in order:
        ex, e = scan.examples.get(c), scan.concepts[c]
        if not ex:
            continue
        rows = [
            {
                "source": image_uri(ex["source"][i]),
                "factor": image_uri(ex["factor"][i]),
                "contrast": image_uri(ex["contrast"][i]),
                "p_factor": ex["p_factor"][i],
                "p_contrast": ex["p_contrast"][i],
            }
            for i in range(len(ex["source"]))
        ]
        grids.append({"concept": c, "edited": e.to_dict(), "rows": rows})
    return grids


def render_report(
    result: Any,
    *,
    inline: bool = False,
    doc: dict[str, Any] | None = None,
    plotly: str | Path | None = None,
    page_dir: str | Path | None = None,
) -> str:
    """The report's HTML; ``inline=True`` wraps it in an ``<iframe srcdoc>`` for notebooks. With ``plotly`` (a shared
    bundle, :func:`write_shared_plotly`) the page written into ``page_dir`` loads it by a relative path."""
    doc = _clean(doc or result.to_dict())
    figs = {
        k: {"data": _safe_json(v["data"]), "layout": _safe_json(v["layout"])}
        for k, v in _figures(doc).items()
    }
    n_grid = min(8, len(result.eval_seeds))
    grid = [
        {
            "seed": result.eval_seeds[j],
            "baseline": image_uri(result.images["baseline"][j]),
            "token": image_uri(result.images["token"][j]),
            "p_baseline": float(result.baseline_probs[j]),
            "p_token": float(result.token_probs[j]),
        }
        for j in range(n_grid)
    ]
    interventions = []
    for f in doc["factors"]["ranked"]:
        key = f"intervention_{f['concept']}"
        if (
            f["intervention"] is None or f"{key}_factor" not in result.images
        ):  # examples kept for the top factors
            continue
        interventions.append(
            {
                "factor": f,
                "with": [image_uri(x) for x in result.images.get(f"{key}_factor", [])],
                "without": [image_uri(x) for x in result.images.get(f"{key}_contrast", [])],
            }
        )
    page = (
        _env()
        .get_template("report.html.j2")
        .render(
            doc=doc,
            figs=figs,
            **_plotly_tag(None if inline else plotly, Path(page_dir) if page_dir is not None else None),
            strips=_strips(result),
            grid=grid,
            interventions=interventions,
            attribution_rows=_attribution_rows(result),
            config_json=json.dumps(doc["audited"]["config"], indent=1),
            edit_rows=_edit_rows(result),
            real_edit_grids=_real_edit_grids(result, doc),
            top=[f for f in doc["factors"]["ranked"] if f["concept"] in doc["factors"].get("reported", [])][
                :3
            ],
            candidates=[
                f for f in doc["factors"]["ranked"] if f["concept"] in doc["factors"].get("candidates", [])
            ][:3],
        )
    )
    if not inline:
        return page
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:1100px;border:1px solid #ddd" '
        'sandbox="allow-scripts" title="disco-inspect report"></iframe>'
    )


def write_report_json(result: Any, out: str | Path) -> dict[str, Any]:
    """Write ``report.json`` (atomically) into ``out``; returns the document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = _clean(result.to_dict())
    write_json(out / "report.json", doc)
    return doc


def write_report(result: Any, out: str | Path, plotly: str | Path | None = None) -> Path:
    """Write ``report.json``, then validate it, then static figures and ``index.html`` into ``out``.

    ``report.json`` is written before validation, so a schema failure loses no result (the error names the
    field). ``plotly``: a shared plotly.js (:func:`write_shared_plotly`) the page loads by a relative path instead of
    embedding it. Returns the path of index.html.
    """
    from . import schema
    from .figures import save_figures

    out = Path(out)
    doc = write_report_json(result, out)
    schema.validate_report(doc)
    save_figures(result, doc, out / "figures")
    page = render_report(result, doc=doc, plotly=plotly, page_dir=out)
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def write_index(entries: list[dict[str, Any]], out: str | Path, title: str) -> Path:
    """An index page over several audits: one sortable row per (model, class) with its top factors.

    ``entries``: dicts with ``class_name``, ``href`` and ``doc`` (the class's report.json, or ``None`` for a task
    that failed), and optionally ``model``, ``status`` (``done``/``failed``), ``error`` and ``seconds``. Clicking a
    column heading sorts by it (a few lines of inline script; the page stays one self-contained file).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in entries:
        doc = e.get("doc")
        row: dict[str, Any] = {
            "model": e.get("model"),
            "class_name": e["class_name"],
            "href": e["href"],
            "status": e.get("status", "done" if doc else "failed"),
            "error": e.get("error"),
            "seconds": e.get("seconds"),
        }
        if doc:
            ranked = doc["factors"]["ranked"]
            reported = doc["factors"].get("reported", [])
            sig = [f for f in ranked if f["concept"] in reported]
            confirmed = [f for f in ranked if f["confirmed"]]
            row.update(
                top=sig[0] if sig else None,
                top_confirmed=[f["concept"] for f in confirmed[:3]],
                n_significant=len(sig),
                n_confirmed=len(confirmed),
                shift=doc["evaluation"]["target_prob_shift"],
            )
        rows.append(row)
    show_model = len({r["model"] for r in rows}) > 1
    page = _env().get_template("index.html.j2").render(rows=rows, title=title, show_model=show_model)
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
