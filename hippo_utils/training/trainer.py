"""Training the FlexUNet from a config, with outputs in the original system's formats.

What the model folder holds, and how each epoch is committed to it so that a killed run
resumes, is :mod:`hippo_utils.model.folder`'s; the callbacks are :mod:`hippo_utils.training.callbacks`'.
``train.eval_dir`` receives ``train_metrics.csv`` and ``train_losses.csv`` (the original's
``epoch,metric,val_metric,`` format) and line plots of both. An existing model folder is
never deleted: training into one that already holds a run is refused unless resuming.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from hippo_utils.core.config import Config
from hippo_utils.core.locks import folder_locks
from hippo_utils.core.ownership import check_may_write, check_outputs_apart, claim
from hippo_utils.data.derive import crop_box
from hippo_utils.data.volumes import available_memory
from hippo_utils.model.flexunet import memory_estimate
from hippo_utils.model.folder import (
    LAST_NAME,
    MODEL_FILES,
    STATE_NAME,
    check_same_dataset,
    epochs_done,
    has_run,
    load_checkpoint,
    load_model_config,
    read_history,
    read_state,
    write_config,
    write_provenance,
)
from hippo_utils.model.precision import resolve_precision, visible_gpu_memory

logger = logging.getLogger(__name__)

def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (an explicit call; importing does nothing)."""
    import keras

    keras.utils.set_random_seed(seed)


def cosine_learning_rate(epoch: int, lr: float = 0.0, *, base: float, epochs: int) -> float:
    """[train] lr_schedule = "cosine": epoch 0 gets ``base``, then half a cosine down towards zero
    (the last of ``epochs`` epochs gets ``base * (1 - cos(pi / epochs)) / 2``, never zero)."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / epochs))


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
    model.compile(optimizer=opt, loss=get_loss(m.loss, m.dice_weight), metrics=get_metrics(m.metrics, m.num_classes),
                  steps_per_execution=cfg.train.steps_per_execution, **options)


@dataclasses.dataclass
class TrainResult:
    model_dir: Path
    history: dict[str, list[float]]
    best: float | None
    epochs_done: int
    model: object = None


def train(cfg: Config, resume: bool = False, progress: bool = True, watch=None,
          extra_callbacks: Sequence = ()) -> TrainResult:
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
            ``show_previews(epoch, update)`` and ``train_end(history)``. A run that is already
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


def _check_resume(cfg: Config) -> None:
    """A resumed run goes on with the model and the dataset it began with: other [model]
    settings would be written into its config while the old network trains on (the folder
    could no longer be loaded), another dataset would mix splits."""
    model_dir = cfg.train.model_dir
    saved = load_model_config(model_dir)
    before, now = dataclasses.asdict(saved.model), dataclasses.asdict(cfg.model)
    changed = [f"[model] {k} = {now[k]!r} (was {before.get(k)!r})" for k in now
               if k != "show_summary" and before.get(k) != now[k]]
    if changed:
        raise ValueError(f"{model_dir}: --resume with other settings than the run began with: "
                         f"{'; '.join(changed)}. Resume with the run's own settings (only [train] ones such as "
                         "epochs may change), or train into a new [train] model_dir")
    check_same_dataset(model_dir, cfg, "resume")


def run_folders(cfg: Config) -> list[tuple[str, Path]]:
    """The folders a training run writes, as the config names them: the model folder, the
    evaluation folder, and the epoch previews' folder when they are written."""
    t = cfg.train
    folders = [("[train] model_dir", t.model_dir), ("[train] eval_dir", t.eval_dir)]
    if t.epoch_change_infer:
        folders.append(("[train] epoch_change_infer_dir", t.epoch_change_infer_dir))
    return folders


def claim_run_folders(cfg: Config) -> None:
    """Mark the evaluation and preview folders as this model folder's; refuse them when they
    hold another run's curves or previews (two runs would overwrite each other's)."""
    owner = {"model_dir": str(cfg.train.model_dir.resolve())}
    folders = [(what, f) for what, f in run_folders(cfg)[1:] if f.resolve() != cfg.train.model_dir.resolve()]
    for check_only in (True, False):  # all checked before any is claimed
        for what, folder in folders:
            claim(folder, owner, what, check_only=check_only)


