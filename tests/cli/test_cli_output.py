"""Issue 21, items 8-10: what the CLI prints -- logging flags anywhere, short argparse errors, quiet loads, progress
bars (and ``--no-progress``), help that shows every default and the real folder names."""

from __future__ import annotations

import logging

import pytest
import torch

from disco_inspect.cli import build_parser, main
from disco_inspect.engine.token import save_token


def subparsers(parser):
    """``(name, parser)`` of every subcommand, nested ones (``world train``) included."""
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
                found += [(f"{name} {n}", s) for n, s in subparsers(sub)]
    return found


# -- item 9: -v/--quiet after the subcommand; argparse errors are short; loads are quiet --------------------------


@pytest.mark.parametrize("flags", [["-v"], ["--verbose"], ["-q"], ["--quiet"]])
def test_logging_flags_work_after_the_subcommand(flags):
    parser = build_parser()
    before = parser.parse_args([*flags, "report", "world:clean", "--class", "circle"])
    after = parser.parse_args(["report", "world:clean", "--class", "circle", *flags])
    world = parser.parse_args(["world", "train", *flags])
    assert vars(before) == vars(after)
    assert (after.verbose, after.quiet) == (flags[0] in ("-v", "--verbose"), flags[0] in ("-q", "--quiet"))
    assert (world.verbose, world.quiet) == (after.verbose, after.quiet)
    default = parser.parse_args(["report", "world:clean", "--class", "circle"])
    assert (default.verbose, default.quiet) == (False, False)


def test_quiet_and_verbose_set_the_log_level(monkeypatch):
    levels = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: levels.append(kw["level"]))
    monkeypatch.setattr("disco_inspect.cli.audit_commands.cmd_report", lambda args: 0)
    for flag, level in (("-q", logging.WARNING), ("-v", logging.DEBUG), (None, logging.INFO)):
        assert main(["report", "world:clean", "--class", "circle", *([flag] if flag else [])]) == 0
        assert levels[-1] == level


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "world:clean", "--class", "circle", "--bogus"],
        ["report", "world:clean", "--eval-seeds", "many"],
        ["world", "make-classifier"],
        ["nonsense"],
    ],
)
def test_an_argparse_error_is_the_usage_line_and_the_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("usage: disco-inspect") and lines[1].startswith("disco-inspect")
    assert "error:" in lines[1] and "-h" in lines[1]


def test_loading_a_classifier_logs_at_debug_only(caplog):
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.world.make import resolve_model

    with caplog.at_level(logging.INFO, logger="disco_inspect"):
        load_classifier(resolve_model("world:clean"))
    assert not [r for r in caplog.records if "Loaded classifier" in r.getMessage()]


def test_installing_a_token_prints_no_mean_resizing_advice(tiny_pipe, capfd):
    from disco_inspect.engine.token import put_token

    logging.Logger.warning_once.cache_clear()  # transformers says it once per process: not only if first
    records = []
    seen = logging.Handler()
    seen.emit = records.append  # what transformers' logger lets through, whatever its own handlers do
    logging.getLogger("transformers").addHandler(seen)
    capfd.readouterr()
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[-1]
    try:
        put_token(tiny_pipe, "<issue21-token>", torch.randn(width))
    finally:
        logging.getLogger("transformers").removeHandler(seen)
    captured = capfd.readouterr()
    assert "mean_resizing" not in captured.err + captured.out
    assert not [r for r in records if "mean_resizing" in r.getMessage()]


# -- item 10: progress bars on generate, evaluate's generation and FID; none with --no-progress -------------------


