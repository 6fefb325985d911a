"""[train] mixed_precision: reduced-precision layers with a float32 softmax, chosen by the
machine with "auto", trained, checkpointed, resumed and used for inference under one policy."""

import json
from pathlib import Path

import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.model.precision import resolve_precision

from helpers import toy_volume, write_nifti


@pytest.mark.parametrize(("policy", "compute"), [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_reduced_precision_layers_with_a_float32_softmax(tiny_config, policy, compute):
    from hippo_utils.model.flexunet import build_flexunet

    model = build_flexunet(tiny_config.model, dtype_policy=policy)
    convs = [layer for layer in model.layers if layer.name.endswith("_conv1")]
    assert convs and all(layer.compute_dtype == compute and layer.variable_dtype == "float32" for layer in convs)
    head = model.get_layer("head")
    assert head.compute_dtype == "float32"
    m = tiny_config.model
    out = model.predict(np.zeros((1, m.image_height, m.image_width, m.image_channels), np.float32), verbose=0)
    assert out.dtype == np.float32 and np.allclose(out.sum(-1), 1, atol=1e-5)


def test_auto_asks_the_machine(monkeypatch):
    import hippo_utils.model.precision as precision

    assert resolve_precision(False).policy == "float32"
    assert resolve_precision("bfloat16").policy == "mixed_bfloat16"
    monkeypatch.setattr(precision, "gpu_with_tensor_cores", lambda: None)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    chosen = resolve_precision("auto")
    assert chosen.policy == "mixed_bfloat16" and "avx512_bf16" in chosen.reason
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    assert resolve_precision("auto").policy == "float32"
    monkeypatch.setattr(precision, "gpu_with_tensor_cores", lambda: "NVIDIA H200")
    assert resolve_precision("auto") == precision.Precision("mixed_float16", "auto: GPU NVIDIA H200 has tensor cores")


def test_bad_values_are_refused(tmp_path, tiny_config):
    with pytest.raises(
        ValueError,
        match=r"\[train\] mixed_precision: must be False, \"float16\", \"bfloat16\" or "
        r"\"auto\", got 'half'",
    ):
        load_config(tiny_config.path, ['train.mixed_precision="half"'])


def test_bfloat16_trains_resumes_and_segments(tiny_config, tmp_path, caplog):
    """... and says so, with the memory estimate, to the log and to the notebook's panel."""
    import keras

    from hippo_utils.inference.segment import infer_volumes
    from hippo_utils.training.trainer import train

    run = tmp_path / "bf16"
    sets = [
        'train.mixed_precision="bfloat16"',
        "train.epoch_change_infer=False",
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
    ]

    class Watcher:
        notes = []

        def notice(self, text, warning=None):
            self.notes.append((text, warning))

    with caplog.at_level("INFO", logger="hippo_utils.training.trainer"):
        first = train(load_config(tiny_config.path, [*sets, "train.epochs=1"]), watch=Watcher())
    assert "precision: mixed_bfloat16" in caplog.text and "model memory: parameters" in caplog.text
    ((text, warning),) = Watcher.notes
    assert text.startswith("precision: mixed_bfloat16 (set in") and "MiB at batch 16" in text and warning is None
    assert np.isfinite(first.history["loss"]).all() and np.isfinite(first.history["val_loss"]).all()
    prov = json.loads((run / "models" / "provenance.json").read_text())
    assert prov["precision"] == {"policy": "mixed_bfloat16", "reason": "set in [train] mixed_precision"}
    checkpoint = keras.models.load_model(run / "models" / "last.keras", compile=False)
    assert checkpoint.get_layer("enc0_conv1").compute_dtype == "bfloat16"  # the checkpoint keeps the policy
    resumed = train(load_config(tiny_config.path, [*sets, "train.epochs=2"]), resume=True, progress=False)
    assert resumed.epochs_done == 2 and np.isfinite(resumed.history["loss"]).all()
    assert resumed.model.get_layer("enc0_conv1").compute_dtype == "bfloat16"
    import nibabel as nib

    image = write_nifti(tmp_path / "scan.nii.gz", toy_volume(0)[0])
    (result,) = infer_volumes(run / "models", [image], tmp_path / "out", progress=False)
    labels = nib.load(str(result.labels_path))
    assert labels.shape == (20, 24, 18) and labels.get_data_dtype() == np.uint8 and result.qc_path.is_file()


def test_float16_scales_the_loss(tiny_config):
    import keras

    from hippo_utils.model.flexunet import build_flexunet
    from hippo_utils.training.trainer import compile_model

    model = build_flexunet(tiny_config.model, dtype_policy="mixed_float16")
    compile_model(model, tiny_config)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    m = tiny_config.model
    x = np.random.default_rng(0).uniform(0, 255, (4, m.image_height, m.image_width, m.image_channels)).astype("float32")
    y = np.eye(m.num_classes, dtype="float32")[np.zeros((4, m.image_height, m.image_width), int)]
    for _ in range(3):
        logs = model.train_on_batch(x, y, return_dict=True)
        assert np.isfinite(logs["loss"]) and np.isfinite(logs["dice_fg"])


def test_tensorboard_logs_losses_dice_learning_rate_and_previews(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hippo_utils.training.trainer import train

    run = tmp_path / "tb"
    cfg = load_config(
        tiny_config.path,
        [
            "train.tensorboard=True",
            "train.epochs=2",
            "train.epoch_change_infer=False",
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
        ],
    )
    train(cfg, progress=False)
    logs = run / "eval" / "tensorboard"

    def tags(folder):
        events = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0})
        events.Reload()
        return events, set(events.Tags()["tensors"]) | set(events.Tags()["scalars"]) | set(events.Tags()["images"])

    _, train_tags = tags(logs / "train")
    _, valid_tags = tags(logs / "validation")
    assert {"epoch_loss", "epoch_dice_fg", "epoch_dice_coef_multiclass", "epoch_learning_rate"} <= train_tags
    assert {"epoch_loss", "epoch_dice_fg"} <= valid_tags
    previews, preview_tags = tags(logs / "previews")
    assert "epoch_previews" in preview_tags
    assert [e.step for e in previews.Tensors("epoch_previews")] == [0, 1]  # one an epoch, numbered as the scalars


@pytest.mark.parametrize("setting", [True, False])
def test_jit_compile_reaches_the_compiled_model(tiny_config, setting):
    from hippo_utils.model.flexunet import build_flexunet
    from hippo_utils.training.trainer import compile_model

    cfg = load_config(tiny_config.path, [f"train.jit_compile={setting}"])
    model = build_flexunet(cfg.model)
    compile_model(model, cfg)
    assert model.jit_compile is setting
    with pytest.raises(ValueError, match=r"\[train\] jit_compile: must be \"auto\", True or False, got 'xla'"):
        load_config(tiny_config.path, ['train.jit_compile="xla"'])


PEAK = """
import sys
import numpy as np
from hippo_utils.core.backend import import_tensorflow
import_tensorflow()
from hippo_utils import load_config
from hippo_utils.model.flexunet import build_flexunet
from hippo_utils.training.trainer import compile_model
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
cfg = load_config("demo")
m, b = cfg.model, int(sys.argv[1])
model = build_flexunet(m, seed=0)
compile_model(model, cfg)
x = np.random.default_rng(0).uniform(0, 255, (b, m.image_height, m.image_width, m.image_channels)).astype("float32")
y = np.eye(m.num_classes, dtype="float32")[np.zeros((b, m.image_height, m.image_width), int)]
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the present: the import's own peak is not counted
for _ in range(3):
    model.train_on_batch(x, y)
print(status("VmHWM") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory with Linux's /proc")
def test_memory_estimate_against_the_measured_growth_per_image():
    """What three training steps add to a fresh process's memory at batch 4 and at 32: the
    growth per image is what the activation estimate stands for. Within 40% (measured: the
    estimate was 0.89 of it)."""
    import subprocess
    import sys

    from hippo_utils.model.flexunet import build_flexunet, memory_estimate

    grown = {
        b: int(
            subprocess.run(
                [sys.executable, "-c", PEAK, str(b)], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for b in (4, 32)
    }
    measured = (grown[32] - grown[4]) / 28
    model = build_flexunet(load_config("demo").model)
    estimate = memory_estimate(model, 32)
    assert estimate.parameters == 4 * model.count_params() and estimate.training_state == 3 * estimate.parameters
    assert 0.6 * measured <= estimate.activations_per_image <= 1.4 * measured, (estimate, grown)


def test_a_batch_over_the_gpu_memory_is_warned_with_one_that_fits(tiny_config):
    from hippo_utils.model.flexunet import build_flexunet, memory_estimate
    from hippo_utils.training.resources import memory_report

    model = build_flexunet(tiny_config.model)
    estimate = memory_estimate(model, 64)
    about, warning = memory_report(model, 64, available=0)  # no GPU: nothing to fit
    assert about.startswith("model memory: parameters") and "at batch 64" in about and warning is None
    small = estimate.parameters + estimate.training_state + 10 * estimate.activations_per_image + 1
    _, warning = memory_report(model, 64, available=small)
    assert warning.endswith("set [train] batch_size = 10 or less")
    assert estimate.batch_that_fits(small) == 10
    assert memory_report(model, 10, available=small)[1] is None
    _, warning = memory_report(model, 64, available=estimate.parameters + estimate.training_state + 1)
    assert "leave no room" in warning and "num_layers" in warning  # not "batch_size = 0"