def _train(cfg: Config, resume: bool, progress: bool, watch, extra_callbacks: Sequence) -> TrainResult:
    """The body of :func:`train`, run while it holds the model folder's lock."""
    import keras
    import tensorflow as tf

    from hippo_utils.data.dataset import make_dataset
    from hippo_utils.model.flexunet import build_flexunet
    from hippo_utils.training import callbacks as cb

    t = cfg.train
    precision = resolve_precision(t.mixed_precision)
    logger.info("precision: %s (%s)", precision.policy, precision.reason)
    model_dir = t.model_dir
    if has_run(model_dir) and not resume:
        raise FileExistsError(
            f"{model_dir} already holds a training run ({STATE_NAME}). Use --resume to continue "
            "it, or choose another [train] model_dir (e.g. --set train.model_dir=runs/new/models); "
            "nothing was deleted")
    state = read_state(model_dir) if resume else None
    if resume and state is None:
        raise FileNotFoundError(f"{model_dir}: no run to resume (no {STATE_NAME}); "
                                "train without --resume")
    if state is not None:
        _check_resume(cfg)
    for name in MODEL_FILES:  # a file of the user's where an epoch would be committed: refused before training
        check_may_write(model_dir / name)
    claim_run_folders(cfg)  # before any work: another run's curves and previews are not overwritten
    set_seed(t.seed)
    train_ds = make_dataset(cfg, "train", repeat=True)  # one iterator for the whole run
    valid_ds = make_dataset(cfg, "valid")
    steps = train_ds.steps

    strategy = tf.distribute.MirroredStrategy() if t.distribute else tf.distribute.get_strategy()
    initial_epoch = 0 if state is None else state["epoch"]
    best = None if state is None else state["best"]
    history = read_history(model_dir, initial_epoch) if state else {}
    with strategy.scope():
        if state is not None:
            checkpoint = model_dir / state.get("checkpoint", LAST_NAME)
            model = load_checkpoint(checkpoint, model_dir)
            # the loss as configured: a saved ce_dice loads back with its default dice_weight
            compile_model(model, cfg, optimizer=model.optimizer)
            logger.info("resuming %s after epoch %d (best %s = %s)", model_dir, initial_epoch, t.monitor, best)
        else:
            model = build_flexunet(cfg.model, seed=t.seed, dtype_policy=precision.policy)
            compile_model(model, cfg)
    if cfg.model.show_summary:
        model.summary(print_fn=logger.info)
    gpu_memory = visible_gpu_memory()
    memory, too_big = memory_report(model, t.batch_size, gpu_memory or available_memory(),
                                    where="the GPU's" if gpu_memory else "the free memory's")
    logger.info("%s", memory)
    if too_big and not gpu_memory:  # on a CPU the system would kill the run: refuse it
        raise ValueError(f"{cfg.path}: [train] batch_size = {t.batch_size} cannot fit: {too_big}")
    if too_big:
        logger.warning("%s", too_big)
    model_dir.mkdir(parents=True, exist_ok=True)
    # the model folder's config names the crop window, which inference needs without the dataset
    write_config(dataclasses.replace(cfg, derive=dataclasses.replace(cfg.derive, crop_box_mm=crop_box(cfg))))
    if watch is not None and hasattr(watch, "train_begin"):
        watch.train_begin(t.epochs, steps, initial_epoch)
    if watch is not None and hasattr(watch, "notice"):
        watch.notice(f"precision: {precision.policy} ({precision.reason}); {memory}", warning=too_big)
    listeners = cb.watch_listeners(watch)
    if initial_epoch >= t.epochs:
        logger.info("%s: already trained for %d of %d epochs; nothing to do", model_dir, initial_epoch, t.epochs)
        if watch is not None:  # show the finished run: its last model's previews and its curves
            previews = cb.EpochPreviews(cfg, write_files=False, listeners=listeners)
            previews.set_model(model)
            previews.on_epoch_end(initial_epoch - 1)
            cb.Watch(watch, history).on_train_end()
        return TrainResult(model_dir, history, best, initial_epoch, model)

    mode = cb.monitor_mode(t.monitor)
    early = cb.ResumableEarlyStopping(monitor=t.monitor, mode=mode, patience=t.patience)
    callbacks: list = [early]
    reducer = None
    if t.learning_rate_reducer:
        reducer = cb.ResumableReduceLROnPlateau(
            monitor=t.monitor, mode=mode, factor=t.reducer_factor, patience=t.reducer_patience, verbose=0)
        callbacks.append(reducer)
    if state is not None:  # carry the counters over the interruption
        early.restore(state.get("early_stopping_wait", 0), best)
        if reducer is not None:
            reducer.restore(state.get("reducer"))  # absent in runs saved before it was kept
    if t.lr_schedule == "cosine":  # a function of the epoch alone, so a resumed run follows it too
        callbacks.append(keras.callbacks.LearningRateScheduler(
            functools.partial(cosine_learning_rate, base=cfg.model.learning_rate, epochs=t.epochs)))
    callbacks.append(cb.EpochCheckpoint(cfg, history, best, early, reducer))
    if t.tensorboard:
        board, board_listeners = cb.tensorboard_callbacks(cfg)
        callbacks.extend(board)
        listeners = listeners + board_listeners
    if watch is not None:
        callbacks.append(cb.Watch(watch, history))
    elif progress:
        callbacks.append(cb.EpochProgress(t.epochs, steps))
    if t.epoch_change_infer or listeners:
        callbacks.append(cb.EpochPreviews(cfg, write_files=t.epoch_change_infer, listeners=listeners))
    callbacks.extend(extra_callbacks)
    if state is None:
        write_provenance(cfg, precision)
    model.fit(train_ds, validation_data=valid_ds, epochs=t.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, callbacks=callbacks, verbose=0, shuffle=False)
    final = read_state(model_dir)
    return TrainResult(model_dir, history, final["best"], final["epoch"], model)


