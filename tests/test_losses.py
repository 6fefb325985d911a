"""The loss registry, and a worked example of adding a loss: one entry (here
:func:`register_loss`, from outside the package), and a config may name it, training runs on
it, a resumed run loads the saved model (which refers to it by name), and the model folder
loads as inference loads it."""

from __future__ import annotations

import numpy as np
import pytest

from hippo_utils import load_config, load_model_dir, train
from hippo_utils.model.losses import LOSSES, custom_objects, get_loss, logged_names, register_loss

from helpers import run_sets, write_config


def focal_loss(y_true, y_pred):
    """Focal loss (gamma 2): cross-entropy that weighs down the pixels already right."""
    from keras import ops

    p = ops.clip(y_pred, 1e-7, 1.0)
    return ops.mean(ops.sum(-ops.cast(y_true, p.dtype) * (1 - p) ** 2 * ops.log(p), axis=-1))


@pytest.fixture
def focal():
    register_loss("focal", lambda dice_weight: focal_loss, saved=(focal_loss,))
    yield
    LOSSES.pop("focal")


def test_an_unknown_loss_is_refused_when_the_config_is_read(tmp_path):
    path = write_config(tmp_path / "c.config", {})
    with pytest.raises(ValueError, match=r"\[model\] loss: 'focal' is not one of categorical_crossentropy, dice"):
        load_config(path, ["model.loss=focal"])


def test_monitor_and_train_metrics_are_checked_against_what_is_logged(tmp_path):
    path = write_config(tmp_path / "c.config", {})
    with pytest.raises(ValueError, match=r"\[train\] monitor: 'val_dice' is not logged; use one of loss, dice_fg"):
        load_config(path, ["train.monitor=val_dice"])
    with pytest.raises(ValueError, match=r"\[train\] metrics: \['iou'\] are not logged"):
        load_config(path, ['train.metrics=["iou"]'])
    with pytest.raises(ValueError, match=r"\[model\] optimizer: 'sgd' is not one of adam"):
        load_config(path, ["model.optimizer=sgd"])
    assert logged_names(["dice_coef_multiclass"]) == [
        "loss",
        "dice_fg",
        "dice_coef_multiclass",
        "val_loss",
        "val_dice_fg",
        "val_dice_coef_multiclass",
    ]


def test_custom_objects_come_from_the_registry(focal):
    assert custom_objects()["focal_loss"] is focal_loss
    assert {"soft_dice_loss", "ce_dice_loss", "dice_coef_multiclass", "ForegroundDice"} <= set(custom_objects())


def test_a_registered_loss_trains_resumes_and_loads(focal, tiny_config, tmp_path):
    run = tmp_path / "run"
    sets = ['model.loss="focal"', "train.epochs=1", *run_sets(run)]
    train(load_config(tiny_config.path, sets), progress=False)
    resumed = train(load_config(tiny_config.path, [*sets, "train.epochs=2"]), resume=True, progress=False)
    assert resumed.epochs_done == 2 and np.isfinite(resumed.history["loss"]).all()
    model, cfg = load_model_dir(run / "models")  # as inference loads it
    assert cfg.model.loss == "focal" and model.output_shape[-1] == cfg.model.num_classes
    y = np.eye(2, dtype=np.float32)[np.array([[[0, 1]]])]
    assert float(get_loss("focal")(y, y * 0.98 + 0.01)) < float(get_loss("focal")(y, 1 - y * 0.98 - 0.01))


def test_what_is_best_follows_the_registry():
    """Checkpoints and early stopping look for the highest Dice and the lowest loss; a metric
    registered as lower-is-better is minimised, whatever its name says."""
    from hippo_utils.model.losses import METRICS, Metric, monitor_mode

    assert [monitor_mode(n) for n in ("val_dice_fg", "dice_coef_multiclass", "val_loss", "loss")] == [
        "max",
        "max",
        "min",
        "min",
    ]
    METRICS["dice_distance"] = Metric(lambda y_true, y_pred: 0.0, mode="min")
    try:
        assert monitor_mode("val_dice_distance") == "min"
    finally:
        METRICS.pop("dice_distance")
