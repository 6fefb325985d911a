"""The training losses, the metrics Keras logs, and the optimizer, by the names a config uses.

Each registry below is the one place its names are written: the config check reads them
when a config is loaded (so a misspelt ``[model] loss`` fails before anything runs),
:func:`get_loss` and :func:`get_optimizer` build from them when the model is compiled,
and :func:`custom_objects` collects from them what loading a saved model needs (so that
``--resume`` and inference load any registered loss).

Adding a loss is one entry in :data:`LOSSES` (or, from outside, :func:`register_loss`)::

    def focal_loss(y_true, y_pred): ...
    register_loss("focal", lambda dice_weight: focal_loss, saved=(focal_loss,))

and ``[model] loss = "focal"`` then passes the config check, trains, resumes (a resumed run
loads the saved model, which names the loss) and its model folder loads
(``tests/test_losses.py`` does exactly this). A loss registered from a script or notebook
exists in that process only: for the command line, add it to :data:`LOSSES` here. A new
optimizer is one entry of :data:`OPTIMIZERS`, but the memory estimate
(:func:`~hippo_utils.model.flexunet.memory_estimate`) counts Adam's two moments.

**ForegroundDice** (``dice_fg``, always logged) pools intersections and sizes over all the
slices of an epoch before dividing, so that empty slices do not dominate it; the value is
the mean over the foreground classes. **dice_coef_multiclass** is the original system's
metric, background included (see :mod:`hippo_utils.model.metrics`): logged for comparison.

This module imports nothing of the package, and Keras only inside functions, so that
reading a config stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


# --------------------------------------------------------------------------- losses
def soft_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """1 - soft Dice over the foreground classes, pooled over the batch."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)[..., 1:]
    y_pred = y_pred[..., 1:]
    inter = ops.sum(y_true * y_pred, axis=(0, 1, 2))
    total = ops.sum(y_true, axis=(0, 1, 2)) + ops.sum(y_pred, axis=(0, 1, 2))
    return 1.0 - ops.mean((2.0 * inter + smooth) / (total + smooth))


def ce_dice_loss(y_true, y_pred, dice_weight: float = 1.0):
    """Categorical cross-entropy plus ``dice_weight`` times the foreground soft Dice loss."""
    import keras
    from keras import ops

    ce = ops.mean(keras.losses.categorical_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred))
    return ce + dice_weight * soft_dice_loss(y_true, y_pred)


def _ce_dice(dice_weight: float):
    if dice_weight == 1.0:
        return ce_dice_loss

    def weighted_ce_dice(y_true, y_pred):
        return ce_dice_loss(y_true, y_pred, dice_weight)

    weighted_ce_dice.__name__ = "ce_dice_loss"  # loads back as a saved ce_dice model does
    return weighted_ce_dice


@dataclass(frozen=True)
class Loss:
    """A loss by name: ``make(dice_weight)`` gives what ``model.compile`` takes (a function or
    a Keras name); ``saved``: the functions a saved model refers to, which loading needs."""

    make: Callable[[float], Any]
    saved: tuple[Callable, ...] = ()


LOSSES: dict[str, Loss] = {
    "categorical_crossentropy": Loss(lambda dice_weight: "categorical_crossentropy"),
    "dice": Loss(lambda dice_weight: soft_dice_loss, saved=(soft_dice_loss,)),
    "ce_dice": Loss(_ce_dice, saved=(ce_dice_loss,)),  # [model] dice_weight scales the Dice part
}


def register_loss(name: str, make: Callable[[float], Any], saved: tuple[Callable, ...] = ()) -> None:
    """Make ``[model] loss = name`` available: ``make(dice_weight)`` builds it; ``saved``: the
    functions a saved model refers to (usually the loss function itself)."""
    LOSSES[name] = Loss(make, tuple(saved))


def get_loss(name: str, dice_weight: float = 1.0):
    """The loss for a [model] loss name; ``dice_weight`` ([model] dice_weight) scales the
    Dice part of ``ce_dice``."""
    if name not in LOSSES:
        raise ValueError(f"[model] loss = {name!r} is not one of {', '.join(LOSSES)}")
    return LOSSES[name].make(dice_weight)


