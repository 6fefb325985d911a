"""Choosing the source data, as the learner says, and saying plainly which one is used.

``HIPPO_DATA`` (or the ``data`` argument, or ``derive --data``) names it:

    (unset)      the config's [derive] source_dir: the data there, or, for an HFH-like config
                 whose folder does not exist yet, the synthetic set made there (offline)
    synthetic    the synthetic HFH-like set at [derive] source_dir, made if missing
    msd-task04   the Medical Segmentation Decathlon's Task04 hippocampus crops, downloaded once
                 into the cache with a verified checksum (:mod:`hippo_utils.data.download`)
    kaggle-hfh   the Kaggle HFH data, through ``kagglehub`` (``pip install kagglehub``)
    a folder     your data, in any layout :func:`~hippo_utils.data.layouts.find_subjects` reads

Nothing switches silently: a source that is asked for and cannot be had is an error that says
why, never replaced by another. ``HIPPO_DATA_DIR`` (a folder) is the older name of ``HIPPO_DATA``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hippo_utils.core.config import Config
from hippo_utils.data.layouts import detect_layout
from hippo_utils.data.synthetic import GENERATOR_VERSION, synthesize

logger = logging.getLogger(__name__)

KAGGLE_DATASET = "andrewmvd/hippocampus-segmentation-in-mri-images"
NAMED_SOURCES = ("synthetic", "msd-task04", "kaggle-hfh")


@dataclass(frozen=True)
class DataSource:
    path: Path
    kind: str  # "user", "config", "synthetic", "msd-task04" or "kaggle-hfh"
    message: str


def chosen_source(data: str | None = None) -> str | None:
    """The source asked for: ``data``, else ``$HIPPO_DATA``, else ``$HIPPO_DATA_DIR``; None: the config's."""
    for value in (data, os.environ.get("HIPPO_DATA"), os.environ.get("HIPPO_DATA_DIR")):
        if value:
            return value
    return None


def _makes_synthetic(cfg: Config) -> bool:
    """Whether [derive] source_dir is the synthetic set's place: made by ``synthesize``, or not
    there yet for a config that says how to make it (a [synthetic] section, as the demo and CI
    configs have; hfh_512's folder is for the real Kaggle data)."""
    folder = cfg.derive.source_dir
    if folder is None or (folder / "synthetic.json").is_file():
        return True
    return not folder.exists() and "synthetic" in cfg.sections_present


def _kaggle_hfh() -> Path:
    try:
        import kagglehub  # optional: pip install kagglehub (Colab has it)
    except ModuleNotFoundError as exc:
        if exc.name != "kagglehub":
            raise  # kagglehub is there but broken: its own error says why
        raise ModuleNotFoundError(
            "HIPPO_DATA=kaggle-hfh needs kagglehub: pip install kagglehub (and a Kaggle "
            "account's API token), or download the data yourself and set HIPPO_DATA to "
            "its folder"
        ) from None
    try:
        return Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as exc:  # noqa: BLE001 (kagglehub raises many kinds; all mean "not downloaded")
        raise ConnectionError(
            f"HIPPO_DATA=kaggle-hfh: kagglehub could not download {KAGGLE_DATASET} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            "download it yourself and set HIPPO_DATA to its folder"
        ) from None


def resolve_source(cfg: Config, data: str | None = None, allow_download: bool = True) -> DataSource:
    """The volumes to derive from: the source named by ``data`` (default ``$HIPPO_DATA``; see
    the module docstring), else the config's own.

    Raises:
        ValueError / FileNotFoundError: the named source, or the config's folder, is unusable;
            it is never silently replaced by another.
        ConnectionError / ModuleNotFoundError: a download was asked for and cannot be made
            (offline, ``allow_download`` off, kagglehub missing).
    """
    choice = chosen_source(data)
    if choice in ("msd-task04", "kaggle-hfh"):
        if not allow_download:
            raise ConnectionError(f"HIPPO_DATA={choice}: downloads are off here; set HIPPO_DATA to a folder")
        if choice == "kaggle-hfh":
            path = _kaggle_hfh()
            return DataSource(path, choice, f"Using the real Kaggle HFH data in {path} (kagglehub).")
        from hippo_utils.data.download import MSD_TASK04, fetch

        path = fetch(MSD_TASK04)
        return DataSource(
            path, choice, f"Using the real MSD Task04 hippocampus crops in {path} ({MSD_TASK04.citation})."
        )
    makes_synthetic = choice in ("synthetic", None) and _makes_synthetic(cfg)
    if choice == "synthetic" and not makes_synthetic:
        raise ValueError(
            f"HIPPO_DATA=synthetic: {cfg.path} reads [derive] source_dir = {cfg.derive.source_dir}, "
            "which is not the synthetic set's place; the synthetic set is HFH-like and goes with "
            "the configs that have a [synthetic] section (demo, ci)"
        )
    if makes_synthetic:
        path = ensure_synthetic(cfg)
        return DataSource(
            path,
            "synthetic",
            f"Using the SYNTHETIC HFH-like set in {path}: made by hippo_utils, "
            "not real patients (set HIPPO_DATA to use another source).",
        )
    if choice is not None:  # a folder
        path = Path(choice).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"HIPPO_DATA={choice}: no such folder; name a folder of your data, or one of {', '.join(NAMED_SOURCES)}"
            )
        layout = detect_layout(path)
        return DataSource(path, "user", f"Using your data in {path} ({layout} layout).")
    configured = cfg.derive.source_dir
    if configured is None or not configured.is_dir():
        hint = " (an environment variable in it is not set)" if "$" in str(configured) else ""
        raise FileNotFoundError(
            f"{cfg.path}: [derive] source_dir = {configured} is not a folder{hint}; set "
            f"HIPPO_DATA to a folder of data, or to one of {', '.join(NAMED_SOURCES)}"
        )
    layout = detect_layout(configured)  # an unknown layout is an error naming the folder
    return DataSource(configured, "config", f"Using [derive] source_dir {configured} ({layout} layout).")