def memory_report(model, batch_size: int, available: int | None = None,
                  where: str = "the GPU's") -> tuple[str, str | None]:
    """The model's training memory at ``batch_size`` in words (:func:`~hippo_utils.model.flexunet.memory_estimate`),
    and a warning when that is over the GPU's memory, with the batch that would fit (None otherwise).

    ``available``: that memory in bytes; when None, the total memory of the first GPU that
    TensorFlow sees (``nvidia-smi``), none without a GPU. Total, not free GPU memory, and one
    GPU: with ``[train] distribute`` each GPU holds only its share of the batch, so the warning
    is then cautious. ``where``: whose memory it is, for the message (training passes the free
    memory of a machine without a GPU).
    """
    estimate = memory_estimate(model, batch_size)
    available = visible_gpu_memory() if available is None else available
    if not available or estimate.total <= available:
        return estimate.describe(), None
    mib = 2**20
    fits = estimate.batch_that_fits(available)
    if fits == 0:
        fixed = estimate.parameters + estimate.training_state
        return estimate.describe(), (
            f"the weights, gradients and Adam state alone ({fixed // mib} MiB) "
            f"leave no room in {where} {available // mib} MiB for one image's activations "
            f"({estimate.activations_per_image // mib} MiB): use fewer [model] num_layers or base_filters")
    return estimate.describe(), (
        f"about {estimate.total // mib} MiB of training memory at batch {batch_size}, more than {where} "
        f"{available // mib} MiB: set [train] batch_size = {fits} or less")


def ensure_trained(cfg: Config, watch=None) -> Path:
    """``[train] model_dir`` with a trained model, training it first when there is none
    (so that notebooks after 03 also run on their own). An unfinished run is continued."""
    model_dir = cfg.train.model_dir
    if epochs_done(model_dir) >= cfg.train.epochs:
        return model_dir
    logger.warning("no finished model in %s: training it now", model_dir)
    train(cfg, resume=has_run(model_dir), watch=watch)
    return model_dir
