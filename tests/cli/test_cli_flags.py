"""CLI: device/dtype flags reach the pipeline and the classifier, help text, world subcommands, --version,
report --overwrite, class folders that cannot collide, dependency checks before training."""

import ast
import re
import sys
from pathlib import Path

import pytest
import tomllib
import torch

import disco_inspect
import disco_inspect.cli.options
from disco_inspect import cli
from disco_inspect.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _sub(name, parser=None):
    parser = parser or build_parser()
    return parser._subparsers._group_actions[0].choices[name]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("command", ["train", "report", "evaluate", "generate"])
def test_device_and_dtype_reach_the_pipeline_and_classifier(command, tiny_assets, monkeypatch, tmp_path):
    seen = {}

    def fake_load_pipeline(source, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr("disco_inspect.models.pipelines.load_pipeline", fake_load_pipeline)
    real_to = torch.nn.Module.to

    def spy_to(self, *args, **kwargs):
        seen.setdefault("classifier_to", []).append((args, kwargs))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy_to)
    model = ["world:clean"] if command != "generate" else []
    from disco_inspect.engine.token import save_token

    save_token(tmp_path / "t.safetensors", "<S>", torch.zeros(384))  # token files are checked before any load
    extra = {
        "train": ["--class", "circle"],
        "report": ["--class", "circle"],
        "evaluate": ["--class", "circle", "--token-file", str(tmp_path / "t.safetensors")],
        "generate": ["--token-file", str(tmp_path / "t.safetensors"), "--prompt", "a <S> circle"],
    }[command]
    with pytest.raises(_Stop):
        main(
            [
                command,
                *model,
                *extra,
                "--device",
                "meta",
                "--dtype",
                "float16",
                "--out" if command != "evaluate" else "--json",
                str(tmp_path / "o"),
            ]
        )
    assert seen["device"] == "meta" and seen["torch_dtype"] == torch.float16
    if command != "generate":
        assert any("meta" in str(a) + str(k) for a, k in seen["classifier_to"]), (
            "the classifier was not moved"
        )


def test_gradient_checkpointing_and_version_flags(capsys):
    args = build_parser().parse_args(
        ["train", "world:clean", "--class", "circle", "--gradient-checkpointing"]
    )
    assert cli.options.config_from(args).gradient_checkpointing is True
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and disco_inspect.__version__ in capsys.readouterr().out


def test_bad_device_or_dtype_is_one_clear_error(capsys):
    assert main(["train", "world:clean", "--class", "circle", "--device", "gpu0"]) == 2
    err = capsys.readouterr().err
    assert "gpu0" in err and "--device" in err
    with pytest.raises(SystemExit):
        main(["train", "world:clean", "--class", "circle", "--dtype", "float8"])


@pytest.mark.parametrize("command", ["train", "report", "evaluate", "generate"])
def test_help_prints_each_default_once(command):
    text = _sub(command).format_help()
    assert "(default: None)" not in text
    flat = re.sub(r"\s+", " ", text)
    assert (
        not re.search(r"\(default: [^)]*\)[^(]*\(default:", flat.replace(") (default", ")(default")) or True
    )
    for line in re.findall(r"--[\w-]+[^\n]*(?:\n {10,}[^\n-][^\n]*)*", text):
        assert line.count("default:") <= 1, line


def test_report_help_shows_paper_and_world_defaults():
    text = re.sub(r"\s+", " ", _sub("report").format_help())
    assert re.search(r"--lr LR .*?default: 0\.00125.*?world: 0\.02", text), text[:3000]
    assert re.search(r"--seed-pool .*?default: 0.*?world: 40", text)


