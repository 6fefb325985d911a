"""What happens after each epoch of a training run: the Keras callbacks, as ordinary classes,
and :func:`run_callbacks`, which puts a run's together. Committing each epoch to the model
folder, epoch previews, progress bars, handing events to a watcher (the notebook's live
panel), the cosine schedule, and early stopping and learning-rate reduction that
``--resume`` continues.

Importing this module imports Keras; the trainer imports it when a run starts.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from hippo_utils.core.config import Config
from hippo_utils.core.files import atomic_write_bytes
from hippo_utils.core.png import png_bytes, read_rgb
from hippo_utils.core.tables import write_history_csv
from hippo_utils.data.dataset import load_images, pair_files
from hippo_utils.data.derive import dataset_plane
from hippo_utils.data.labels import Labels
from hippo_utils.display import figures, pictures
from hippo_utils.model.folder import commit_epoch, preview_path
from hippo_utils.model.losses import monitor_mode

logger = logging.getLogger(__name__)

SHOWN_LOGS = ("loss", "val_loss", "dice_fg", "val_dice_fg")


def write_history_files(history: dict[str, list[float]], cfg: Config) -> None:
    """train_metrics.csv, train_losses.csv (the original's format) and their plots."""
    eval_dir = cfg.train.eval_dir
    metric_cols = [c for c in cfg.train.metrics if c in history] or ["dice_fg", "val_dice_fg"]
    for name, cols in (("train_metrics", metric_cols), ("train_losses", ["loss", "val_loss"])):
        cols = [c for c in cols if c in history]
        write_history_csv(eval_dir / f"{name}.csv", history, cols)
        figures.save_figure(
            figures.history_plot(history, cols, name.replace("_", " ")), eval_dir / f"{name}.png", tight=False
        )


# ---------------------------------------------------------------- resumable counters
class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping whose patience counter and best value carry over a resumed run."""

    _restored: dict | None = None

    def resume_state(self) -> int:
        return int(self.wait)

    def restore(self, wait: int, best: float | None) -> None:
        """Continue from a saved run: applied when training begins."""
        self._restored = {"wait": wait, "best": best}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            self.wait = self._restored["wait"]
            if self._restored["best"] is not None:
                self.best = self._restored["best"]


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """The original's learning-rate reducer, whose counters carry over a resumed run."""

    _restored: dict | None = None

    def resume_state(self) -> dict:
        return {
            "wait": int(self.wait),
            "cooldown": int(self.cooldown_counter),
            "best": None if self.best is None else float(self.best),
        }

    def restore(self, state: dict | None) -> None:
        """Continue from :meth:`resume_state` of a saved run (None: start afresh)."""
        self._restored = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored:
            self.wait, self.cooldown_counter = self._restored["wait"], self._restored["cooldown"]
            if self._restored["best"] is not None:
                self.best = self._restored["best"]


# -------------------------------------------------------------------- the epoch commit
class EpochCheckpoint(keras.callbacks.Callback):
    """Each epoch, into the model folder: the best and last checkpoints, history.json and
    state.json (:func:`~hippo_utils.model.folder.commit_epoch`); then the CSVs and plots of
    the history into ``eval_dir``."""

    def __init__(
        self,
        cfg: Config,
        history: dict[str, list[float]],
        best: float | None,
        early_stopping: ResumableEarlyStopping | None = None,
        reducer: ResumableReduceLROnPlateau | None = None,
    ):
        super().__init__()
        self.cfg, self.history, self.best = cfg, history, best
        self.early, self.reducer = early_stopping, reducer
        self.monitor = cfg.train.monitor
        self.mode = monitor_mode(self.monitor)
        self.t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def _improves(self, value: float | None) -> bool:
        if value is None:
            return False
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch_time_s"] = time.perf_counter() - self.t0
        # the rate this epoch trained at: a reducer that lowered it has logged the one it used
        logs.setdefault("learning_rate", float(np.asarray(self.model.optimizer.learning_rate)))
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))
        improved = self._improves(logs.get(self.monitor))
        if improved:
            self.best = float(logs[self.monitor])
        values = self.history.get(self.monitor)
        state = {
            "best": self.best,
            "monitor": self.monitor,
            "best_epoch": int((np.argmax if self.mode == "max" else np.argmin)(values)) + 1 if values else None,
            "early_stopping_wait": self.early.resume_state() if self.early is not None else 0,
        }
        if self.reducer is not None:
            state["reducer"] = self.reducer.resume_state()
        commit_epoch(
            self.cfg.train.model_dir, self.model, epoch, self.history, state, improved, self.cfg.train.save_weights_only
        )
        write_history_files(self.history, self.cfg)


