"""Training the FlexUNet from a config: :func:`train`, one screen from the data to ``model.fit``.

What happens after each epoch (the checkpoint committed to the model folder, previews,
curves in ``train.eval_dir`` in the original's ``epoch,metric,val_metric,`` format) is
:mod:`hippo_utils.training.callbacks`'; the losses and metrics are
:mod:`hippo_utils.model.losses`'. Two modules a learner can skip keep a run safe:
:mod:`~hippo_utils.training.run_folder` (an existing model folder is never deleted, and
training into one that holds a run is refused unless resuming) and
:mod:`~hippo_utils.training.resources` (a batch that cannot fit is refused before it starts).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from hippo_utils.core.config import Config
from hippo_utils.core.locks import folder_locks
from hippo_utils.core.ownership import check_outputs_apart
from hippo_utils.model.folder import LAST_NAME, epochs_done, has_run, load_checkpoint, read_state, write_provenance
from hippo_utils.model.precision import resolve_precision
from hippo_utils.training.resources import check_memory
from hippo_utils.training.run_folder import RunStart, begin_run, run_folders, write_run_config

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (an explicit call; importing does nothing)."""
    import keras

    keras.utils.set_random_seed(seed)


def compile_model(model, cfg: Config, optimizer=None, **options) -> None:
    """The configured optimizer (with [model] learning_rate and clipvalue), loss and metrics
    (foreground Dice always, plus those of [model] metrics), all by name from
    :mod:`hippo_utils.model.losses`; XLA as [train] jit_compile says. ``optimizer``: one to
    keep instead (a resumed run's, with its state). ``options`` go to ``model.compile`` and
    win over the config."""
    import keras

    from hippo_utils.model.losses import get_loss, get_metrics, get_optimizer

    m = cfg.model
    opt = optimizer
    if opt is None:
        opt = get_optimizer(m)
        if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
            opt = keras.optimizers.LossScaleOptimizer(opt)  # float16 gradients would underflow unscaled
    options.setdefault("jit_compile", cfg.train.jit_compile)
    model.compile(
        optimizer=opt,
        loss=get_loss(m.loss, m.dice_weight),
        metrics=get_metrics(m.metrics, m.num_classes),
        steps_per_execution=cfg.train.steps_per_execution,
        **options,
    )


@dataclasses.dataclass
class TrainResult:
    model_dir: Path
    history: dict[str, list[float]]
    best: float | None
    epochs_done: int
    model: object = None


def train(
    cfg: Config, resume: bool = False, progress: bool = True, watch=None, extra_callbacks: Sequence = ()
) -> TrainResult:
    """Train the FlexUNet of ``cfg`` on its derived dataset.

    Args:
        cfg: the configuration.
        resume: continue the run in ``train.model_dir`` from its last complete epoch up to
            ``train.epochs`` in total (optimizer state, best value, early-stopping and
            learning-rate reducer counters restored).
        progress: headless progress bars (ignored with ``watch``).
        watch: an object told of the run as it goes, such as the notebook's
            :class:`hippo_utils.display.widgets.LiveTrainingPanel`. It may have any of
            ``train_begin(total_epochs, steps, initial_epoch)``, ``epoch_begin(epoch)``,
            ``batch_end(batch)``, ``epoch_end(epoch, logs, history)``,
            ``show_previews(epoch, update)``, ``notice(text, warning)`` (the precision and
            memory, with a warning when the batch may not fit) and ``train_end(history)``. A run that is already
            complete still tells it ``train_begin``, the last model's previews and ``train_end``.
        extra_callbacks: more Keras callbacks.

    Raises:
        FileExistsError: ``model_dir`` already holds a run and ``resume`` is off, another
            process is writing one of the run's folders (:class:`~hippo_utils.core.locks.FolderLocked`),
            or ``eval_dir`` or the previews' folder holds another run's outputs, or a file there
            was not written by this tool (:class:`~hippo_utils.core.ownership.NotOurs`).
        FileNotFoundError / ValueError: missing dataset or bad settings, with the name.
    """
    outputs = run_folders(cfg)
    check_outputs_apart(outputs, [("the dataset ([derive] output_dir)", cfg.derive.output_dir)])
    with folder_locks((folder, "train") for _, folder in outputs):
        return _train(cfg, resume, progress, watch, extra_callbacks)


