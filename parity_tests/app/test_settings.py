"""Every training setting is declared once (twinlm/training/settings.py) and the command line is
generated from the declarations (issue 21): the CLI's defaults are the library's, a flag and the
library refuse the same values with the same words, the resume rules are the declared ones (the
same as the tables they replaced), and `twinlm train --lr X` builds AdamW with lr X."""

from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import fields

import pytest

import numpy_impl
import torch_impl
from twinlm import cli
from twinlm.cli import build_parser, main
from twinlm.training import loop
from twinlm.training.checkpoint import load_run
from twinlm.training.settings import (
    CharRNNSettings,
    ClassifySettings,
    Integer,
    Number,
    RunOptions,
    TrainSettings,
    declared,
    defaults,
    resume_with,
    settings_from_args,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

COMMANDS = {  # a training command and the settings its flags set
    "train": TrainSettings,
    "charrnn train": CharRNNSettings,
    "classify train": ClassifySettings,
    "charrnn compare": CharRNNSettings,
}
TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(80)
)


def parse(command: str, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args([*command.split(), *flags])


def subparser(command: str) -> argparse.ArgumentParser:
    p = build_parser()
    for word in command.split():
        action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = action.choices[word]
    return p


def every_command(p: argparse.ArgumentParser | None = None, name: str = ""):
    """(command, parser) for every subcommand that takes flags, nested ones included."""
    p = p or build_parser()
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, p
    for action in subs:
        for word, child in action.choices.items():
            yield from every_command(child, f"{name} {word}".strip())


# ---- one default -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_cli_default_is_the_library_default(command):
    """Before: --checkpoint-every defaulted to 1000 in the CLI and checkpoint_every to 0 in the
    library; --stride, --lr's min_lr and --preset were derived in the CLI alone."""
    cls = COMMANDS[command]
    library = defaults(cls)
    flags = {a.dest: a for a in subparser(command)._actions if a.dest in library}
    assert flags, command
    for name, action in flags.items():
        assert action.default == library[name], f"{command} --{name}"
    assert settings_from_args(cls, parse(command)) == cls()  # derived values included


def test_run_options_defaults_are_the_loops():
    args = parse("train")
    assert args.checkpoint_minutes == RunOptions().checkpoint_minutes
    default = inspect.signature(loop.train).parameters["checkpoint_minutes"].default
    assert default == RunOptions().checkpoint_minutes
    assert args.backend is None  # numpy for a fresh run, the checkpoint's when resuming


@pytest.mark.parametrize("cls", [TrainSettings, CharRNNSettings, ClassifySettings])
def test_periodic_checkpoints_are_on_by_default(cls):
    """The default users expect, in the library and on the command line alike."""
    assert cls().checkpoint_every == 1000


def test_derived_settings_resolve_the_same_in_the_library_and_the_cli():
    cases = [
        (["--max-length", "32"], dict(max_length=32), dict(stride=32)),
        (["--lr", "5e-4"], dict(peak_lr=5e-4), dict(min_lr=5e-4 / 10)),  # as the CLI's lr / 10
        (["--arch", "qwen3"], dict(arch="qwen3"), dict(preset="qwen3-tiny")),
        (["--drop-rate", "0.25"], dict(drop_rate=0.25), dict(drop_rate=0.25)),
    ]
    for flags, given, expected in cases:
        library = TrainSettings(**given)
        assert settings_from_args(TrainSettings, parse("train", *flags)) == library
        for name, value in expected.items():
            assert getattr(library, name) == value, name


def test_a_checkpoint_that_kept_drop_rate_in_overrides_reads_as_the_setting():
    """Checkpoints before the drop_rate setting saved --drop-rate as overrides["drop_rate"]."""
    old = TrainSettings(overrides={"drop_rate": 0.2, "n_layers": 1})
    assert old == TrainSettings(drop_rate=0.2, overrides={"n_layers": 1})
    with pytest.raises(ValueError, match="drop_rate is 0.1 and overrides"):
        TrainSettings(drop_rate=0.1, overrides={"drop_rate": 0.2})
    with pytest.raises(ValueError, match="Qwen3 is dropout-free"):
        TrainSettings(arch="qwen3", drop_rate=0.1)


# ---- one check -----------------------------------------------------------------------------------


def bad_values(check) -> list:
    if isinstance(check, Integer):
        return [check.low - 1, check.low - 7]
    values = [math.inf, math.nan, check.low if check.above else check.low - 1]
    if check.high != math.inf:
        values.append(check.high if check.below else check.high + 1)
    return values


CHECKED = [
    (command, name, s, value)
    for command, cls in COMMANDS.items()
    if command != "charrnn compare"
    for name, s in declared(cls).items()
    if s.check is not None and s.flag is not None
    for value in bad_values(s.check)
]


@pytest.mark.parametrize("command, name, declaration, value", CHECKED)
def test_a_flag_and_the_library_refuse_the_same_values_in_the_same_words(
    command, name, declaration, value, capsys
):
    """Before: FLAG_CHECKS in cli.py checked the flags; TrainSettings(peak_lr=-1) was accepted and
    trained uphill."""
    with pytest.raises(SystemExit) as e:
        parse(command, declaration.flag, str(value))
    assert e.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    prefix = f"argument {declaration.flag}: "
    assert prefix in line
    with pytest.raises(ValueError) as refused:
        COMMANDS[command](**{name: value})
    assert str(refused.value) == f"{name} {line.split(prefix, 1)[1]}"


@pytest.mark.parametrize("cls", [TrainSettings, CharRNNSettings, ClassifySettings, RunOptions])
def test_the_library_refuses_wrong_types_and_choices_by_name(cls):
    for name, s in declared(cls).items():
        if s.choices is not None:
            with pytest.raises(ValueError, match=f"^{name} must be one of"):
                cls(**{name: "nothing-of-the-kind"})
        elif isinstance(s.check, Integer):
            with pytest.raises(TypeError, match=f"^{name} must be an integer, got float 2.5"):
                cls(**{name: 2.5})
        elif isinstance(s.check, Number):
            with pytest.raises(TypeError, match=f"^{name} must be a number, got str"):
                cls(**{name: "1"})


def test_the_same_flag_has_one_check_in_every_command():
    """Every flag that takes a number is checked (no bare int or float), and a flag name is
    checked the same way wherever it appears — the training flags come from the declarations,
    the others name the same checks."""
    checks: dict[str, set] = {}
    for command, p in every_command():
        for action in p._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            assert action.type not in (int, float), f"{command} {action.option_strings[0]}"
            if isinstance(action.type, (Integer, Number)):
                checks.setdefault(action.option_strings[0], set()).add(action.type)
    assert {"--steps", "--lr", "--seed", "--batch-size", "--top-k"} <= set(checks)
    assert {flag: len(found) for flag, found in checks.items() if len(found) > 1} == {}


def test_each_generated_flag_has_its_declared_help_and_default():
    text = subparser("charrnn train").format_help()
    for name, s in declared(CharRNNSettings).items():
        assert s.flag in text, name
    helps = {a.dest: a.help for a in subparser("train")._actions}
    assert helps["peak_lr"] == "peak learning rate (warmup, then cosine to lr/10) (default: 0.001)"
    assert helps["checkpoint_every"].endswith("(default: 1000)")
    assert "min_lr" not in helps and "weight_decay" not in helps  # no flags of their own


def test_every_subcommand_is_one_style_of_handler():
    """Every handler is "module:function", imported when it runs, called with the parsed flags."""
    for command, p in every_command():
        func = p.get_default("func")
        assert isinstance(func, str) and ":" in func, command
        assert callable(cli._handler(func)), command
        assert list(inspect.signature(cli._handler(func)).parameters) == ["args"], command


# ---- the resume rules are the declarations' ------------------------------------------------------

# What a resumed run could change before the declarations: lm.py, charrnn.py and classify.py's
# MAY_CHANGE tables, kept here as the reference behaviour.
MAY_CHANGE_BEFORE = {
    TrainSettings: {"steps", "peak_lr", "min_lr", "warmup_steps", "eval_every", "checkpoint_every"},
    CharRNNSettings: {"steps", "lr", "lr_decay", "decay_after", "weight_decay", "clip"}
    | {"eval_every", "eval_batches", "checkpoint_every"},
    ClassifySettings: {"epochs", "lr", "weight_decay", "eval_every", "eval_batches"}
    | {"checkpoint_every"},
}


@pytest.mark.parametrize("cls", MAY_CHANGE_BEFORE)
def test_the_settings_that_may_change_on_resume_are_the_old_tables(cls):
    """Each setting with a flag: may it change on --resume? As before for every one of them."""
    with_flags = {name for name, s in declared(cls).items() if s.flag or s.follows}
    may = {name for name in with_flags if declared(cls)[name].may_change}
    assert may == MAY_CHANGE_BEFORE[cls] & with_flags
    assert {f.name for f in fields(cls)} >= MAY_CHANGE_BEFORE[cls]


def test_resume_with_changes_what_may_change_and_refuses_the_rest_by_flag():
    old = TrainSettings(steps=10)
    fresh = TrainSettings(steps=20, peak_lr=5e-4, batch_size=8, seed=123)
    settings, changes = resume_with(old, fresh, {"steps", "peak_lr", "seed"})
    assert changes == {"steps": (10, 20), "peak_lr": (1e-3, 5e-4), "min_lr": (1e-4, 5e-5)}
    assert (settings.steps, settings.peak_lr, settings.min_lr) == (20, 5e-4, 5e-5)
    assert settings.batch_size == 4  # not given: the checkpoint's, whatever the flags' default
    with pytest.raises(ValueError, match=r"^--batch-size, --max-length would change the model"):
        resume_with(old, TrainSettings(batch_size=8, max_length=32), {"batch_size", "max_length"})
    settings, changes = resume_with(old, TrainSettings(warmup_steps=3), {"warmup_steps"})
    assert changes == {"warmup_steps": (20, 3)} and settings.warmup_steps == 3


def test_resume_with_refuses_a_given_model_flag_that_changes_it_naming_its_flag():
    old = CharRNNSettings(hidden_size=8)
    with pytest.raises(ValueError, match=r"^--hidden-size would change the model or the data"):
        resume_with(old, CharRNNSettings(hidden_size=16), {"hidden_size"}, "ck")
    same, changes = resume_with(old, CharRNNSettings(hidden_size=8), {"hidden_size"})
    assert same == old and changes == {}


# ---- the learning rate's path: `--lr X` to AdamW(lr=X) and to every step -------------------------


def recording(base, built: list, stepped: list):
    class Recording(base):
        def __init__(self, params, lr=1e-3, **options):
            built.append(lr)
            super().__init__(params, lr=lr, **options)

        def step(self, *args, **kwargs):
            stepped.append(self.lr)
            return super().step(*args, **kwargs)

    return Recording


LR_COMMANDS = {
    "train": ["--batch-size", "1", "--max-length", "8", "--steps", "2", "--warmup", "0"],
    "charrnn train": ["--hidden-size", "8", "--emb-dim", "4", "--num-layers", "1"]
    + ["--batch-size", "2", "--seq-length", "8", "--eval-batches", "1", "--steps", "2"],
    "classify train": ["--synthetic-size", "40", "--batch-size", "4", "--epochs", "1"]
    + ["--eval-batches", "1"],
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("command", LR_COMMANDS)
def test_lr_flag_builds_adamw_with_that_learning_rate(command, backend, tmp_path, monkeypatch):
    """Before: AdamW was built with lr=0.0 and the schedule set the real one before each step."""
    built, stepped = [], []
    for module in (numpy_impl, torch_impl):
        monkeypatch.setattr(module, "AdamW", recording(module.AdamW, built, stepped))
    text = tmp_path / "fox.txt"
    text.write_text(TEXT, encoding="utf-8")
    data = [] if command == "classify train" else ["--text", text]
    argv = [*command.split(), *LR_COMMANDS[command], *data, "--lr", "3e-4", "--backend", backend]
    argv += ["--checkpoint-minutes", "0", "--out", tmp_path / "run"]
    assert main([str(a) for a in argv]) == 0
    assert built == [3e-4]
    assert stepped[0] == pytest.approx(3e-4, rel=1e-12)  # no warmup: step 0 is at the peak
    kind = {"train": "gpt", "charrnn train": "charrnn", "classify train": "classifier"}[command]
    name = "classifier" if kind == "classifier" else "checkpoint"
    saved = load_run(tmp_path / "run" / f"{name}.safetensors", kind)
    assert saved.meta["settings"]["peak_lr" if kind == "gpt" else "lr"] == 3e-4


def test_an_engine_that_only_evaluates_has_no_optimizer():
    from twinlm.training.engines import make_engine

    model = numpy_impl.GPTModel(
        {"vocab_size": 5, "context_length": 4, "emb_dim": 4, "n_heads": 1, "n_layers": 1}
        | {"drop_rate": 0.0, "qkv_bias": False}
    )
    assert make_engine("numpy", model).opt is None
    assert make_engine("numpy", model, lr=0.5).opt.lr == 0.5


# ---- --kernels: NumPy's op set, fast unless told otherwise -----------------------------------------


def test_kernels_reaches_the_engine(tmp_path, monkeypatch):
    """`--kernels` (RunOptions) picks the NumPy engine's op set for the model and AdamW; without
    the flag the commands run the fast path."""
    seen = []
    real = loop.Run.__init__

    def spy(self, task, backend, kernels=None):
        real(self, task, backend, kernels)
        seen.append((self.engine.model.kernels, self.engine.opt.kernels))

    monkeypatch.setattr(loop.Run, "__init__", spy)
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    base = ["charrnn", "train", "--text", text, "--hidden-size", "8", "--steps", "1"]
    base += ["--batch-size", "2", "--seq-length", "8", "--eval-every", "1", "--eval-batches", "1"]
    for flags, expected in (([], "fast"), (["--kernels", "reference"], "reference")):
        assert main([str(a) for a in [*base, "--out", tmp_path / expected, *flags]]) == 0
        assert seen.pop() == (expected, expected)


def test_kernels_is_refused_with_the_torch_backend(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    argv = ["charrnn", "train", "--text", text, "--backend", "torch", "--kernels", "reference"]
    argv += ["--batch-size", "2", "--seq-length", "8"]
    assert main([str(a) for a in [*argv, "--out", tmp_path / "o"]]) == 2
    err = capsys.readouterr().err
    assert "--kernels" in err and "Traceback" not in err
