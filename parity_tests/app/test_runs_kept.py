"""No run is lost or overwritten (issue 22, "runs lost or overwritten"), through the command line:
the last checkpoint is written before the plots, and a plot that fails is a warning; every file a
command writes when its work is done is checked before the work starts (the training commands'
--out, book --save/--json, score --png, demo/bench/compare --out); a run resumed from elsewhere
does not replace the checkpoint of another run in its --out. The torchrun cases (a signal to any
rank) are in parity_tests/training/test_distributed.py."""

from __future__ import annotations

import errno
import json

import pytest
from cli_helpers import charrnn_argv as charrnn
from cli_helpers import fails, step_of

from twinlm.cli import main
from twinlm.report import plots
from twinlm.training.checkpoint import load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def gpt(text, out, *more) -> list[str]:
    args = ["train", "--text", text, "--max-length", "8", "--batch-size", "1", "--eval-every", "2"]
    return [str(a) for a in [*args, "--checkpoint-minutes", "0", "--out", out, *more]]


def classify(out, *more) -> list[str]:
    args = ["classify", "train", "--synthetic-size", "40", "--epochs", "1", "--batch-size", "4"]
    return [str(a) for a in [*args, "--out", out, *more]]


COMMANDS = {  # (argv, the checkpoint's name, the files its report writes)
    "charrnn": (lambda text, out: charrnn(text, out, "--steps", "3"), "checkpoint.safetensors"),
    "gpt": (lambda text, out: gpt(text, out, "--steps", "2"), "checkpoint.safetensors"),
    "classifier": (lambda text, out: classify(out), "classifier.safetensors"),
}


# ---- the last checkpoint before the plots ------------------------------------------------------


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_plot_that_cannot_be_written_is_a_warning_and_the_run_is_kept(kind, text, tmp_path, monkeypatch, capsys):  # fmt: skip
    """Before: the final checkpoint was written after the plots, so a plot that could not be
    written (a full disk, a folder named loss.png made during the run) ended the run with exit 2
    and its steps were gone. Now: saved first, then plotted; the failing plot is a warning."""
    argv, name = COMMANDS[kind][0](text, tmp_path / "run"), COMMANDS[kind][1]

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x.png"))

    monkeypatch.setattr(plots, "plot_losses", full_disk)  # every report's curves go through it
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"warning: the plots were not written ({tmp_path / 'run' / 'x.png'}: No space" in err
    saved = load_run(tmp_path / "run" / name)
    assert f"checkpoint: {tmp_path / 'run' / name}" in out  # the run's end
    assert saved.meta["step"] == len(saved.meta["history"]["step_loss"]) > 0
    if kind == "classifier":  # recorded by the report before its plots: saved again
        assert "test_confusion" in saved.meta["history"]


def test_the_classifiers_report_is_saved_with_it(tmp_path):
    """The report adds the test confusion matrix to the history: the checkpoint holds it."""
    assert main(classify(tmp_path / "run")) == 0
    history = load_run(tmp_path / "run" / "classifier.safetensors").meta["history"]
    (counts,) = history["test_confusion"]  # one confusion matrix: the 8 test texts (20 % of 40)
    assert sum(map(sum, counts)) == 8


@pytest.mark.parametrize(
    "kind, folder",
    [
        ("charrnn", "loss.png"),
        ("gpt", "loss.png"),
        ("classifier", "accuracy.png"),
        ("classifier", "confusion.png"),
        ("charrnn", "checkpoint.safetensors"),
        ("classifier", "classifier.safetensors"),
    ],
)
def test_a_folder_where_the_run_writes_is_refused_before_any_step(kind, folder, text, tmp_path, monkeypatch, capsys):  # fmt: skip
    """Before: `--out` holding a folder named loss.png failed after training, unsaved; a folder
    named checkpoint.safetensors read as "already holds a checkpoint (a file twinlm cannot
    read)"."""
    from twinlm.training import loop

    (tmp_path / "run" / folder).mkdir(parents=True)
    monkeypatch.setattr(loop.Run, "train_step", lambda self: pytest.fail("trained"))
    line = fails(COMMANDS[kind][0](text, tmp_path / "run"), capsys)
    assert f"--out {tmp_path / 'run'} holds a folder named {folder}, where the run writes" in line


# ---- resuming into another run's --out -----------------------------------------------------------


@pytest.fixture
def two_runs(text, tmp_path):
    """Run A (3 steps, seed 1) and run B (2 steps, seed 2), each in its own --out."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(charrnn(text, a, "--steps", "3", "--seed", "1")) == 0
    assert main(charrnn(text, b, "--steps", "2", "--seed", "2")) == 0
    return a / "checkpoint.safetensors", b / "checkpoint.safetensors"


def test_resuming_into_another_runs_out_is_refused(two_runs, text, tmp_path, capsys):
    """Before: `--resume A --out B` replaced B's checkpoint, a different run, without --force."""
    a, b = two_runs
    before = b.read_bytes()
    line = fails(charrnn(text, b.parent, "--resume", a, "--steps", "5"), capsys)
    assert f"--out {b.parent} already holds a checkpoint (step 2 of a charrnn run): the run resumed from {a} would replace it: choose another --out, or pass --force" in line  # fmt: skip
    assert b.read_bytes() == before
    assert main(charrnn(text, b.parent, "--resume", a, "--steps", "5", "--force")) == 0
    assert step_of(b) == 5 and load_run(b).meta["settings"]["seed"] == 1


