"""Training the FlexUNet from a config, with outputs in the original system's formats.

``train.model_dir`` receives::

    best.weights.h5 (or best.keras)  the best model by [train] monitor (save_weights_only)
    last.keras                       the last epoch, with optimizer state
    last.eNNN.keras                  the same checkpoint under its epoch's name, for --resume
    state.json                       epochs done, best value, early-stopping counter, checkpoint
    history.json                     every logged value per epoch
    train_eval_infer.config          the config that trained it (resolved)
    provenance.json                  package/TF/Keras versions, config and dataset checksums

``state.json`` is the commit point of an epoch: it is written (atomically) only after its
checkpoint is complete, and names it; the previous epoch's checkpoint is removed only
after that. A run killed at any moment therefore resumes from a complete checkpoint
that matches ``state.json`` and ``history.json``.

``train.eval_dir`` receives ``train_metrics.csv`` and ``train_losses.csv`` (the original's
``epoch,metric,val_metric,`` format) and line plots of both. Every file is written
atomically. An existing model folder is never deleted: training into one that already
holds a run is refused unless resuming.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hippo_utils.config import Config, load_config
from hippo_utils.fsutil import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_eval_infer.config"
KNOWN_METRICS = ("dice_fg", "dice_coef_multiclass")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (an explicit call; importing does nothing)."""
    import keras

    keras.utils.set_random_seed(seed)


def monitor_mode(monitor: str) -> str:
    return "max" if "dice" in monitor else "min"


