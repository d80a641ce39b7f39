"""Every training setting, declared once: its default, its help, the values it accepts and whether a
resumed run may change it. The command line's flags are generated from these declarations
(`add_flags`), read back from them (`settings_from_args`), and a resumed run follows them
(`resume_with`), so the library and the command line cannot disagree.

    steps: int = setting(200, "optimizer steps in total", Integer(1), may_change=True)

declares the field `steps` (default 200) and the flag `--steps` (help "optimizer steps in total
(default: 200)"; anything but an integer ≥ 1 refused by name), and a `--steps` given with
`--resume` changes the run instead of being refused. A setting's flag may have another name
(`flag="--lr"` for peak_lr), there may be none (`flag=None`: the library's alone), or the setting
may follow another one's flag (`follows="peak_lr"`: min_lr, which --lr sets too). Whatever the
flag, the parsed value lands in `args.<setting name>`.

Building a settings object checks each value as the command line checks its flag:
`TrainSettings(peak_lr=-1)` raises ValueError "peak_lr must be a finite number in (0, inf), got -1",
as `twinlm train --lr -1` exits 2 with "argument --lr: must be a finite number in (0, inf), got -1".
A default of None means "derived" (the help says from what): TrainSettings resolves its preset
from arch, stride from max_length, min_lr from peak_lr, so its fields hold values once built.

The settings of the tasks: TrainSettings (`twinlm train`, lm.py), CharRNNSettings (`twinlm charrnn
train` and `compare`, charrnn.py), ClassifySettings (`twinlm classify train`, classify.py); each is
saved in its run's checkpoint. RunOptions: how any training command runs, not saved with the run.
"""

from __future__ import annotations

import argparse
import functools
import math
import numbers
from dataclasses import MISSING, dataclass, field, fields, replace

from twinlm.shared.classifier import POSITION_OPTIONS, TRAINABLE_OPTIONS
from twinlm.shared.naming import BACKENDS, DTYPES, KERNELS
from twinlm.shared.validate import require_choice, require_int

ARCHS = ("gpt", "qwen3")
DEFAULT_PRESETS = {"gpt": "tiny", "qwen3": "qwen3-tiny"}
MODELS = ("rnn", "gru", "lstm")  # char-rnn's -model
NONLINEARITIES = ("tanh", "relu")  # the vanilla RNN's
CLASSIFY_DATA = ("sms-spam", "synthetic")


# ---- the values a setting accepts: the same check for its flag and for the library ----------


class _Check:
    """A check of a setting's values: `check(name, value)` for the library, and the argparse type
    of its flag when called with the flag's text; the same words either way."""

    parse: type  # the flag's text to a value

    def expected(self) -> str: ...  # what the flag's text must be
    def problem(self, value, shown) -> str | None: ...  # None: the value is fine

    def __call__(self, text: str):
        try:
            value = self.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.expected()}, got {text!r}") from None
        if (problem := self.problem(value, text)) is not None:
            raise argparse.ArgumentTypeError(problem)
        return value


@dataclass(frozen=True)
class Integer(_Check):
    """An integer ≥ low (and ≤ high, where a larger value would only exhaust memory)."""

    low: int
    high: int | None = None
    parse = int

    def expected(self) -> str:
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer in [{self.low}, {self.high}]"

    def problem(self, value: int, shown) -> str | None:
        if value < self.low:
            return f"must be >= {self.low}, got {shown}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high}, got {shown}"
        return None

    def check(self, name: str, value) -> None:
        require_int(name, value)
        if (problem := self.problem(value, value)) is not None:
            raise ValueError(f"{name} {problem}")


@dataclass(frozen=True)
class Number(_Check):
    """A finite number in [low, high]; `above`: low excluded, `below`: high excluded (an infinite
    high always is)."""

    low: float
    high: float = math.inf
    above: bool = False
    below: bool = False
    parse = float

    def span(self) -> str:
        right = ")" if self.below or self.high == math.inf else "]"
        return f"{'(' if self.above else '['}{self.low:g}, {self.high:g}{right}"

    def expected(self) -> str:
        return f"a number in {self.span()}"

    def problem(self, value: float, shown) -> str | None:
        inside = (value > self.low if self.above else value >= self.low) and (
            value < self.high if self.below else value <= self.high
        )
        if math.isfinite(value) and inside:
            return None
        return f"must be a finite number in {self.span()}, got {shown}"

    def check(self, name: str, value) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if (problem := self.problem(float(value), value)) is not None:
            raise ValueError(f"{name} {problem}")