@pytest.fixture
def tiny_token(tiny_assets, tmp_path_factory):
    """A token file of the tiny pipeline's width."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_assets / "pipe")
    width = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
    return save_token(tmp_path_factory.mktemp("tok") / "tok.safetensors", "<S>", torch.randn(width))


@pytest.mark.parametrize("quiet", [False, True])
def test_generate_shows_progress_unless_no_progress(tiny_assets, tiny_token, tmp_path, capfd, quiet):
    argv = ["generate", "--token-file", tiny_token, "--prompt", "a <S> triangle", "--seeds", "0-1"]
    argv += ["--steps", "2", "--out", tmp_path / "g", "--pipeline", tiny_assets / "pipe", "--threads", "1"]
    assert main([str(a) for a in argv] + (["--no-progress"] if quiet else [])) == 0
    err = capfd.readouterr().err
    assert ("generate:" in err) is not quiet, err


@pytest.mark.parametrize("quiet", [False, True])
def test_evaluate_and_fid_show_progress_unless_no_progress(tiny_assets, tiny_token, tmp_path, capfd, quiet):
    from disco_inspect.engine.run_folder import save_png

    for i in range(4):
        save_png(tmp_path / "real" / "triangle" / f"{i}.png", torch.rand(3, 32, 32))
    argv = ["evaluate", tiny_assets / "clf.pt", "--class", "triangle", "--token-file", tiny_token]
    argv += ["--eval-seeds", "3", "--steps", "2", "--pipeline", tiny_assets / "pipe", "--threads", "1"]
    argv += ["--fid-real", tmp_path / "real"]
    assert main([str(a) for a in argv] + (["--no-progress"] if quiet else [])) == 0
    err = capfd.readouterr().err
    for bar in ("evaluate triangle: baseline", "evaluate triangle: token", "FID triangle"):
        assert (bar in err) is not quiet, err


# -- item 8: help shows every default (0 too) and the real folder names; one meaning per flag ----------------------


def _help(name):
    return dict(subparsers(build_parser()))[name].format_help()


def test_help_shows_defaults_of_zero():
    assert "draws the cases (default: 0)" in " ".join(_help("world benchmark").split())
    assert "training seed (default: 0)" in " ".join(_help("world make-classifier").split())


@pytest.mark.parametrize("command", ["train", "report", "evaluate"])
def test_help_names_the_real_class_folders(command):
    text = " ".join(_help(command).split())
    assert "<index>-<class>" in text and "0-circle" in text, text
    assert "runs/<class>" not in text and "<model>/<class>" not in text


@pytest.mark.parametrize(
    "command", ["world make-classifier", "world make-oracle", "world make-examples", "world benchmark"]
)
def test_classifier_training_steps_are_train_steps_not_steps(command):
    flags = {f for a in dict(subparsers(build_parser()))[command]._actions for f in a.option_strings}
    assert "--train-steps" in flags and "--steps" not in flags


def test_every_steps_flag_means_denoising_steps():
    for name, sub in subparsers(build_parser()):
        for action in sub._actions:
            if "--steps" in action.option_strings:
                assert "denoising" in action.help, (name, action.help)


def test_seed_flags_follow_one_scheme():
    """`--seed S` is one integer, `--seeds` a list (generate only), every count of seeds is `--<stage>-seeds N`
    (help: "number of ..." or "... seeds ..."), and `--seed-pool` the pool; one name per meaning across commands."""
    seen = {}
    for name, sub in subparsers(build_parser()):
        for action in sub._actions:
            for flag in (f for f in action.option_strings if "seed" in f):
                seen.setdefault(flag, set()).add(name)
                if flag == "--seeds":
                    assert name == "generate", name
                else:
                    assert flag in ("--seed", "--seed-pool") or flag.endswith("-seeds"), (name, flag)
                    assert action.type is int, (name, flag)
    assert "--n-seeds" not in seen, seen[
        "--n-seeds"
    ]  # evaluate's count of paired seeds is --eval-seeds, as report's
    assert {"evaluate", "report"} <= seen["--eval-seeds"]


def test_generate_dtype_help_says_no_classifier_is_involved():
    text = " ".join(_help("generate").split())
    assert "no classifier" in text
    assert "classifier keeps its own dtype" in " ".join(_help("report").split())


# -- item 9: report's flags in groups -------------------------------------------------------------------------------


def test_report_flags_are_grouped():
    report = dict(subparsers(build_parser()))["report"]
    where = {
        flag: group.title
        for group in report._action_groups
        for a in group._group_actions
        for f in [a.dest]
        for flag in a.option_strings or [f]
    }
    titles = {t.split(" ")[0] for t in where.values()}
    assert {"audit", "analysis", "optimisation", "output", "device"} <= titles, titles
    plain = sorted(f for f, t in where.items() if t in ("options", "positional arguments"))
    assert plain == ["--help", "--quiet", "--verbose", "-h", "-q", "-v"], plain
    assert where["--images"].startswith("audit") and where["model"].startswith("audit")
    assert where["--out"].startswith("output") and where["--device"].startswith("device")
    assert where["--eval-seeds"].startswith("analysis") and where["--lr"].startswith("optimisation")


# -- the CLI reference (docs/cli.md) names every flag of every subcommand ---------------------------------------------


def test_the_cli_reference_mentions_every_option_of_every_subcommand():
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    missing = sorted(
        {
            f"{name}: {flag}"
            for name, sub in [("disco-inspect", build_parser()), *subparsers(build_parser())]
            for action in sub._actions
            for flag in action.option_strings
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
        }
    )
    assert not missing, "\n".join(missing)


# -- item 8: world benchmark and world make-classifier take --device ------------------------------------------------


def test_world_benchmark_runs_the_audits_on_device(monkeypatch, tmp_path):
    seen = {}

    def fake_load(source, **kw):
        seen["load"] = (source, kw.get("device"))
        return "PIPE"

    def fake_run(**kw):
        seen["pipe"] = kw.get("pipe")
        return []

    monkeypatch.setattr("disco_inspect.models.pipelines.load_pipeline", fake_load)
    monkeypatch.setattr("disco_inspect.world.benchmarks.handpicked.run_benchmark", fake_run)
    main(["world", "benchmark", "--device", "cpu", "--out", str(tmp_path), "--no-progress"])
    assert seen == {"load": ("world", "cpu"), "pipe": "PIPE"}
    assert main(["world", "benchmark", "--device", "nonsense", "--out", str(tmp_path)]) == 2


def test_world_make_classifier_trains_on_device(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_train(bias, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("disco_inspect.world.scene_classifiers.train_world_classifier", fake_train)
    with pytest.raises(SystemExit):
        main(
            [
                "world",
                "make-classifier",
                "--out",
                str(tmp_path / "c.pt"),
                "--device",
                "cpu",
                "--train-steps",
                "2",
            ]
        )
    assert str(seen["device"]) == "cpu"
    assert main(["world", "make-classifier", "--out", str(tmp_path / "c.pt"), "--device", "nonsense"]) == 2


def test_world_classifier_training_takes_a_device():
    from disco_inspect.world.scene_classifiers import train_world_classifier

    clf = train_world_classifier(None, steps=2, progress=False, device="cpu")
    assert next(clf.module.parameters()).device.type == "cpu"


@pytest.mark.parametrize("mode", [["--random", "1", "--clean", "0"], ["--saturated", "1"]])
def test_world_benchmark_trains_its_classifiers_on_device(mode, monkeypatch, tmp_path):
    """`world benchmark --device` reaches the training of the randomised cases' classifiers, not only the audits."""
    seen = {}

    def fake_train(bias, **kw):
        seen["device"] = kw.get("device")
        raise KeyboardInterrupt

    monkeypatch.setattr("disco_inspect.models.pipelines.load_pipeline", lambda source, **kw: "PIPE")
    monkeypatch.setattr("disco_inspect.world.scene_classifiers.train_world_classifier", fake_train)
    shares = {
        "circle": {"background=green": 1.0}
    }  # the saturated stratum measures these on the pipeline first
    monkeypatch.setattr("disco_inspect.world.benchmarks.randomised.default_shares", lambda pipe, cfg: shares)
    main(
        [
            "world",
            "benchmark",
            *mode,
            "--seed",
            "0",
            "--device",
            "meta",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert seen == {"device": "meta"}


def test_report_plan_prints_the_cost_per_stage_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from disco_inspect.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["report", "world:biased_circle_green", "--class", "circle", "--plan", "--out", "out"])
    assert code == 0
    text = capsys.readouterr().out
    assert "the audit's cost plan" in text and "interventions" in text and "estimated time" in text
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_report_plan_with_images_plans_their_stages_without_reading_them(tmp_path, capsys, monkeypatch):
    """`--plan --images DIR`: the real-data slice, the inversion and edits and the counterfactual scan get their
    own lines; nothing is generated or written."""
    import torch

    from disco_inspect.cli import main
    from disco_inspect.engine.run_folder import save_png

    monkeypatch.chdir(tmp_path)
    for i in range(10):
        save_png(
            tmp_path / "mine" / f"c{i}.png", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i))
        )
    code = main(
        [
            "report",
            "world:biased_circle_green",
            "--class",
            "circle",
            "--plan",
            "--images",
            "mine",
            "--out",
            "out",
        ]
    )
    assert code == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"real_data", "edits", "real_edits", "attributions"} <= set(lines)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