def cosine_learning_rate(epoch: int, lr: float = 0.0, *, base: float, epochs: int) -> float:
    """[train] lr_schedule = "cosine": epoch 0 gets ``base``, then half a cosine down towards zero
    (the last of ``epochs`` epochs gets ``base * (1 - cos(pi / epochs)) / 2``, never zero)."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / epochs))


def compile_model(model, cfg: Config, **options) -> None:
    """Adam with [model] learning_rate and clipvalue, the configured loss, and metrics:
    foreground Dice always, plus those of [model] metrics. ``options`` go to
    ``model.compile`` (e.g. ``jit_compile``)."""
    import keras

    from hippo_utils.metrics import ForegroundDice, dice_coef_multiclass, get_loss

    m = cfg.model
    if m.optimizer.lower() != "adam":
        raise ValueError(f"[model] optimizer = {m.optimizer!r}: only \"Adam\" is supported")
    unknown = [x for x in m.metrics if x not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"[model] metrics {unknown}: known metrics are {', '.join(KNOWN_METRICS)}")
    metrics = [ForegroundDice(m.num_classes)]
    if "dice_coef_multiclass" in m.metrics:
        metrics.append(dice_coef_multiclass)
    opt = keras.optimizers.Adam(learning_rate=m.learning_rate, clipvalue=m.clipvalue)
    model.compile(optimizer=opt, loss=get_loss(m.loss, m.dice_weight), metrics=metrics,
                  steps_per_execution=cfg.train.steps_per_execution, **options)


# ------------------------------------------------------------------------ outputs
def write_history_files(history: dict[str, list[float]], cfg: Config) -> None:
    """train_metrics.csv, train_losses.csv (original format) and their plots."""
    from hippo_utils import plots

    eval_dir = cfg.train.eval_dir
    epochs = len(history.get("loss", []))
    metric_cols = [c for c in cfg.train.metrics if c in history] or ["dice_fg", "val_dice_fg"]
    for name, cols in (("train_metrics", metric_cols), ("train_losses", ["loss", "val_loss"])):
        cols = [c for c in cols if c in history]
        lines = ["epoch," + "".join(f"{c}," for c in cols)]
        lines += [f"{e}, " + ", ".join(f"{history[c][e]:.4f}" for c in cols) for e in range(epochs)]
        atomic_write_text(eval_dir / f"{name}.csv", "\n".join(lines) + "\n")
        plots.save_figure(plots.history_plot(history, cols, name.replace("_", " ")),
                          eval_dir / f"{name}.png")


def _callbacks_module():
    import keras

    class AtomicState(keras.callbacks.Callback):
        """Each epoch: last.keras, state.json, history.json, CSVs and plots, atomically."""

        def __init__(self, cfg: Config, history: dict[str, list[float]], best: float | None,
                     early_stopping=None, reducer=None):
            super().__init__()
            self.cfg, self.history, self.best = cfg, history, best
            self.early, self.reducer = early_stopping, reducer
            self.mode = monitor_mode(cfg.train.monitor)
            self.t0 = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            logs["epoch_time_s"] = time.perf_counter() - self.t0
            logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
            for k, v in logs.items():
                self.history.setdefault(k, []).append(float(v))
            model_dir = self.cfg.train.model_dir
            value = logs.get(self.cfg.train.monitor)
            improved = value is not None and (
                self.best is None or (value > self.best if self.mode == "max" else value < self.best))
            if improved:
                self.best = float(value)
                if self.cfg.train.save_weights_only:
                    with atomic_path(model_dir / "best.weights.h5") as tmp:
                        self.model.save_weights(str(tmp))
                else:
                    with atomic_path(model_dir / "best.keras") as tmp:
                        self.model.save(str(tmp))
            checkpoint = f"last.e{epoch + 1:03d}.keras"
            with atomic_path(model_dir / checkpoint) as tmp:
                self.model.save(str(tmp))
            state = {"epoch": epoch + 1, "best": self.best, "monitor": self.cfg.train.monitor,
                     "best_epoch": int(np.argmax(self.history[self.cfg.train.monitor]) if self.mode == "max"
                                       else np.argmin(self.history[self.cfg.train.monitor])) + 1
                     if self.cfg.train.monitor in self.history else None,
                     "early_stopping_wait": int(getattr(self.early, "wait", 0)), "checkpoint": checkpoint}
            if self.reducer is not None:  # ReduceLROnPlateau's counters, for --resume
                best_seen = self.reducer.best
                state["reducer"] = {"wait": int(self.reducer.wait), "cooldown": int(self.reducer.cooldown_counter),
                                    "best": None if best_seen is None else float(best_seen)}
            atomic_write_text(model_dir / "history.json", json.dumps(self.history, indent=1) + "\n")
            atomic_write_text(model_dir / "state.json", json.dumps(state, indent=1) + "\n")  # commit
            link_or_copy(model_dir / checkpoint, model_dir / "last.keras")
            for old in model_dir.glob("last.e*.keras"):
                if old.name != checkpoint:
                    old.unlink(missing_ok=True)
            write_history_files(self.history, self.cfg)

    class EpochPreviews(keras.callbacks.Callback):
        """Predict the first ``num_infer_images`` mini_test slices after each epoch; write
        ``Epoch_{n}_{name}.png`` (the predicted mask, as the original did) and tell listeners."""

        def __init__(self, cfg: Config, write_files: bool,
                     listeners: Sequence[Callable[[int, dict], None]] = ()):
            super().__init__()
            from hippo_utils.dataset import load_images, pair_files

            self.cfg, self.write_files, self.listeners = cfg, write_files, list(listeners)
            images_dir = cfg.derive.output_dir / "mini_test" / "images"
            masks_dir = cfg.derive.output_dir / "mini_test" / "masks"
            try:
                pairs = pair_files(images_dir, masks_dir)[: cfg.train.num_infer_images]
            except (FileNotFoundError, ValueError) as exc:
                logger.warning("no epoch previews: %s", exc)
                pairs = []
            self.names = [p[0].stem for p in pairs]
            self.images = load_images([p[0] for p in pairs], cfg) if pairs else None
            from PIL import Image

            self.truths = [np.asarray(Image.open(p[1]).convert("RGB")) for p in pairs]
            self.lut = cfg.class_colours()
            from hippo_utils.plots import dataset_plane

            self.plane = dataset_plane(cfg.derive.output_dir) or cfg.derive.plane

        def on_epoch_end(self, epoch, logs=None):
            if self.images is None:
                return
            probs = self.model.predict(self.images, batch_size=len(self.images), verbose=0)
            preds = self.lut[np.argmax(probs, axis=-1)]
            if self.write_files:
                from hippo_utils.fsutil import atomic_write_bytes
                from hippo_utils.plots import png_bytes

                out = self.cfg.train.epoch_change_infer_dir
                for name, pred in zip(self.names, preds, strict=True):
                    atomic_write_bytes(out / f"Epoch_{epoch + 1}_{name}.png", png_bytes(pred))
            update = {"names": self.names, "images": self.images, "truths": self.truths,
                      "preds": list(preds), "logs": dict(logs or {}), "plane": self.plane}
            for listener in self.listeners:
                listener(epoch, update)

    class EpochProgress(keras.callbacks.Callback):
        """One tqdm bar per epoch (headless); a summary line when it ends."""

        def __init__(self, total_epochs: int, steps: int, monitor: str):
            super().__init__()
            self.total, self.steps, self.monitor, self.bar = total_epochs, steps, monitor, None

        def on_epoch_begin(self, epoch, logs=None):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.total}", unit="batch",
                            leave=False)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()
            logs = logs or {}
            shown = ", ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "val_loss", "dice_fg", "val_dice_fg")
                              if k in logs)
            logger.info("epoch %d/%d: %s", epoch + 1, self.total, shown)

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

        def on_epoch_end(self, epoch, logs=None):  # after AtomicState has added the epoch
            self._call("epoch_end", epoch, dict(logs or {}), self.history)

        def on_train_end(self, logs=None):
            self._call("train_end", self.history)

    return AtomicState, EpochPreviews, EpochProgress, Watch


@dataclasses.dataclass
class TrainResult:
    model_dir: Path
    history: dict[str, list[float]]
    best: float | None
    epochs_done: int
    model: object = None


def _check_metric_names(cfg: Config) -> None:
    logged = {"loss", "dice_fg", *cfg.model.metrics}
    valid = logged | {f"val_{x}" for x in logged}
    bad = [x for x in cfg.train.metrics if x not in valid]
    if bad:
        raise ValueError(f"{cfg.path}: [train] metrics {bad} are not logged; valid: {', '.join(sorted(valid))}")
    if cfg.train.monitor not in valid:
        raise ValueError(f"{cfg.path}: [train] monitor = {cfg.train.monitor!r} is not logged; "
                         f"valid: {', '.join(sorted(valid))}")


def train(cfg: Config, resume: bool = False, progress: bool = True, watch=None,
          extra_callbacks: Sequence = ()) -> TrainResult:
    """Train the FlexUNet of ``cfg`` on its derived dataset.

    Args:
        cfg: the configuration.
        resume: continue the run in ``train.model_dir`` from its last complete epoch up to
            ``train.epochs`` in total (optimizer state, best value and early-stopping
            counter restored).
        progress: headless progress bars (ignored with ``watch``).
        watch: an object told of the run as it goes, such as the notebook's
            :class:`hippo_utils.widgets.LiveTrainingPanel`. It may have any of
            ``train_begin(total_epochs, steps, initial_epoch)``, ``epoch_begin(epoch)``,
            ``batch_end(batch)``, ``epoch_end(epoch, logs, history)``,
            ``show_previews(epoch, update)`` and ``train_end(history)``. A run that is already
            complete still tells it ``train_begin``, the last model's previews and ``train_end``.
        extra_callbacks: more Keras callbacks.

    Raises:
        FileExistsError: ``model_dir`` already holds a run and ``resume`` is off.
        FileNotFoundError / ValueError: missing dataset or bad settings, with the name.
    """
    import keras
    import tensorflow as tf

    from hippo_utils.dataset import make_dataset
    from hippo_utils.model import build_flexunet

    t = cfg.train
    _check_metric_names(cfg)
    model_dir = t.model_dir
    state_path = model_dir / "state.json"
    if state_path.exists() and not resume:
        raise FileExistsError(
            f"{model_dir} already holds a training run ({state_path.name}). Use --resume to continue "
            "it, or choose another [train] model_dir (e.g. --set train.model_dir=runs/new/models); "
            "nothing was deleted")
    if resume and not state_path.exists():
        raise FileNotFoundError(f"{model_dir}: no run to resume (no {state_path.name}); train without --resume")
    set_seed(t.seed)
    train_ds = make_dataset(cfg, "train", repeat=True)  # one iterator for the whole run
    valid_ds = make_dataset(cfg, "valid")
    steps = train_ds.steps

    strategy = tf.distribute.MirroredStrategy() if t.distribute else tf.distribute.get_strategy()
    history: dict[str, list[float]] = {}
    best, initial_epoch, wait, reducer_state = None, 0, 0, None
    with strategy.scope():
        if resume:
            state = _read_state(state_path)
            initial_epoch, best, wait = state["epoch"], state["best"], state.get("early_stopping_wait", 0)
            reducer_state = state.get("reducer")  # absent in runs saved before it was kept
            history = json.loads((model_dir / "history.json").read_text())
            history = {k: v[:initial_epoch] for k, v in history.items()}
            checkpoint = model_dir / state.get("checkpoint", "last.keras")
            model = _load_checkpoint(checkpoint, model_dir)
            logger.info("resuming %s after epoch %d (best %s = %s)", model_dir, initial_epoch, t.monitor, best)
        else:
            model = build_flexunet(cfg.model, seed=t.seed)
            compile_model(model, cfg)
    if cfg.model.show_summary:
        model.summary(print_fn=logger.info)
    model_dir.mkdir(parents=True, exist_ok=True)
    t.eval_dir.mkdir(parents=True, exist_ok=True)
    # The resolved config (absolute paths, --set overrides applied), so the run is self-describing.
    from hippo_utils import __version__

    header = f"; written by hippo_utils {__version__} from {cfg.path}\n"
    atomic_write_text(model_dir / CONFIG_NAME, header + cfg.to_ini())
    AtomicState, EpochPreviews, EpochProgress, Watch = _callbacks_module()
    if watch is not None and hasattr(watch, "train_begin"):
        watch.train_begin(t.epochs, steps, initial_epoch)
    if initial_epoch >= t.epochs:
        logger.info("%s: already trained for %d of %d epochs; nothing to do", model_dir, initial_epoch, t.epochs)
        if watch is not None:  # show the finished run: its last model's previews and its curves
            previews = EpochPreviews(cfg, write_files=False, listeners=_watch_listeners(watch))
            previews.set_model(model)
            previews.on_epoch_end(initial_epoch - 1)
            Watch(watch, history).on_train_end()
        return TrainResult(model_dir, history, best, initial_epoch, model)

    mode = monitor_mode(t.monitor)
    early = keras.callbacks.EarlyStopping(monitor=t.monitor, mode=mode, patience=t.patience)
    callbacks: list = [early]
    reducer = None
    if t.learning_rate_reducer:
        reducer = keras.callbacks.ReduceLROnPlateau(
            monitor=t.monitor, mode=mode, factor=t.reducer_factor, patience=t.reducer_patience, verbose=0)
        callbacks.append(reducer)
    if t.lr_schedule == "cosine":  # a function of the epoch alone, so a resumed run follows it too
        callbacks.append(keras.callbacks.LearningRateScheduler(
            functools.partial(cosine_learning_rate, base=cfg.model.learning_rate, epochs=t.epochs)))
    callbacks.append(AtomicState(cfg, history, best, early, reducer))
    listeners = _watch_listeners(watch)
    if watch is not None:
        callbacks.append(Watch(watch, history))
    elif progress:
        callbacks.append(EpochProgress(t.epochs, steps, t.monitor))
    if t.epoch_change_infer or listeners:
        callbacks.append(EpochPreviews(cfg, write_files=t.epoch_change_infer, listeners=listeners))
    callbacks.extend(extra_callbacks)
    if not resume:
        write_provenance(cfg)
    if resume:  # carry the early-stopping and learning-rate reducer state over the interruption
        early.on_train_begin()
        early.wait, early.best = wait, best if best is not None else early.best
        early.on_train_begin = lambda logs=None: None
        if reducer is not None and reducer_state:
            reducer.on_train_begin()
            reducer.wait, reducer.cooldown_counter = reducer_state["wait"], reducer_state["cooldown"]
            reducer.best = reducer_state["best"]
            reducer.on_train_begin = lambda logs=None: None
    model.fit(train_ds, validation_data=valid_ds, epochs=t.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, callbacks=callbacks, verbose=0, shuffle=False)
    final = json.loads(state_path.read_text())
    return TrainResult(model_dir, history, final["best"], final["epoch"], model)


def _watch_listeners(watch) -> list[Callable[[int, dict], None]]:
    method = getattr(watch, "show_previews", None)
    return [method] if method is not None else []


def link_or_copy(src: Path, dest: Path) -> None:
    """Make ``dest`` the same file as ``src`` (hard link, or a copy where links are not
    supported), replacing it atomically."""
    import shutil

    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def _read_state(state_path: Path) -> dict:
    try:
        state = json.loads(state_path.read_text())
        int(state["epoch"]), state["best"]  # noqa: B018 (the keys a resume needs)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{state_path}: not a training state this version can resume ({exc!r}); "
                         "train into a new [train] model_dir") from None
    return state


def write_provenance(cfg: Config) -> Path:
    """``provenance.json`` in the model folder: what produced the model (package, Python,
    TensorFlow and Keras versions; the config and its checksum; the derived dataset's
    fingerprint and its source files' checksums)."""
    import hashlib
    import platform

    import keras
    import tensorflow as tf

    from hippo_utils import __version__

    text = cfg.to_ini()
    record: dict = {
        "hippo_utils": __version__, "python": platform.python_version(), "tensorflow": tf.__version__,
        "keras": keras.__version__, "config_source": str(cfg.path) if cfg.path else None,
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(), "config": text,
    }
    meta = cfg.train.images_dir.parent.parent / "dataset.json"
    if meta.is_file():
        dataset = json.loads(meta.read_text())
        record["dataset"] = {"dir": str(meta.parent), "fingerprint": dataset.get("fingerprint"),
                             "hippo_utils": dataset.get("hippo_utils_version"),
                             "source_dir": dataset.get("source_dir"),
                             "sources_sha256": dataset.get("sources_sha256")}
    path = cfg.train.model_dir / "provenance.json"
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def _made_by(model_dir: Path) -> str:
    """Which versions wrote a model folder, from its provenance.json, for error messages."""
    import keras

    from hippo_utils import __version__

    try:
        p = json.loads((model_dir / "provenance.json").read_text())
        made = f"written by hippo_utils {p.get('hippo_utils')} with Keras {p.get('keras')}"
    except (OSError, ValueError):
        made = "written by an unknown version (no provenance.json)"
    return f"{made}; this is hippo_utils {__version__} with Keras {keras.__version__}"


def _load_checkpoint(path: Path, model_dir: Path, compile: bool = True):
    import keras

    from hippo_utils.metrics import custom_objects

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the run in {model_dir} cannot be resumed from it")
    try:
        return keras.models.load_model(path, custom_objects=custom_objects(), compile=compile)
    except Exception as exc:  # noqa: BLE001 (Keras raises many kinds; all mean "cannot load")
        raise ValueError(f"{path}: cannot load this checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); it was "
                         f"{_made_by(model_dir)}. Re-train, or use the version that wrote it") from None


def load_trained(model_dir: str | os.PathLike[str], which: str = "best"):
    """The trained model in ``model_dir`` and the config that trained it.

    Args:
        which: ``best`` (the checkpoint of the best epoch) or ``last``.

    Raises:
        FileNotFoundError: no model or config in ``model_dir``.
        ValueError: the weights do not fit the saved config's architecture.
    """

    from hippo_utils.model import build_flexunet

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    cfg_path = model_dir / CONFIG_NAME
    if not cfg_path.is_file():
        others = sorted(p.name for p in model_dir.iterdir() if p.suffix in (".h5", ".keras", ".pb"))
        hint = (f" It holds {', '.join(others[:4])}: a model folder of another tool or of the original "
                "FlexUNet system? hippo_utils needs the folder its own train wrote ([train] model_dir)."
                if others else " Is this a training output folder ([train] model_dir)?")
        raise FileNotFoundError(f"{model_dir}: no {CONFIG_NAME}.{hint}")
    try:
        cfg = load_config(cfg_path)
    except ValueError as exc:
        raise ValueError(f"{exc} ({model_dir} was {_made_by(model_dir)})") from None
    path = {"best": [model_dir / "best.keras", model_dir / "best.weights.h5"],
            "last": [model_dir / "last.keras"]}[which]
    found = next((p for p in path if p.exists()), None)
    if found is None:
        raise FileNotFoundError(f"{model_dir}: no {' or '.join(p.name for p in path)}")
    if found.suffix == ".keras":
        model = _load_checkpoint(found, model_dir, compile=False)
    else:
        model = build_flexunet(cfg.model)
        # Keras may skip layers it cannot match with only a warning, leaving them random:
        # any skipped layer is an error here.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.load_weights(str(found))
            except ValueError as exc:
                raise ValueError(f"{found}: these weights do not fit the model built from {cfg_path} "
                                 f"({str(exc).splitlines()[0]}); the folder was {_made_by(model_dir)}") from None
            except OSError as exc:
                raise ValueError(f"{found}: not a readable weights file ({exc}); the folder was "
                                 f"{_made_by(model_dir)}") from None
        skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)
                   or "freshly-initialized" in str(w.message)]
        if skipped:
            raise ValueError(f"{found}: these weights do not fit the model built from {cfg_path}: "
                             f"{len(skipped)} parts could not be matched (e.g. {skipped[0][:120]})")
    return model, cfg


def ensure_trained(cfg: Config, watch=None) -> Path:
    """``[train] model_dir`` with a trained model, training it first when there is none
    (so that notebooks after 03 also run on their own). An unfinished run is continued."""
    state = cfg.train.model_dir / "state.json"
    if state.exists() and json.loads(state.read_text())["epoch"] >= cfg.train.epochs:
        return cfg.train.model_dir
    logger.warning("no finished model in %s: training it now", cfg.train.model_dir)
    train(cfg, resume=state.exists(), watch=watch)
    return cfg.train.model_dir