MAX_SYNTHETIC_TEXTS = 1_000_000  # the synthetic spam set is built in memory, a Python row each
STEPS_LIKE = Integer(1)  # a count that must be at least one: steps, sizes, batches, epochs
INDEX_LIKE = Integer(0)  # a count or id that may be zero: seeds, token ids, "0: off" counts
RATE = Number(0, above=True)  # learning rates, decay factors
NON_NEGATIVE = Number(0)  # weight decay, clip (0: off), minutes
DROP_RATE = Number(0, 1, below=True)


# ---- the declaration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """What a settings dataclass's field declares beside its default (module docstring)."""

    help: str
    check: Integer | Number | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = ""  # "": --<name with dashes>; None: no flag
    may_change: bool = False  # on --resume
    follows: str | None = None  # set by that setting's flag (and has none of its own)
    optional: bool = False  # None is a value (the default, meaning what the help says)


def setting(
    default,
    help: str,
    check: Integer | Number | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    flag: str | None = "",
    may_change: bool = False,
    follows: str | None = None,
):
    """A settings dataclass field: its default and its declaration (module docstring). A dict
    default becomes a fresh copy for every object."""
    meta = Setting(
        help, check, choices, None if follows else flag, may_change, follows, default is None
    )
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"setting": meta})
    return field(default=default, metadata={"setting": meta})


@functools.cache
def declared(cls) -> dict[str, Setting]:
    """Every declared field of a settings dataclass, in order, its flag spelled out."""
    out = {}
    for f in fields(cls):
        s = f.metadata["setting"]
        if s.flag == "":
            s = replace(s, flag="--" + f.name.replace("_", "-"))
        out[f.name] = s
    return out


def defaults(cls) -> dict:
    """Each setting's default (a fresh copy of a dict default)."""
    return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(cls)}


class Settings:
    """The base of every settings dataclass: building one checks each value as its flag would be
    checked (a subclass resolves its derived settings first, then calls this)."""

    def __post_init__(self) -> None:
        for name, s in declared(type(self)).items():
            value = getattr(self, name)
            if value is None and s.optional:
                continue
            if s.choices is not None:
                require_choice(name, value, s.choices)
            elif s.check is not None:
                s.check.check(name, value)


# ---- the command line: flags from the declarations, settings from the flags, resuming -------


def add_flags(parser: argparse.ArgumentParser, cls, only: tuple[str, ...] | None = None) -> None:
    """One flag per declared setting of `cls` that has one (`only`: just these settings), with the
    setting's default, help and check; the parsed value lands in args.<setting name>."""
    values = defaults(cls)
    for name, s in declared(cls).items():
        if s.flag is None or (only is not None and name not in only):
            continue
        default = values[name]
        shown = "" if default is None else f" (default: {_shown(default)})"
        options = dict(dest=name, default=default, help=(s.help + shown).replace("%", "%%"))
        if s.choices is not None:
            options["choices"] = s.choices
        else:
            options["metavar"] = s.flag[2:].upper().replace("-", "_")
            options["type"] = s.check or str
        parser.add_argument(s.flag, **options)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_from_args(cls, args):
    """`cls` from parsed command-line flags: each setting from its flag (args.<name>); a setting
    whose flag this command lacks keeps its default."""
    values = {
        name: getattr(args, name)
        for name, s in declared(cls).items()
        if s.flag is not None and hasattr(args, name)
    }
    return cls(**values)


def resume_with(old, fresh, given, where: str = "the checkpoint"):
    """The settings a resumed run continues with: `old` (the checkpoint's), changed where a flag
    given on the command line (`given`: the names of the settings whose flags were given) asks
    for another value (`fresh`: the values the flags set) and the setting may change on resuming.
    A given flag that would change any other setting — the model or the data — is refused by
    name. Returns (settings, {name: (old value, new value)})."""
    declarations = declared(type(old))
    changes, refused = {}, set()
    for name, s in declarations.items():
        flag_of = s.follows or name
        before, after = getattr(old, name), getattr(fresh, name)
        if flag_of in given and before != after:
            if s.may_change:
                changes[name] = (before, after)
            else:
                refused.add(declarations[flag_of].flag)
    if refused:
        raise ValueError(
            f"{', '.join(sorted(refused))} would change the model or the data of the run being "
            f"resumed ({where}); leave them out to continue it, or start a new run"
        )
    return replace(old, **{name: new for name, (_, new) in changes.items()}), changes


# ---- the declarations ---------------------------------------------------------------------------
# Shared by the tasks: the same help and check wherever the setting appears.


