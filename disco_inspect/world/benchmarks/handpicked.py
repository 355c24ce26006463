"""Planted-bias benchmark: does the audit find the bias we planted, and nothing in a clean classifier?

For every shipped world classifier (:data:`disco_inspect.world.make.EXAMPLES`) the audit runs on the world
pipeline; a biased classifier passes when its planted ``factor=value`` is ranked first and confirmed by
intervention, the clean one when the audit reports no factor (no reliance confirmed by intervention; token-only
candidates are listed in each row but are not claims of reliance). These six hand-picked cases are examples; the measure of the audit is the randomised benchmark
(:mod:`disco_inspect.world.benchmarks.randomised`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import DiscoInspectError


def benchmark_cases(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The benchmark's cases: classifier file, bias spec (None = clean), audited class, expected concept."""
    from ..bias import BiasSpec
    from ..make import ASSETS, EXAMPLES

    chosen = list(names) if names else list(EXAMPLES)
    unknown = [n for n in chosen if n not in EXAMPLES]
    if unknown:
        raise DiscoInspectError(f"Unknown benchmark classifiers {unknown}; choose from {list(EXAMPLES)}.")
    cases = []
    for name in chosen:
        bias = EXAMPLES[name]
        spec = BiasSpec.parse(bias) if bias else None
        cases.append(
            {
                "name": name,
                "path": ASSETS / "classifiers" / name,
                "bias": bias,
                "class_name": spec.shape if spec else "circle",
                "expected": f"{spec.factor}={spec.value}" if spec else None,
                "kind": spec.factor if spec else "clean",
            }
        )
    return cases


def run_benchmark(
    pipe: Any = None,
    *,
    names: Sequence[str] | None = None,
    out: str | Path = "reports/world-benchmark",
    config_overrides: dict[str, Any] | None = None,
    settings: Any = None,
    progress: bool = True,
    echo: Any = print,
) -> list[dict[str, Any]]:
    """Audit each case and return one row per case with ``passed`` (also written to ``out/benchmark.json``)."""
    from ...auditor import audit
    from ...io import write_json
    from ...models.pipelines import load_pipeline
    from ...report.html import write_index
    from ..presets import world_config

    pipe = pipe if pipe is not None else load_pipeline("world")
    out = Path(out)
    rows, entries = [], []
    for case in benchmark_cases(names):
        t = time.perf_counter()
        stem = Path(case["name"]).stem
        res = audit(
            pipe,
            case["path"],
            case["class_name"],
            config=world_config(**(config_overrides or {})),
            settings=settings,
            out=out / stem,
            progress=progress,
        )
        ranked = res.factors.factors
        reported = res.factors.reported
        row: dict[str, Any] = {
            "classifier": stem,
            "kind": case["kind"],
            "bias": case["bias"],
            "class_name": case["class_name"],
            "expected": case["expected"],
            "top": reported[0].concept if reported else None,
            "n_reported": len(reported),
            "reported": [f.concept for f in reported],
            "regime": res.run.regime,
            "candidates": [f.concept for f in res.factors.candidates],
            "seconds": time.perf_counter() - t,
        }
        if case["expected"]:
            f = res.factors.get(case["expected"])
            row.update(
                rank=f.rank,
                effect=f.effect,
                q_value=f.q_value,
                confirmed=f.confirmed,
                nominated_by=f.nominated_by,
                intervention_effect=f.intervention.effect if f.intervention else None,
                passed=bool(f.rank == 1 and f.confirmed),
            )
        else:
            row.update(
                rank=None,
                effect=ranked[0].effect if ranked else None,
                q_value=min((f.q_value for f in ranked), default=None),
                confirmed=None,
                nominated_by=None,
                intervention_effect=None,
                passed=not reported,
            )
        rows.append(row)
        entries.append(
            {
                "class_name": f"{stem} ({case['class_name']})",
                "href": f"{stem}/index.html",
                "doc": res.to_dict(),
            }
        )
        echo(format_row(row))
    write_json(out / "benchmark.json", rows)
    write_index(entries, out, "disco-inspect planted-bias benchmark (bundled world)")
    return rows


HEADER = (
    f"{'classifier':<26} {'planted':<22} {'top factor':<22} {'rank':>4} {'shift':>6} {'q':>7} {'Δp int.':>7} "
    f"{'conf.':>5} {'found by':>8} {'pass':>5} {'sec':>5}"
)


def format_row(r: dict[str, Any]) -> str:
    """One table line of :func:`run_benchmark`'s output."""

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    return (
        f"{r['classifier']:<26} {r['expected'] or 'none (clean)':<22} {r['top'] or 'none':<22} {f(r['rank'], 'd'):>4} "
        f"{f(r['effect'], '.3f'):>6} {f(r['q_value'], '.4f'):>7} {f(r['intervention_effect'], '.3f'):>7} "
        f"{'-' if r['confirmed'] is None else ('yes' if r['confirmed'] else 'no'):>5} {r['nominated_by'] or '-':>8} "
        f"{'PASS' if r['passed'] else 'FAIL':>5} {r['seconds']:5.0f}"
    )