# --------------------------------------------------------------------------- metrics
def dice_coef_multiclass(y_true, y_pred, smooth: float = 1.0):
    """Keras form of the original metric (see :mod:`hippo_utils.model.metrics`)."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    return ops.mean((2.0 * inter + smooth) / (total + smooth))


def _foreground_dice_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="hippo_utils")
    class ForegroundDice(keras.metrics.Metric):
        """Epoch-pooled hard Dice over the foreground classes (see the module docstring)."""

        def __init__(self, num_classes: int, name: str = "dice_fg", **kwargs):
            super().__init__(name=name, **kwargs)
            self.num_classes = num_classes
            shape = (num_classes - 1,)
            self.inter = self.add_variable(shape=shape, initializer="zeros", name="inter")
            self.total = self.add_variable(shape=shape, initializer="zeros", name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            t = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes)[..., 1:]
            p = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)[..., 1:]
            self.inter.assign_add(ops.sum(t * p, axis=(0, 1, 2)))
            self.total.assign_add(ops.sum(t, axis=(0, 1, 2)) + ops.sum(p, axis=(0, 1, 2)))

        def result(self):
            dice = ops.where(self.total > 0, 2.0 * self.inter / ops.maximum(self.total, 1.0), 1.0)
            return ops.mean(dice)

        def reset_state(self):
            self.inter.assign(ops.zeros_like(self.inter))
            self.total.assign(ops.zeros_like(self.total))

        def get_config(self):
            return {**super().get_config(), "num_classes": self.num_classes}

    return ForegroundDice


_FG = None


def ForegroundDice(num_classes: int, name: str = "dice_fg"):  # noqa: N802 - a class factory
    """A Keras metric: epoch-pooled foreground Dice (defined lazily to keep imports cheap)."""
    global _FG
    if _FG is None:
        _FG = _foreground_dice_class()
    return _FG(num_classes, name=name)


@dataclass(frozen=True)
class Metric:
    """A metric by name: ``fn(y_true, y_pred)``, a function of that name; ``mode``:
    ``"max"`` when higher is better (what checkpoints and early stopping look for)."""

    fn: Callable
    mode: str = "max"


# [model] metrics: logged besides ``dice_fg``, which every model logs
METRICS: dict[str, Metric] = {"dice_coef_multiclass": Metric(dice_coef_multiclass, "max")}
ALWAYS_LOGGED = ("loss", "dice_fg")


def get_metrics(names, num_classes: int) -> list:
    """The Keras metrics of a model: foreground Dice, then those of [model] metrics (Keras logs
    a function under its ``__name__``, so that must be the registry name)."""
    unknown = [x for x in names if x not in METRICS]
    if unknown:
        raise ValueError(f"[model] metrics {unknown}: known metrics are {', '.join(METRICS)}")
    misnamed = [x for x in names if METRICS[x].fn.__name__ != x]
    if misnamed:
        raise ValueError(f"METRICS {misnamed}: a metric function must be named as its entry (Keras logs it by name)")
    return [ForegroundDice(num_classes), *(METRICS[x].fn for x in names)]


def monitor_mode(monitor: str) -> str:
    """Whether a logged name is best high (``"max"``: the Dice, a metric registered so) or low
    (``"min"``: the losses)."""
    name = monitor.removeprefix("val_")
    if name == "dice_fg":
        return "max"
    return METRICS[name].mode if name in METRICS else "min"


def logged_names(model_metrics) -> list[str]:
    """What training logs for [model] metrics ``model_metrics``, with their ``val_`` forms:
    the names [train] metrics and [train] monitor may use."""
    logged = [*ALWAYS_LOGGED, *(x for x in model_metrics if x not in ALWAYS_LOGGED)]
    return [*logged, *(f"val_{x}" for x in logged)]


# --------------------------------------------------------------------------- optimizers
def _adam(m):
    import keras

    return keras.optimizers.Adam(learning_rate=m.learning_rate, clipvalue=m.clipvalue)


# [model] optimizer, case-insensitive -> (the [model] section) -> a Keras optimizer
OPTIMIZERS: dict[str, Callable[[Any], Any]] = {"adam": _adam}


def get_optimizer(m):
    """The optimizer of a [model] section, with its learning_rate and clipvalue."""
    name = m.optimizer.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"[model] optimizer = {m.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](m)


# --------------------------------------------------------------------------- loading
def custom_objects() -> dict:
    """What ``keras.models.load_model`` needs to load a saved FlexUNet: every registered
    loss's saved functions, the metrics, and ForegroundDice."""
    ForegroundDice(2)  # defines and registers the class
    objects = {f.__name__: f for loss in LOSSES.values() for f in loss.saved}
    objects.update({m.fn.__name__: m.fn for m in METRICS.values()})
    return {**objects, "ForegroundDice": _FG}