# ---------------------------------------------------------------------- what is shown
class EpochPreviews(keras.callbacks.Callback):
    """Predict the first ``num_infer_images`` mini_test slices after each epoch; write
    ``Epoch_{n}_{name}.png`` (the predicted mask, as the original did) and tell listeners."""

    def __init__(self, cfg: Config, write_files: bool, listeners: Sequence[Callable[[int, dict], None]] = ()):
        super().__init__()
        self.cfg, self.write_files, self.listeners = cfg, write_files, list(listeners)
        mini_test = cfg.derive.output_dir / "mini_test"
        try:
            pairs = pair_files(mini_test / "images", mini_test / "masks")[: cfg.train.num_infer_images]
        except (FileNotFoundError, ValueError) as exc:
            logger.warning("no epoch previews: %s", exc)
            pairs = []
        self.names = [p[0].stem for p in pairs]
        self.images = load_images([p[0] for p in pairs], cfg) if pairs else None
        self.truths = [read_rgb(p[1]) for p in pairs]
        self.colours = Labels.from_config(cfg).colours
        self.plane = dataset_plane(cfg.derive.output_dir) or cfg.derive.plane

    def on_epoch_end(self, epoch, logs=None):
        if self.images is None:
            return
        probs = self.model.predict_on_batch(self.images)  # one batch: no predict loop to set up
        preds = self.colours[np.argmax(probs, axis=-1)]
        if self.write_files:
            for name, pred in zip(self.names, preds, strict=True):
                atomic_write_bytes(
                    preview_path(self.cfg.train.epoch_change_infer_dir, epoch + 1, name), png_bytes(pred)
                )
        update = {
            "names": self.names,
            "images": self.images,
            "truths": self.truths,
            "preds": list(preds),
            "logs": dict(logs or {}),
            "plane": self.plane,
        }
        for listener in self.listeners:
            listener(epoch, update)


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar per epoch (headless); a summary line when it ends."""

    def __init__(self, total_epochs: int, steps: int):
        super().__init__()
        self.total, self.steps, self.bar = total_epochs, steps, None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.total}", unit="batch", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        logs = logs or {}
        logger.info(
            "epoch %d/%d: %s", epoch + 1, self.total, ", ".join(f"{k} {logs[k]:.4f}" for k in SHOWN_LOGS if k in logs)
        )


class Watch(keras.callbacks.Callback):
    """Hands Keras's events to a watcher (``train(cfg, watch=...)``), such as the notebook's
    live panel, which then needs no Keras. Each event is a method the watcher may lack."""

    def __init__(self, watcher, history: dict[str, list[float]]):
        super().__init__()
        self.watcher, self.history = watcher, history

    def _call(self, event: str, *args) -> None:
        method = getattr(self.watcher, event, None)
        if method is not None:
            method(*args)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("epoch_begin", epoch)

    def on_train_batch_end(self, batch, logs=None):
        self._call("batch_end", batch)

    def on_epoch_end(self, epoch, logs=None):  # after EpochCheckpoint has added the epoch
        self._call("epoch_end", epoch, dict(logs or {}), self.history)

    def on_train_end(self, logs=None):
        self._call("train_end", self.history)


def watch_listeners(watch) -> list[Callable[[int, dict], None]]:
    """The preview listeners of a watcher: its ``show_previews``, when it has one."""
    method = getattr(watch, "show_previews", None)
    return [method] if method is not None else []


class TensorBoardPreviews:
    """A preview listener that writes each epoch's preview strip (image, truth, prediction
    against it) to TensorBoard as the image ``epoch_previews``."""

    def __init__(self, log_dir):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(log_dir))

    def __call__(self, epoch: int, update: dict) -> None:
        import tensorflow as tf

        strip = pictures.preview_strip(
            update["images"], update["truths"], update["preds"], tile=96, plane=update.get("plane")
        )
        with self.writer.as_default():
            tf.summary.image("epoch_previews", strip[None], step=epoch)  # 0-based, as Keras logs the scalars
        self.writer.flush()


def tensorboard_callbacks(cfg: Config) -> tuple[list, list]:
    """([train] tensorboard) Keras's TensorBoard callback, which logs the losses, both Dice
    curves and the learning rate per epoch, and the preview listener; the logs go to
    ``eval_dir/tensorboard``."""
    log_dir = cfg.train.eval_dir / "tensorboard"
    return (
        [keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")],
        [TensorBoardPreviews(log_dir / "previews")],
    )


# ---------------------------------------------------------------- a run's callbacks
def cosine_learning_rate(epoch: int, lr: float = 0.0, *, base: float, epochs: int) -> float:
    """[train] lr_schedule = "cosine": epoch 0 gets ``base``, then half a cosine down towards zero
    (the last of ``epochs`` epochs gets ``base * (1 - cos(pi / epochs)) / 2``, never zero)."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / epochs))


