"""A training run's model folder: what is in it, how an epoch is committed to it, and how a
trained model is loaded from it (by training, evaluation and inference alike).

``[train] model_dir`` holds::

    best.weights.h5 (or best.keras)  the best model by [train] monitor (save_weights_only)
    last.keras                       the last epoch, with optimizer state
    last.eNNN.keras                  the same checkpoint under its epoch's name, for --resume
    state.json                       epochs done, best value, early-stopping counter, checkpoint
    history.json                     every logged value per epoch
    train_eval_infer.config          the config that trained it (resolved)
    provenance.json                  package/TF/Keras versions, config and dataset checksums

``state.json`` is the commit point of an epoch (:func:`commit_epoch`): it is written
(atomically) only after its checkpoint is complete, and names it; the previous epoch's
checkpoint is removed only after that. A run killed at any moment therefore resumes
from a complete checkpoint that matches ``state.json`` and ``history.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from hippo_utils._version import __version__
from hippo_utils.core.config import Config, load_config
from hippo_utils.core.files import atomic_path, atomic_write_text
from hippo_utils.core.ownership import forget_and_remove
from hippo_utils.core.tables import write_json
from hippo_utils.data.derive import read_dataset_meta
from hippo_utils.model.precision import resolve_precision

CONFIG_NAME = "train_eval_infer.config"
STATE_NAME = "state.json"
HISTORY_NAME = "history.json"
PROVENANCE_NAME = "provenance.json"
LAST_NAME = "last.keras"
# The files a run writes under these names (its epoch checkpoints add last.eNNN.keras)
MODEL_FILES = ("best.weights.h5", "best.keras", LAST_NAME, STATE_NAME, HISTORY_NAME, CONFIG_NAME, PROVENANCE_NAME)
# The epoch previews ([train] epoch_change_infer_dir), named as the original system named them.
PREVIEW_PATTERN = re.compile(r"Epoch_(\d+)_(.+)\.png")


# ---------------------------------------------------------------------------- state
def read_state(model_dir: str | os.PathLike[str]) -> dict | None:
    """The committed state of the run in ``model_dir`` (``epoch``, ``best``, ...), or None
    when the folder holds no run.

    Raises:
        ValueError: a state file this version cannot resume from, naming it.
    """
    path = Path(model_dir) / STATE_NAME
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        int(state["epoch"]), state["best"]  # noqa: B018 (the keys a resume needs)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a training state this version can resume ({exc!r}); train into a new [train] model_dir"
        ) from None
    return state


def has_run(model_dir: str | os.PathLike[str]) -> bool:
    """Whether ``model_dir`` holds a training run (finished or not): ``train`` resumes it."""
    return (Path(model_dir) / STATE_NAME).exists()


def epochs_done(model_dir: str | os.PathLike[str]) -> int:
    """How many epochs the run in ``model_dir`` has committed (0 without a run)."""
    state = read_state(model_dir)
    return 0 if state is None else int(state["epoch"])


def read_history(model_dir: str | os.PathLike[str], epochs: int | None = None) -> dict[str, list[float]]:
    """Every logged value per epoch, the first ``epochs`` of them (default all)."""
    path = Path(model_dir) / HISTORY_NAME
    history = json.loads(path.read_text()) if path.is_file() else {}
    return {k: v[:epochs] for k, v in history.items()} if epochs is not None else history


def commit_epoch(
    model_dir: Path, model, epoch: int, history: dict, state: dict, improved: bool, weights_only: bool
) -> None:
    """Write epoch ``epoch`` (0-based) into ``model_dir``: the best model when ``improved``,
    the epoch's checkpoint, the history, then ``state.json`` (the commit), then ``last.keras``;
    older epoch checkpoints go last."""
    if improved:
        best = model_dir / ("best.weights.h5" if weights_only else "best.keras")
        with atomic_path(best) as tmp:
            (model.save_weights if weights_only else model.save)(str(tmp))
    checkpoint = f"last.e{epoch + 1:03d}.keras"
    with atomic_path(model_dir / checkpoint) as tmp:
        model.save(str(tmp))
    write_json(model_dir / HISTORY_NAME, history)
    write_json(model_dir / STATE_NAME, {**state, "epoch": epoch + 1, "checkpoint": checkpoint})  # commit
    link_or_copy(model_dir / checkpoint, model_dir / LAST_NAME)
    for old in model_dir.glob("last.e*.keras"):
        if old.name != checkpoint:
            forget_and_remove(old)  # only the checkpoints this tool wrote


def link_or_copy(src: Path, dest: Path) -> None:
    """Make ``dest`` the same file as ``src`` (hard link, or a copy where links are not
    supported), replacing it atomically."""
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


# ------------------------------------------------------------------------ records
def write_config(cfg: Config) -> Path:
    """The resolved config (absolute paths, --set overrides applied), so the run describes itself."""
    path = cfg.train.model_dir / CONFIG_NAME
    atomic_write_text(path, f"; written by hippo_utils {__version__} from {cfg.path}\n" + cfg.to_ini())
    return path


def write_provenance(cfg: Config, precision=None) -> Path:
    """``provenance.json`` in the model folder: what produced the model (package, Python,
    TensorFlow and Keras versions; the config and its checksum; the derived dataset's
    fingerprint and its source files' checksums; the precision it trains in)."""
    import keras
    import tensorflow as tf

    text = cfg.to_ini()
    record: dict = {
        "hippo_utils": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "config_source": str(cfg.path) if cfg.path else None,
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "config": text,
        **({"precision": precision.as_record()} if precision is not None else {}),
    }
    dataset_dir = _dataset_dir(cfg)
    if (dataset_dir / "dataset.json").is_file():
        dataset = read_dataset_meta(dataset_dir)
        record["dataset"] = {
            "dir": str(dataset_dir),
            "fingerprint": dataset.get("fingerprint"),
            "hippo_utils": dataset.get("hippo_utils_version"),
            "source_dir": dataset.get("source_dir"),
            "sources_sha256": dataset.get("sources_sha256"),
        }
    return write_json(cfg.train.model_dir / PROVENANCE_NAME, record)


def read_provenance(model_dir: str | os.PathLike[str]) -> dict | None:
    """The folder's ``provenance.json``, or None where there is none."""
    path = Path(model_dir) / PROVENANCE_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _dataset_dir(cfg: Config) -> Path:
    """The derived dataset a config trains on: the folder above its ``[train] images_dir``."""
    return cfg.train.images_dir.parent.parent


def check_same_dataset(model_dir: str | os.PathLike[str], cfg: Config, doing: str) -> None:
    """Refuse to ``doing`` (evaluate, resume) the model of ``model_dir`` with the dataset of
    ``cfg`` when it is another than the one the model was trained on: a test subject of one
    split may be a training subject of another, and its scores would be inflated without a word.

    Raises:
        ValueError: the fingerprints differ, naming both folders.
    """
    then = ((read_provenance(model_dir) or {}).get("dataset") or {}).get("fingerprint")
    dataset_dir = _dataset_dir(cfg)
    try:
        now = read_dataset_meta(dataset_dir).get("fingerprint")
    except (OSError, ValueError):
        return
    if then and now and then != now:
        raise ValueError(
            f"{model_dir} was trained on a dataset of fingerprint {then}, and {dataset_dir} is "
            f"{now} (other subjects, split or settings); {doing} it with the dataset it was "
            "trained on, or train a new model on this one"
        )


def made_by(model_dir: Path) -> str:
    """Which versions wrote a model folder, from its provenance.json, for error messages."""
    import keras

    try:
        p = read_provenance(model_dir) or {}
        made = (
            f"written by hippo_utils {p.get('hippo_utils')} with Keras {p.get('keras')}"
            if p
            else "written by an unknown version (no provenance.json)"
        )
    except (OSError, ValueError):
        made = "written by an unknown version (unreadable provenance.json)"
    return f"{made}; this is hippo_utils {__version__} with Keras {keras.__version__}"


# ---------------------------------------------------------------------------- loading
def load_checkpoint(path: Path, model_dir: Path, compile: bool = True):
    """A saved ``.keras`` model of the run in ``model_dir``; a clear error when it cannot load."""
    import keras

    from hippo_utils.model.losses import custom_objects

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the run in {model_dir} cannot be resumed from it")
    try:
        return keras.models.load_model(path, custom_objects=custom_objects(), compile=compile)
    except Exception as exc:  # noqa: BLE001 (Keras raises many kinds; all mean "cannot load")
        raise ValueError(
            f"{path}: cannot load this checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); it was "
            f"{made_by(model_dir)}. Re-train, or use the version that wrote it"
        ) from None


def load_model_config(model_dir: str | os.PathLike[str], overrides=()) -> Config:
    """The config that trained the model in ``model_dir`` (``overrides`` as in :func:`load_config`).

    Raises:
        FileNotFoundError: not a model folder of this package, with what it holds.
        ValueError: a config this version cannot read, with the versions that wrote it.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    cfg_path = model_dir / CONFIG_NAME
    if not cfg_path.is_file():
        others = sorted(p.name for p in model_dir.iterdir() if p.suffix in (".h5", ".keras", ".pb"))
        hint = (
            f" It holds {', '.join(others[:4])}: a model folder of another tool or of the original "
            "FlexUNet system? hippo_utils needs the folder its own train wrote ([train] model_dir)."
            if others
            else " Is this a training output folder ([train] model_dir)?"
        )
        raise FileNotFoundError(f"{model_dir}: no {CONFIG_NAME}.{hint}")
    try:
        return load_config(cfg_path, list(overrides))
    except ValueError as exc:
        if str(exc).startswith("--set") or (read_provenance(model_dir) or {}).get("hippo_utils") == __version__:
            raise  # the value given, or this version's own folder: the versions explain nothing
        raise ValueError(f"{exc} ({model_dir} was {made_by(model_dir)})") from None


def load_model_dir(model_dir: str | os.PathLike[str], which: str = "best"):
    """The trained model in ``model_dir`` and the config that trained it.

    Args:
        which: ``best`` (the checkpoint of the best epoch) or ``last``.

    Raises:
        FileNotFoundError: no model or config in ``model_dir``.
        ValueError: the weights do not fit the saved config's architecture.
    """
    from hippo_utils.model.flexunet import build_flexunet

    model_dir = Path(model_dir)
    cfg = load_model_config(model_dir)
    cfg_path = model_dir / CONFIG_NAME
    path = {"best": [model_dir / "best.keras", model_dir / "best.weights.h5"], "last": [model_dir / LAST_NAME]}[which]
    found = next((p for p in path if p.exists()), None)
    if found is None:
        raise FileNotFoundError(f"{model_dir}: no {' or '.join(p.name for p in path)}")
    if found.suffix == ".keras":
        return load_checkpoint(found, model_dir, compile=False), cfg
    model = build_flexunet(cfg.model, dtype_policy=resolve_precision(cfg.train.mixed_precision).policy)
    # Keras may skip layers it cannot match with only a warning, leaving them random:
    # any skipped layer is an error here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(found))
        except ValueError as exc:
            raise ValueError(
                f"{found}: these weights do not fit the model built from {cfg_path} "
                f"({str(exc).splitlines()[0]}); the folder was {made_by(model_dir)}"
            ) from None
        except OSError as exc:
            raise ValueError(
                f"{found}: not a readable weights file ({exc}); the folder was {made_by(model_dir)}"
            ) from None
    skipped = [
        str(w.message) for w in caught if "Skipping" in str(w.message) or "freshly-initialized" in str(w.message)
    ]
    if skipped:
        raise ValueError(
            f"{found}: these weights do not fit the model built from {cfg_path}: "
            f"{len(skipped)} parts could not be matched (e.g. {skipped[0][:120]})"
        )
    return model, cfg


# ------------------------------------------------------------------- epoch previews
def preview_path(preview_dir: str | os.PathLike[str], epoch: int, name: str) -> Path:
    """The file of slice ``name``'s predicted mask after epoch ``epoch`` (1-based)."""
    return Path(preview_dir) / f"Epoch_{epoch}_{name}.png"


def preview_names(preview_dir: str | os.PathLike[str]) -> list[str]:
    """The slices that have epoch previews in ``preview_dir``, sorted."""
    found = (PREVIEW_PATTERN.fullmatch(p.name) for p in Path(preview_dir).glob("Epoch_*.png"))
    return sorted({m.group(2) for m in found if m})


def read_epoch_previews(
    preview_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    epochs: Sequence[int],
    names: Sequence[str] | None = None,
    masks_dir: str | os.PathLike[str] | None = None,
):
    """The ``Epoch_{n}_{name}.png`` predictions saved after ``epochs``, with their slices
    from ``images_dir`` (``DATASET/split/images``) and, with ``masks_dir``, their masks;
    ``names``: the slices (default: every slice with previews). For
    :func:`hippo_utils.display.figures.epoch_previews`.

    Raises:
        FileNotFoundError: no previews (trained without [train] epoch_change_infer).
    """
    from hippo_utils.core.png import read_grey, read_rgb
    from hippo_utils.data.derive import dataset_plane
    from hippo_utils.display.figures import EpochPreviews

    preview_dir, images_dir = Path(preview_dir), Path(images_dir)
    names = preview_names(preview_dir) if names is None else list(names)
    if not names:
        raise FileNotFoundError(f"{preview_dir}: no epoch previews (train with [train] epoch_change_infer = True)")
    grey = [read_grey(images_dir / f"{name}.png") for name in names]
    return EpochPreviews(
        names,
        list(epochs),
        grey,
        [[read_rgb(preview_path(preview_dir, e, name)) for e in epochs] for name in names],
        [read_rgb(Path(masks_dir) / f"{name}.png") for name in names] if masks_dir else None,
        dataset_plane(images_dir.parent.parent),
    )