def test_resuming_into_its_own_or_an_empty_out_is_fine(two_runs, text, tmp_path):
    a, _ = two_runs
    assert main(charrnn(text, a.parent, "--resume", a, "--steps", "4")) == 0  # in place
    assert step_of(a) == 4
    link = tmp_path / "a-again"  # the same file by another path
    link.symlink_to(a.parent)
    assert main(charrnn(text, link, "--resume", link / a.name, "--steps", "5")) == 0
    assert step_of(a) == 5
    assert main(charrnn(text, tmp_path / "c", "--resume", a, "--steps", "6")) == 0
    assert step_of(tmp_path / "c" / a.name) == 6 and step_of(a) == 5


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_resume_from_what_is_not_a_file_is_refused_before_out_is_touched(what, text, tmp_path, capsys):  # fmt: skip
    resume = tmp_path / "nothing.safetensors" if what == "missing" else tmp_path
    line = fails(charrnn(text, tmp_path / "new", "--resume", resume), capsys)
    said = "not found" if what == "missing" else "a folder"
    assert f"--resume {resume}: {said}; give the checkpoint file to continue" in line
    assert not (tmp_path / "new").exists()


# ---- the outputs of the other commands, checked before their work ------------------------------


BOOK = ["book", "ch05", "--set", "context_length=8", "emb_dim=8", "n_layers=1", "n_heads=2"]


@pytest.fixture
def no_chapter(monkeypatch):
    """ch05 must not run: the check comes first."""
    from twinlm.book import ch05

    monkeypatch.setattr(ch05, "run_ch05", lambda *a, **k: pytest.fail("the chapter ran"))


@pytest.mark.parametrize("flag", ["--save", "--json"])
@pytest.mark.parametrize("where", ["folder", "under a file", "read-only"])
def test_book_outputs_are_checked_before_the_chapter_runs(flag, where, text, tmp_path, no_chapter, monkeypatch, capsys):  # fmt: skip
    """Before: `book ch05 --save DIR` and `--json missing-dir/x.json` failed only after training.
    (A missing folder is now created at the start, as --out is.)"""
    from twinlm.data import files

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    path = {"folder": tmp_path, "under a file": a_file / "x", "read-only": tmp_path / "ro" / "x"}
    if where == "read-only":

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    line = fails([*BOOK, "--text", text, flag, path[where]], capsys)
    said = {
        "folder": f"{flag} {tmp_path} is a folder; give the file to write",
        "under a file": f"{flag} {a_file / 'x'}: its folder {a_file} is a file, not a folder",
        "read-only": f"{flag} {tmp_path / 'ro' / 'x'}: its folder {tmp_path / 'ro'}: cannot write in the folder: Read-only file system",  # fmt: skip
    }[where]
    assert said in line


def test_book_json_into_a_new_folder_is_written(text, tmp_path, monkeypatch):
    """The folder is made at the start, the file written at the end (the chapter stubbed)."""
    from twinlm.book import ch05
    from twinlm.book.table import Row

    out = tmp_path / "new" / "ch05.json"

    def chapter(*args, **kwargs):
        assert out.parent.is_dir() and not out.exists()
        return {"ran": True}, [Row("stub", "a stub row", "1")]

    monkeypatch.setattr(ch05, "run_ch05", chapter)
    assert main([*BOOK, "--text", str(text), "--epochs", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ran"] is True


@pytest.mark.parametrize(
    "png, said",
    [
        ("folder", "--png {tmp} is a folder; give the file to write"),
        ("heat", "--png must name a .png file, got '{tmp}/heat'"),
        ("heat.pdf", "--png must name a .png file, got '{tmp}/heat.pdf'"),
        ("a-file/x.png", "--png {tmp}/a-file/x.png: its folder {tmp}/a-file is a file"),
    ],
)
def test_score_png_is_checked_before_the_model_is_read(png, said, tmp_path, capsys):
    """Before: `score --png DIR` wrote DIR.png and reported DIR; a PNG under a file failed after
    the scoring. (The checkpoint does not exist: the --png check comes first.)"""
    (tmp_path / "a-file").write_text("x")
    path = tmp_path if png == "folder" else tmp_path / png
    argv = ["score", "--checkpoint", tmp_path / "none.safetensors", "--text", "a b c"]
    line = fails([*argv, "--png", path], capsys)
    assert said.format(tmp=tmp_path) in line


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--steps", "1"],
        ["bench", "--time", "0.01"],
        ["charrnn", "compare", "--steps", "1"],
    ],
    ids=["demo", "bench", "compare"],
)
def test_an_out_that_is_a_file_is_refused_before_the_work(argv, tmp_path, capsys):
    """Before: demo and charrnn compare found it after their training (demo with a bare
    "File exists"), bench after minutes of benchmarks."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    line = fails([*argv, "--out", a_file], capsys)
    assert f"--out {a_file}" in line and "is a file, not a folder" in line


def test_compare_keeps_the_runs_already_in_its_out(text, tmp_path, capsys):
    """Before: a second `charrnn compare` into the same --out replaced every cell's checkpoint,
    and `--cells gru gru` trained the GRU twice into one folder."""
    args = ["charrnn", "compare", "--text", text, "--steps", "1", "--hidden-size", "4"]
    args += ["--emb-dim", "4", "--batch-size", "2", "--seq-length", "4", "--eval-batches", "1"]
    args += ["--out", tmp_path / "cmp", "--cells"]
    line = fails([*args, "gru", "gru"], capsys)
    assert "--cells names a cell twice: gru gru" in line
    assert main([str(a) for a in [*args, "gru"]]) == 0
    capsys.readouterr()
    line = fails([*args, "gru"], capsys)
    assert f"--out {tmp_path / 'cmp' / 'gru'} already holds a checkpoint (step 1 of a charrnn run)" in line  # fmt: skip
    assert main([str(a) for a in [*args, "gru", "--force"]]) == 0