def _dtype():
    return setting("float32", "parameters' and activations' dtype", choices=DTYPES)


def _seed():
    return setting(123, "seed of the init, the batch order and the dropout masks", INDEX_LIKE)


def _eval_every(default: int):
    return setting(default, "evaluate every this many optimizer steps", STEPS_LIKE, may_change=True)


def _checkpoint_every():
    return setting(
        1000,
        "save a checkpoint every this many optimizer steps (0: by time only), and at the end",
        INDEX_LIKE,
        may_change=True,
    )


@dataclass
class RunOptions(Settings):
    """How a training command runs, beside what it trains: not saved in its checkpoint's
    settings, so a resumed run takes them from the command line again."""

    backend: str | None = setting(
        None, "default: numpy, or with --resume the checkpoint's", choices=BACKENDS
    )
    checkpoint_minutes: float = setting(
        10.0, "also save a checkpoint every this many minutes (0: by steps only)", NON_NEGATIVE
    )
    kernels: str | None = setting(
        None,
        "the NumPy backend's ops (default: fast): fast (numpy_impl/fast: row blocks, threads, in "
        "place) or reference (numpy_impl: the plain math); equal to rounding, so a run may "
        "resume with either",
        choices=KERNELS,
    )


@dataclass
class TrainSettings(Settings):
    """`twinlm train`: the book's GPT (or a Qwen3) on a text (lm.py)."""

    preset: str | None = setting(
        None,
        "model size from twinlm.shared.config.PRESETS, or QWEN3_PRESETS with --arch qwen3 "
        f"(default: {' / '.join(DEFAULT_PRESETS.values())})",
    )
    arch: str = setting("gpt", "the model", choices=ARCHS)
    dtype: str = _dtype()
    max_length: int = setting(64, "tokens per training window", STEPS_LIKE)
    stride: int | None = setting(
        None, "tokens between windows (default: max_length, the book's: none overlap)", STEPS_LIKE
    )
    batch_size: int = setting(4, "windows per optimizer step", STEPS_LIKE)
    steps: int = setting(200, "optimizer steps in total", STEPS_LIKE, may_change=True)
    peak_lr: float = setting(
        1e-3,
        "peak learning rate (warmup, then cosine to lr/10)",
        RATE,
        flag="--lr",
        may_change=True,
    )
    min_lr: float | None = setting(
        None,
        "the cosine's floor (default: peak_lr / 10)",
        NON_NEGATIVE,
        follows="peak_lr",
        may_change=True,
    )
    warmup_steps: int = setting(
        20, "linear warmup steps", INDEX_LIKE, flag="--warmup", may_change=True
    )
    weight_decay: float = setting(0.1, "AdamW's weight decay", NON_NEGATIVE, flag=None)
    clip: float = setting(1.0, "global gradient-norm clip (0: none)", NON_NEGATIVE, flag=None)
    eval_every: int = _eval_every(25)
    eval_batches: int = setting(4, "batches of each split per evaluation", STEPS_LIKE, flag=None)
    seed: int = _seed()
    checkpoint_every: int = _checkpoint_every()
    drop_rate: float | None = setting(None, "dropout (default: the preset's)", DROP_RATE)
    overrides: dict = setting({}, "config keys to override, e.g. vocab_size", flag=None)

    def __post_init__(self) -> None:
        require_choice("arch", self.arch, ARCHS)
        if self.preset is None:
            self.preset = DEFAULT_PRESETS[self.arch]
        if self.stride is None:
            self.stride = self.max_length
        if self.min_lr is None and isinstance(self.peak_lr, numbers.Real):
            self.min_lr = self.peak_lr / 10
        if "drop_rate" in self.overrides:  # where checkpoints before the drop_rate setting kept it
            overrides = dict(self.overrides)
            rate = overrides.pop("drop_rate")
            if self.drop_rate not in (None, rate):
                raise ValueError(
                    f"drop_rate is {self.drop_rate} and overrides['drop_rate'] {rate}: give one"
                )
            self.drop_rate, self.overrides = rate, overrides
        super().__post_init__()
        if self.arch == "qwen3" and self.drop_rate is not None:
            raise ValueError(
                f"drop_rate must be None with arch 'qwen3' (Qwen3 is dropout-free), got "
                f"{self.drop_rate}"
            )
        if self.min_lr > self.peak_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= peak_lr ({self.peak_lr})")

    @property
    def lr(self) -> float:
        """The learning rate the optimizer is built with: the peak (the schedule sets each
        step's)."""
        return self.peak_lr