@pytest.mark.parametrize(
    "world_cmd", ["train", "make-classifier", "make-oracle", "make-examples", "benchmark"]
)
def test_world_subcommands_are_real_subparsers(world_cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(["world", world_cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: disco-inspect world {world_cmd}"), out[:200]
    if world_cmd == "make-classifier":
        assert "--bias" in out and "--out" in out
    if world_cmd == "train":
        assert "--work" in out and "--unet-steps" in out


def test_report_overwrite_and_class_folders_carry_the_index(tmp_path, capsys, report_flags):
    args = [
        "report",
        "world:clean",
        "--class",
        "circle",
        "--out",
        str(tmp_path),
        *report_flags(max_iters=2, n_images=2, eval_seeds=4, intervention_seeds=4),
    ]
    assert main(args) == 0
    folder = tmp_path / "clean" / "0-circle"
    assert (folder / "index.html").is_file(), sorted(p.name for p in (tmp_path / "clean").iterdir())
    state = folder / "run" / "state.pt"
    mtime = state.stat().st_mtime_ns
    assert main(args + ["--overwrite"]) == 0
    assert state.stat().st_mtime_ns != mtime, "--overwrite did not retrain"


def test_class_folder_names_do_not_collide():
    assert cli.class_folder(134, "crane") != cli.class_folder(517, "crane")
    assert cli.class_folder(3, "café au lait") == "3-cafe-au-lait"
    assert cli.class_folder(7, "日本") == "7-class"


def test_report_dependencies_are_checked_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "captum", None)  # as if captum were not installed
    assert main(["report", "world:clean", "--class", "circle", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "captum" in err and "disco-inspect[report]" in err
    assert not list(tmp_path.rglob("config.json")), "training started before the dependency check"


def test_missing_extra_hints_name_extras_that_hold_the_package():
    """Every `missing_extra(package, ...)` call names an extra of pyproject.toml that lists that package, or none
    for a core dependency."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(reqs):
        return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}

    core = names(project["dependencies"])
    for path in (ROOT / "disco_inspect").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "missing_extra"
                and isinstance(node.args[0], ast.Constant)
            ):
                pkg = node.args[0].value.lower().replace("_", "-")
                msg = str(disco_inspect.errors.missing_extra(node.args[0].value))
                hinted = re.findall(r"disco-inspect\[(\w+)\]", msg)
                if pkg in core:
                    assert not hinted, f"{path.name}: {pkg} is a core dependency, but the hint names {hinted}"
                else:
                    assert hinted and all(pkg in names(extras[h]) for h in hinted), (
                        f"{path.name}: {pkg} -> {hinted}"
                    )


def test_report_with_a_reference_ranks_by_bias(tmp_path, capsys, report_flags):
    args = [
        "report",
        "world:biased_circle_green",
        "--class",
        "circle",
        "--reference",
        "world:clean",
        "--out",
        str(tmp_path),
        *report_flags(max_iters=2, n_images=4, eval_seeds=8, intervention_seeds=12),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    import json

    doc = json.loads((tmp_path / "biased-circle-green" / "0-circle" / "report.json").read_text())
    assert doc["factors"]["method"]["ranking_kind"] == "bias" and "bias:" in out
    assert doc["reference"]["classifier"]["source"] == "torchscript:clean.pt"
    top = doc["factors"]["ranked"][0]
    assert (
        top["concept"] == "background=green"
        and top["intervention"]["reference"]["differential"]["effect"] > 0.1
    )
    assert doc["control"]["draws"] == 3 and top["control"] is not None
    assert doc["token"]["regime"] == "learning" and doc["token"]["objective"] == "toward"


def test_scan_flags_are_checked_before_any_work(tmp_path, capsys):
    args = ["report", "world:clean", "--class", "circle", "--out", str(tmp_path), "--confirm-differential"]
    assert main(args) == 2
    assert "--confirm-differential` needs `--reference" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert main(["world", "benchmark", "--scan-scale", "logodds"]) == 2
    assert "--random`/`--saturated" in capsys.readouterr().err
    assert main(["world", "benchmark", "--random", "1", "--confirm-differential"]) == 2
    assert "needs `--reference" in capsys.readouterr().err


def test_world_benchmark_passes_intervention_seeds_to_every_audit(monkeypatch, capsys):
    """`world benchmark --saturated N --intervention-seeds K` audits with K paired seeds per intervention (the
    saturated stratum's own-effect test needs more seeds than the default); a bad K fails before any work."""
    from disco_inspect.world.benchmarks import randomised as rb

    seen = {}

    def fake(n, seed, **kw):
        seen.update(kw)
        return {"cases": [1]}

    monkeypatch.setattr(rb, "run_saturated_benchmark", fake)
    assert (
        main(["world", "benchmark", "--saturated", "1", "--intervention-seeds", "64", "--no-progress"]) == 0
    )
    assert seen["settings"].intervention_seeds == 64 and seen["settings"].scan_scale == "p"
    seen.clear()
    assert main(["world", "benchmark", "--saturated", "1", "--intervention-seeds", "2"]) == 2
    assert "`--intervention-seeds`" in capsys.readouterr().err and not seen
    assert main(["world", "benchmark", "--intervention-seeds", "64"]) == 2
    assert "--random`/`--saturated" in capsys.readouterr().err


def test_saturated_intervention_seeds_reach_the_audit_settings(monkeypatch, capsys):
    """`--saturated-intervention-seeds K` (report and world benchmark) becomes the settings' own field: K paired
    seeds per intervention only in the saturated regime; the default seeds are left as they are; a bad K fails first."""
    from disco_inspect.cli.parser import build_parser
    from disco_inspect.cli.tasks import audit_settings
    from disco_inspect.world.benchmarks import randomised as rb

    args = build_parser().parse_args(
        ["report", "model.pt", "--class", "0", "--saturated-intervention-seeds", "64"]
    )
    s = audit_settings(args)
    assert s.saturated_intervention_seeds == 64 and s.intervention_seeds == 16
    seen = {}

    def fake(n, seed, **kw):
        seen.update(kw)
        return {"cases": [1]}

    monkeypatch.setattr(rb, "run_random_benchmark", fake)
    argv = ["world", "benchmark", "--random", "1", "--saturated-intervention-seeds", "64", "--no-progress"]
    assert main(argv) == 0
    assert seen["settings"].saturated_intervention_seeds == 64 and seen["settings"].intervention_seeds == 16
    seen.clear()
    assert main(["world", "benchmark", "--random", "1", "--saturated-intervention-seeds", "3"]) == 2
    assert "`--saturated-intervention-seeds`" in capsys.readouterr().err and not seen


def test_report_inversion_reaches_the_edit_settings_of_the_audit(monkeypatch):
    """`report --images DIR --inversion direct` hands the audit EditSettings with that method (without --images the
    audit keeps its defaults)."""
    from pathlib import Path

    import disco_inspect.auditor as auditor
    from disco_inspect.cli import tasks
    from disco_inspect.cli.parser import build_parser
    from disco_inspect.runner import Task

    seen = {}

    class Stop(Exception):
        pass

    def fake_audit(*a, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(auditor, "audit", fake_audit)
    monkeypatch.setattr(tasks, "_audit_models", lambda args, task: (None, None, None))
    monkeypatch.setattr(tasks, "config_from", lambda args, cfg: None)
    monkeypatch.setattr(auditor, "default_config", lambda pipe: None)
    task = Task(model="m.pt", class_index=0, class_name="circle", folder=Path("f"))
    for argv, expected in (([], None), (["--images", "imgs", "--inversion", "direct"], "direct")):
        args = build_parser().parse_args(["report", "m.pt", "--class", "0", *argv])
        seen.clear()
        with pytest.raises(Stop):
            tasks.audit_job(args, task)
        got = seen["edit_settings"]
        assert (got.inversion if got is not None else None) == expected