def ensure_synthetic(cfg: Config, dest: str | os.PathLike[str] | None = None) -> Path:
    """Make the synthetic set of ``cfg.synthetic`` at ``dest`` unless it is already there.

    An existing folder made with the same parameters is reused; one made with other
    parameters is an error (nothing the user has is overwritten).
    """
    dest = Path(dest or cfg.derive.source_dir or "synthetic_hfh")
    params = {
        "n_labelled": cfg.synthetic.n_labelled,
        "n_unlabelled": cfg.synthetic.n_unlabelled,
        "seed": cfg.synthetic.seed,
        "atrophy_fraction": cfg.synthetic.atrophy_fraction,
        "generator": GENERATOR_VERSION,
    }
    stamp = dest / "synthetic.json"
    if dest.exists():
        made = json.loads(stamp.read_text()) if stamp.is_file() else None
        if made == params:
            return dest
        if made is not None and made.get("generator", 1) != GENERATOR_VERSION:
            raise FileExistsError(
                f"{dest} was made by version {made.get('generator', 1)} of the synthetic generator; this is "
                f"version {GENERATOR_VERSION}, which draws other subjects. Remove {dest} (and the datasets "
                "derived from it) to make the new one, or point [derive] source_dir elsewhere"
            )
        raise FileExistsError(
            f"{dest} exists but was not made by `synthesize` with {params}; choose another folder or remove it"
        )
    synthesize(
        dest,
        n_labelled=params["n_labelled"],
        n_unlabelled=params["n_unlabelled"],
        seed=params["seed"],
        atrophy_fraction=params["atrophy_fraction"],
    )
    return dest


def _named_path(cfg: Config, choice: str | None) -> Path | None:
    """Where the named source lies, found without making or fetching it (None: nothing named,
    or kaggle-hfh, whose folder only kagglehub knows: a path under its handle is taken as it)."""
    if choice is None or choice == "kaggle-hfh":
        return None
    if choice == "synthetic":
        return cfg.derive.source_dir
    if choice == "msd-task04":
        from hippo_utils.data.download import MSD_TASK04, cache_dir

        return cache_dir() / MSD_TASK04.folder
    return Path(choice).expanduser()


def with_source(cfg: Config, source_dir: Path) -> Config:
    """``cfg`` deriving from ``source_dir``: in its [derive] layout when that is the config's own
    folder, else in the layout the folder is found to have."""
    import dataclasses

    layout = cfg.derive.layout if source_dir == cfg.derive.source_dir else "auto"
    return dataclasses.replace(cfg, derive=dataclasses.replace(cfg.derive, source_dir=source_dir, layout=layout))


def ensure_dataset(cfg: Config, data: str | None = None) -> Path:
    """The derived dataset of ``cfg``, derived first if it is missing.

    Lets any notebook run on its own, or out of order: when notebook 01 has not run,
    the data is chosen as there (``data``, default ``$HIPPO_DATA``, else the config's). A
    dataset that is there is checked against ``cfg`` (from the source it was derived from):
    one derived with other settings, or from another source than the one ``HIPPO_DATA``
    names now, is refused, never used as if it were this config's.

    Raises:
        FileExistsError: the dataset there was derived with other settings or sources.
    """

    from hippo_utils.data.derive import derive_dataset, read_dataset_meta

    out = cfg.derive.output_dir
    if (out / "dataset.json").is_file():
        made_from = Path(read_dataset_meta(out).get("source_dir") or cfg.derive.source_dir)
        choice = chosen_source(data)
        named = _named_path(cfg, choice)
        kaggle_elsewhere = choice == "kaggle-hfh" and KAGGLE_DATASET not in made_from.as_posix()
        if kaggle_elsewhere or (named is not None and named.resolve() != made_from.resolve()):
            raise FileExistsError(
                f"{out} was derived from {made_from}, but HIPPO_DATA names {named or choice}: "
                "derive into another [derive] output_dir (--set derive.output_dir=...), "
                "or unset HIPPO_DATA to go on with this dataset; nothing was changed"
            )
        derive_dataset(with_source(cfg, made_from), progress=False)  # as it was derived: up to date, nothing written
        return out
    source = resolve_source(cfg, data)
    logger.warning("%s", source.message)
    derive_dataset(with_source(cfg, source.path))
    return out
