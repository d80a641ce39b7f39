"""Issue 22, twinlm's own checkpoints (safetensors + JSON metadata), tampered one way per case and
fed to every command that reads one: generate, score, train / charrnn train / classify train
--resume, charrnn sample, classify predict. Each is refused with exit 2 and one line naming the
file and the key, or (the controls) works. Case ids say the class, as in test_hostile_weights.py;
the metadata that claims 10⁸ layers is in test_memory_bombs.py."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hostile import DROP, Case, check_case, checkpoint, checkpoint_text, nested, tamper

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def gpt_generate(tmp, path):
    return ["generate", "--checkpoint", path, "--prompt", "hi", "--max-new-tokens", "1"]


def gpt_resume(tmp, path):
    return ["train", "--resume", path, "--text", checkpoint_text("gpt"), "--steps", "2", "--out",
            tmp / "r"]  # fmt: skip


def gpt_score(tmp, path):
    return ["score", "--checkpoint", path, "--text", "hi there", "--png", tmp / "s.png"]


def charrnn_resume(tmp, path):
    return ["charrnn", "train", "--text", checkpoint_text("charrnn"), "--resume", path, "--steps",
            "3", "--out", tmp / "r"]  # fmt: skip


def charrnn_sample(tmp, path):
    return ["charrnn", "sample", "--checkpoint", path, "--length", "5"]


def classifier_predict(tmp, path):
    return ["classify", "predict", "--checkpoint", path, "--text", "win a prize"]


def classifier_resume(tmp, path):
    return ["classify", "train", "--resume", path, "--epochs", "2", "--out", tmp / "r"]


KIND = {gpt_generate: "gpt", gpt_resume: "gpt", gpt_score: "gpt", charrnn_resume: "charrnn"}
KIND |= {charrnn_sample: "charrnn", classifier_predict: "classifier"}
KIND |= {classifier_resume: "classifier"}


def case(id: str, command, meta=None, tensors=None, code: int = 2, says=()) -> Case:
    """command (one of the functions above) on a checkpoint of its kind, tampered: meta is
    {"a/b" key: value (DROP removes it)} or a function of the metadata; tensors a function."""

    def edit_meta(m):
        if callable(meta):
            return meta(m)
        else:
            for key, value in (meta or {}).items():
                nested(m, key, value)

    def build(tmp):
        path = tamper(checkpoint(KIND[command], tmp), edit_meta, tensors)
        return command(tmp, path)

    return Case(id, build, code, ("{tmp}", *says))


def set_tensor(key, value):
    def edit(t):
        a = t[key].copy()
        a.reshape(-1)[0] = value
        t[key] = a

    return edit


def rename_tensor(old, new):
    return lambda t: t.__setitem__(new, t.pop(old))


def reshape_tensor(key, shape):
    return lambda t: t.__setitem__(key, np.zeros(shape, t[key].dtype))


def longer_history(m):
    m["history"]["val_loss"].append(1.0)


def bf16(n: int):
    import torch

    return torch.zeros(n, dtype=torch.bfloat16)


def deeply_nested(m: dict) -> str:
    """The metadata's text with a list nested 50,000 deep added (Python's parser recurses)."""
    return json.dumps(m)[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}"


CONTROLS = [
    case("control/gpt-generate", gpt_generate, code=0),
    case("control/gpt-resume", gpt_resume, code=0),
    case("control/gpt-score", gpt_score, code=0),
    case("control/charrnn-resume", charrnn_resume, code=0),
    case("control/charrnn-sample", charrnn_sample, code=0),
    case("control/classifier-predict", classifier_predict, code=0),
    case("control/classifier-resume", classifier_resume, code=0),
]  # fmt: skip

SILENT = [
    case("silent/nan-parameter", gpt_generate, tensors=set_tensor("model.trf_blocks.0.att.W_query.weight", np.nan), says=("model.trf_blocks.0.att.W_query.weight", "non-finite")),
    case("silent/nan-parameter-score", gpt_score, tensors=set_tensor("model.out_head.weight", np.nan), says=("model.out_head.weight",)),
    case("silent/inf-optimizer-moment", charrnn_resume, tensors=set_tensor("optim.exp_avg_sq.decoder.weight", np.inf), says=("optim.exp_avg_sq.decoder.weight",)),
    case("silent/cfg-vocab-size-string", gpt_generate, {"cfg/vocab_size": "50257"}, says=("cfg['vocab_size'] must be an int",)),
    case("silent/cfg-qkv-bias-string", gpt_generate, {"cfg/qkv_bias": "true"}, says=("qkv_bias",)),
    case("silent/cfg-hidden-size-float", charrnn_sample, {"cfg/hidden_size": 8.0}, says=("hidden_size",)),
    case("silent/settings-eval-every-string", charrnn_resume, {"settings/eval_every": "100"}, says=("its settings' eval_every",)),
    case("silent/settings-lr-string", charrnn_resume, {"settings/lr": "0.002"}, says=("its settings' lr",)),
    case("silent/settings-clip-bool", charrnn_resume, {"settings/clip": True}, says=("its settings' clip",)),
    case("silent/settings-dtype-float16", gpt_resume, {"settings/dtype": "float16"}, says=("its settings' dtype",)),
    case("silent/settings-seed-float", charrnn_resume, {"settings/seed": 1.5}, says=("its settings' seed",)),
    case("silent/charrnn-vocab-a-number", charrnn_sample, {"vocab": 39}, says=("'vocab'",)),
    case("silent/charrnn-vocab-wrong-size", charrnn_sample, {"vocab": [10, 32]}, says=("'vocab'",)),
    case("silent/history-val-loss-strings", charrnn_resume, {"history/val_loss": ["a"]}, says=("history['val_loss']",)),
    case("silent/classifier-num-classes-string", classifier_predict, {"num_classes": "2"}, says=("num_classes",)),
]  # fmt: skip

TRACEBACK = [
    case("traceback/settings-eval-every-zero", charrnn_resume, {"settings/eval_every": 0}, says=("its settings' eval_every",)),
    case("traceback/settings-eval-every-zero-gpt", gpt_resume, {"settings/eval_every": 0}, says=("its settings' eval_every",)),
    case("traceback/settings-batch-size-zero", charrnn_resume, {"settings/batch_size": 0}, says=("its settings' batch_size",)),
    case("traceback/settings-seq-length-negative", charrnn_resume, {"settings/seq_length": -4}, says=("its settings' seq_length",)),
    case("traceback/settings-a-list", charrnn_resume, {"settings": [1]}, says=("'settings' must be a JSON object",)),
    case("traceback/history-not-a-list", charrnn_resume, {"history/steps": 5}, says=("history['steps'] must be a list",)),
    case("traceback/history-lengths-differ", gpt_resume, longer_history, says=("lengths differ",)),
    case("traceback/opt-steps-string", charrnn_resume, {"opt_steps/decoder.weight": "2"}, says=("opt_steps",)),
    case("traceback/opt-steps-unknown-parameter", charrnn_resume, {"opt_steps/nope": 2}, says=("opt_steps['nope']",)),
    case("traceback/moment-shape-mismatch", charrnn_resume, tensors=reshape_tensor("optim.exp_avg.decoder.bias", (3,)), says=("optim.exp_avg.decoder.bias",)),
    case("traceback/backend-unknown", charrnn_sample, {"backend": "cuda"}, says=("'backend'",)),
    case("traceback/classifier-labels-short", classifier_predict, {"labels": ["ham"]}, says=("'labels'",)),
    case("traceback/classifier-labels-not-strings", classifier_predict, {"labels": [0, 1]}, says=("'labels'",)),
    case("traceback/classifier-max-length-string", classifier_predict, {"max_length": "12"}, says=("'max_length'",)),
    case("traceback/classifier-max-length-past-context", classifier_predict, {"max_length": 99}, says=("'max_length'",)),
    case("traceback/carry-gap", charrnn_resume, tensors=rename_tensor("carry.1", "carry.5"), says=("carry",)),
    case("traceback/metadata-deep-nesting", gpt_generate, deeply_nested, says=("metadata",)),
]  # fmt: skip


MESSAGE = [
    case("message/settings-preset-larger-than-cfg", gpt_resume, {"settings/preset": "gpt2-xl"}, says=("another model than its cfg", "emb_dim")),
    case("message/settings-overrides-layers", gpt_resume, {"settings/overrides": {"vocab_size": 50257, "n_layers": 10**8}}, says=("another model", "n_layers")),
    case("message/settings-charrnn-hidden-size", charrnn_resume, {"settings/hidden_size": 10**6}, says=("another model", "hidden_size")),
    case("message/cfg-layers-more-than-tensors", gpt_generate, {"cfg/n_layers": 3}, says=("missing trf_blocks.2.", "(16 in all)")),
    case("message/cfg-layers-fewer-than-tensors", gpt_generate, {"cfg/n_layers": 1}, says=("does not explain", "trf_blocks.1")),
    case("message/cfg-missing", charrnn_sample, {"cfg": DROP}, says=("'cfg'",)),
    case("message/cfg-width-mismatch", charrnn_sample, {"cfg/emb_dim": 5}, says=("embedding.weight",)),
    case("message/settings-unknown-key", charrnn_resume, {"settings/colour": "blue"}, says=("colour",)),
    case("message/parameter-missing", gpt_generate, tensors=lambda t: t.pop("model.final_norm.scale"), says=("final_norm.scale",)),
    case("message/unexplained-tensor", gpt_generate, tensors=lambda t: t.__setitem__("model.x", np.zeros(2, np.float32)), says=("does not explain: x",)),
    case("silent/float16-parameter", charrnn_sample, tensors=lambda t: t.__setitem__("model.decoder.bias", t["model.decoder.bias"].astype(np.float16)), says=("all float32 or all float64", "float16")),
    case("traceback/carry-of-another-shape", charrnn_resume, tensors=lambda t: t.__setitem__("carry.0", np.zeros((3, 1, 8), np.float32)), says=("carry.0 is float32 (3, 1, 8)",)),
    case("traceback/carry-batch-not-the-settings", charrnn_resume, {"settings/batch_size": 3}, says=("(2, 3, 8)",)),
    case("traceback/classifier-trainable-unknown", classifier_predict, {"trainable": "everything"}, says=("trainable must be one of",)),
    case("traceback/classifier-pad-id-past-vocabulary", classifier_predict, {"pad_id": 10**12}, says=("pad_id",)),
    case("bomb/classifier-synthetic-size", classifier_resume, {"settings/synthetic_size": 10**9}, says=("synthetic_size must be <= 1000000",)),
    case("message/bf16-tensor", gpt_generate, tensors=lambda t: t.__setitem__("model.x", bf16(2)), says=("model.x is bfloat16",)),
]  # fmt: skip

CASES = CONTROLS + SILENT + TRACEBACK + MESSAGE


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_hostile_checkpoints(case, tmp_path):
    check_case(case, tmp_path)


# Every setting of every kind, given values of the wrong type and one out of range: refused by name
# when the checkpoint is read for resuming (saved_settings, which every resume goes through; the
# command line turns its ValueError into exit 2, as the cases above show).
SETTINGS = {
    "charrnn": "twinlm.training.charrnn:CharRNNSettings",
    "gpt": "twinlm.training.lm:TrainSettings",
    "classifier": "twinlm.training.classify:ClassifySettings",
}


@pytest.mark.parametrize("kind", list(SETTINGS))
def test_every_setting_of_the_wrong_type_or_range_is_refused_by_name(kind, tmp_path):
    import importlib

    from twinlm.training.checkpoint import load_run, saved_settings

    module, name = SETTINGS[kind].split(":")
    cls = getattr(importlib.import_module(module), name)
    saved = load_run(checkpoint(kind, tmp_path))
    assert saved_settings(saved, cls) == cls(**saved.meta["settings"])  # as saved: accepted
    refused = 0
    for field in dataclasses.fields(cls):
        for value in ([1, 2], {"a": 1} if field.name != "overrides" else "a", -1, float("nan")):
            if field.name == "overrides" and value in (-1,):
                continue
            meta = {**saved.meta, "settings": {**saved.meta["settings"], field.name: value}}
            with pytest.raises(ValueError, match=f"{saved.path}: its settings' {field.name} "):
                saved_settings(dataclasses.replace(saved, meta=meta), cls)
            refused += 1
    assert refused >= 3 * len(dataclasses.fields(cls))