def _model(cfg: Config, start: RunStart, precision):
    """A new FlexUNet, or the resumed run's last checkpoint; compiled."""
    from hippo_utils.model.flexunet import build_flexunet

    if start.state is None:
        model = build_flexunet(cfg.model, seed=cfg.train.seed, dtype_policy=precision.policy)
        compile_model(model, cfg)
        return model
    model = load_checkpoint(cfg.train.model_dir / start.state.get("checkpoint", LAST_NAME), cfg.train.model_dir)
    compile_model(model, cfg, optimizer=model.optimizer)  # a saved ce_dice loads back with its default dice_weight
    logger.info(
        "resuming %s after epoch %d (best %s = %s)", cfg.train.model_dir, start.epoch, cfg.train.monitor, start.best
    )
    return model


def _train(cfg: Config, resume: bool, progress: bool, watch, extra_callbacks: Sequence) -> TrainResult:
    """The body of :func:`train`, run while it holds the model folder's lock."""
    import tensorflow as tf

    from hippo_utils.data.dataset import make_dataset
    from hippo_utils.training import callbacks as cb

    t = cfg.train
    precision = resolve_precision(t.mixed_precision)
    logger.info("precision: %s (%s)", precision.policy, precision.reason)
    start = begin_run(cfg, resume)  # refuses, before any work, what would lose or mix a result
    set_seed(t.seed)
    train_ds = make_dataset(cfg, "train", repeat=True)  # one iterator for the whole run
    valid_ds = make_dataset(cfg, "valid")
    strategy = tf.distribute.MirroredStrategy() if t.distribute else tf.distribute.get_strategy()
    with strategy.scope():
        model = _model(cfg, start, precision)
    if cfg.model.show_summary:
        model.summary(print_fn=logger.info)
    memory, too_big = check_memory(cfg, model)
    logger.info("%s", memory)
    write_run_config(cfg)
    if watch is not None and hasattr(watch, "train_begin"):
        watch.train_begin(t.epochs, train_ds.steps, start.epoch)
    if watch is not None and hasattr(watch, "notice"):
        watch.notice(f"precision: {precision.policy} ({precision.reason}); {memory}", warning=too_big)
    if start.epoch >= t.epochs:
        logger.info("%s: already trained for %d of %d epochs; nothing to do", t.model_dir, start.epoch, t.epochs)
        if watch is not None:
            cb.show_finished_run(cfg, model, watch, start.history, start.epoch)
        return TrainResult(t.model_dir, start.history, start.best, start.epoch, model)

    callbacks = [*cb.run_callbacks(cfg, start, train_ds.steps, watch, progress), *extra_callbacks]
    if start.state is None:
        write_provenance(cfg, precision)
    model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=t.epochs,
        initial_epoch=start.epoch,
        steps_per_epoch=train_ds.steps,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    final = read_state(t.model_dir)  # start.history now holds every epoch: the callbacks append to it
    return TrainResult(t.model_dir, start.history, final["best"], final["epoch"], model)


def ensure_trained(cfg: Config, watch=None) -> Path:
    """``[train] model_dir`` with a trained model, training it first when there is none
    (so that notebooks after 03 also run on their own). An unfinished run is continued."""
    model_dir = cfg.train.model_dir
    if epochs_done(model_dir) >= cfg.train.epochs:
        return model_dir
    logger.warning("no finished model in %s: training it now", model_dir)
    train(cfg, resume=has_run(model_dir), watch=watch)
    return model_dir