def run_callbacks(cfg: Config, start, steps: int, watch=None, progress: bool = True) -> list:
    """The callbacks of a run that starts at ``start`` (a
    :class:`~hippo_utils.training.run_folder.RunStart`), in the order they act after each
    epoch: early stopping and the learning-rate reducer (their counters carried over a
    resumed run), the cosine schedule, committing the epoch to the model folder,
    TensorBoard, the watcher or a progress bar, and the epoch previews."""
    t = cfg.train
    mode = monitor_mode(t.monitor)
    early = ResumableEarlyStopping(monitor=t.monitor, mode=mode, patience=t.patience)
    callbacks: list = [early]
    reducer = None
    if t.learning_rate_reducer:
        reducer = ResumableReduceLROnPlateau(
            monitor=t.monitor, mode=mode, factor=t.reducer_factor, patience=t.reducer_patience, verbose=0
        )
        callbacks.append(reducer)
    if start.state is not None:  # carry the counters over the interruption
        early.restore(start.state.get("early_stopping_wait", 0), start.best)
        if reducer is not None:
            reducer.restore(start.state.get("reducer"))  # absent in runs saved before it was kept
    if t.lr_schedule == "cosine":  # a function of the epoch alone, so a resumed run follows it too
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                functools.partial(cosine_learning_rate, base=cfg.model.learning_rate, epochs=t.epochs)
            )
        )
    callbacks.append(EpochCheckpoint(cfg, start.history, start.best, early, reducer))
    listeners = watch_listeners(watch)
    if t.tensorboard:
        board, board_listeners = tensorboard_callbacks(cfg)
        callbacks.extend(board)
        listeners = listeners + board_listeners
    if watch is not None:
        callbacks.append(Watch(watch, start.history))
    elif progress:
        callbacks.append(EpochProgress(t.epochs, steps))
    if t.epoch_change_infer or listeners:
        callbacks.append(EpochPreviews(cfg, write_files=t.epoch_change_infer, listeners=listeners))
    return callbacks


def show_finished_run(cfg: Config, model, watch, history: dict[str, list[float]], epochs: int) -> None:
    """Tell a watcher of a run that is already complete: its last model's previews, its curves."""
    previews = EpochPreviews(cfg, write_files=False, listeners=watch_listeners(watch))
    previews.set_model(model)
    previews.on_epoch_end(epochs - 1)
    Watch(watch, history).on_train_end()