@dataclass
class CharRNNSettings(Settings):
    """`twinlm charrnn train`: char-rnn's defaults where they fit (rnn_size 128, num_layers 2,
    seq_length 50, batch_size 50, learning_rate 2e-3 decayed ×0.97 per epoch after 10, grad_clip
    5), with Adam for RMSprop and a global-norm clip for the element-wise one. model: "lstm"
    (char-rnn's default), "gru" (torch's GRU) or "rnn" (vanilla, with `nonlinearity` tanh or
    relu)."""

    dtype: str = _dtype()
    model: str = setting("lstm", "the cell, as char-rnn's -model", choices=MODELS)
    nonlinearity: str = setting("tanh", "--model rnn's", choices=NONLINEARITIES)
    emb_dim: int = setting(64, "byte embedding size", STEPS_LIKE)
    hidden_size: int = setting(128, "units per recurrent layer", STEPS_LIKE)
    num_layers: int = setting(2, "recurrent layers", STEPS_LIKE)
    drop_rate: float = setting(0.0, "dropout after each recurrent layer", DROP_RATE)
    batch_size: int = setting(50, "parallel streams", STEPS_LIKE)
    seq_length: int = setting(50, "steps of truncated BPTT", STEPS_LIKE)
    steps: int = setting(1000, "optimizer steps in total", STEPS_LIKE, may_change=True)
    lr: float = setting(2e-3, "Adam's learning rate", RATE, may_change=True)
    lr_decay: float = setting(
        0.97,
        "multiply lr by this at the end of every epoch from --decay-after on",
        RATE,
        may_change=True,
    )
    decay_after: int = setting(10, "epochs before lr decay starts", INDEX_LIKE, may_change=True)
    weight_decay: float = setting(0.0, "> 0: AdamW (0: Adam)", NON_NEGATIVE, may_change=True)
    clip: float = setting(5.0, "global gradient-norm clip (0: none)", NON_NEGATIVE, may_change=True)
    eval_every: int = _eval_every(100)
    eval_batches: int = setting(
        20,
        "batches of each split per evaluation (0: the whole split)",
        INDEX_LIKE,
        may_change=True,
    )
    seed: int = _seed()
    checkpoint_every: int = _checkpoint_every()


@dataclass
class ClassifySettings(Settings):
    """`twinlm classify train`: the book's chapter-6 fine-tuning (classify.py)."""

    preset: str = setting("tiny", "model without --weights (tiny, qwen3-tiny, …)")
    weights: str | None = setting(
        None, "GPT-2 weights or a Qwen3 folder (default: a fresh model of --preset)"
    )
    n_heads: int | None = setting(None, "attention heads of --weights", STEPS_LIKE)
    data: str = setting("synthetic", "the labelled texts", choices=CLASSIFY_DATA)
    synthetic_size: int = setting(
        500, "texts made by --data synthetic", Integer(1, MAX_SYNTHETIC_TEXTS)
    )
    trainable: str = setting("last-block", "what trains", choices=TRAINABLE_OPTIONS)
    k: int | None = setting(None, "blocks trained with --trainable last-k", STEPS_LIKE)
    position: str = setting("last", "the token that classifies", choices=POSITION_OPTIONS)
    pad_id: int | None = setting(None, "right-padding id (default: the tokenizer's)", INDEX_LIKE)
    dtype: str = _dtype()
    drop_rate: float = setting(0.0, "dropout (the book fine-tunes with 0.0)", DROP_RATE)
    max_length: int | None = setting(
        None, "tokens per text (default: the longest training text)", STEPS_LIKE
    )
    epochs: int = setting(5, "passes over the training texts", STEPS_LIKE, may_change=True)
    batch_size: int = setting(8, "texts per optimizer step", STEPS_LIKE)
    lr: float = setting(5e-5, "AdamW's learning rate (the book's)", RATE, may_change=True)
    weight_decay: float = setting(0.1, "AdamW's weight decay", NON_NEGATIVE, may_change=True)
    clip: float = setting(
        0.0, "global gradient-norm clip (0: none, as the book)", NON_NEGATIVE, flag=None
    )
    eval_every: int = _eval_every(50)
    eval_batches: int = setting(
        5, "batches per loss estimate, the book's eval_iter (0: all)", INDEX_LIKE, may_change=True
    )
    accuracy_batches: int | None = setting(
        None, "batches per epoch-end accuracy (default: the whole split)", STEPS_LIKE, flag=None
    )
    seed: int = _seed()
    checkpoint_every: int = _checkpoint_every()
    overrides: dict = setting({}, "config keys to override, e.g. n_layers", flag=None)
