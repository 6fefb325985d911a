"""Choosing the source data: the user's real data first, then a download, then the
embedded synthetic set, and saying plainly which one is used."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from hippo_utils.config import Config
from hippo_utils.layouts import detect_layout
from hippo_utils.synthetic import GENERATOR_VERSION, synthesize

logger = logging.getLogger(__name__)

KAGGLE_DATASET = "andrewmvd/hippocampus-segmentation-in-mri-images"


@dataclass(frozen=True)
class DataSource:
    path: Path
    kind: str  # "user", "config", "kaggle" or "synthetic"
    message: str


def _online(host: str = "www.kaggle.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def ensure_synthetic(cfg: Config, dest: str | os.PathLike[str] | None = None) -> Path:
    """Make the synthetic set of ``cfg.synthetic`` at ``dest`` unless it is already there.

    An existing folder made with the same parameters is reused; one made with other
    parameters is an error (nothing the user has is overwritten).
    """
    dest = Path(dest or cfg.derive.source_dir or "synthetic_hfh")
    params = {"n_labelled": cfg.synthetic.n_labelled, "n_unlabelled": cfg.synthetic.n_unlabelled,
              "seed": cfg.synthetic.seed, "atrophy_fraction": cfg.synthetic.atrophy_fraction,
              "generator": GENERATOR_VERSION}
    stamp = dest / "synthetic.json"
    if dest.exists():
        made = json.loads(stamp.read_text()) if stamp.is_file() else None
        if made == params:
            return dest
        if made is not None and made.get("generator", 1) != GENERATOR_VERSION:
            raise FileExistsError(
                f"{dest} was made by version {made.get('generator', 1)} of the synthetic generator; this is "
                f"version {GENERATOR_VERSION}, which draws other subjects. Remove {dest} (and the datasets "
                "derived from it) to make the new one, or point [derive] source_dir elsewhere")
        raise FileExistsError(f"{dest} exists but was not made by `synthesize` with {params}; "
                              "choose another folder or remove it")
    synthesize(dest, n_labelled=params["n_labelled"], n_unlabelled=params["n_unlabelled"],
               seed=params["seed"], atrophy_fraction=params["atrophy_fraction"])
    return dest


def resolve_source(cfg: Config, data_dir: str | None = None, allow_download: bool = True) -> DataSource:
    """Pick the volumes to derive from.

    Order: ``data_dir`` (default: the ``HIPPO_DATA_DIR`` environment variable) when it
    holds a known layout; else [derive] source_dir when it is a folder of real data (not
    one the generator made); else a kagglehub download when kagglehub is installed and
    the network answers; else the synthetic set at [derive] source_dir (made if missing).

    Raises:
        ValueError / FileNotFoundError: ``data_dir`` is given but unusable (it is never
            silently replaced by synthetic data).
    """
    data_dir = data_dir if data_dir is not None else os.environ.get("HIPPO_DATA_DIR") or None
    if data_dir:
        path = Path(data_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"HIPPO_DATA_DIR={data_dir}: folder not found")
        layout = detect_layout(path)
        return DataSource(path, "user", f"Using your data in {path} ({layout} layout).")
    configured = cfg.derive.source_dir
    if configured is not None and configured.is_dir() and not (configured / "synthetic.json").is_file():
        layout = detect_layout(configured)  # an unknown layout is an error naming the folder
        return DataSource(configured, "config", f"Using [derive] source_dir {configured} ({layout} layout).")
    if allow_download:
        try:
            import kagglehub  # optional: pip install kagglehub
        except ImportError:
            kagglehub = None
        if kagglehub is not None and _online():
            try:
                path = Path(kagglehub.dataset_download(KAGGLE_DATASET))
                return DataSource(path, "kaggle", f"Downloaded the Kaggle HFH data to {path}.")
            except Exception as exc:  # any download failure falls back; it is reported
                logger.warning("kagglehub download failed (%s); using synthetic data", exc)
    path = ensure_synthetic(cfg)
    return DataSource(path, "synthetic",
                      f"No real data found (HIPPO_DATA_DIR is unset, no download): using the "
                      f"SYNTHETIC HFH-like set in {path}. It is made by hippo_utils, not real patients.")


def ensure_dataset(cfg: Config, data_dir: str | None = None) -> Path:
    """The derived dataset of ``cfg``, derived first if it is missing.

    Lets any notebook run on its own, or out of order: when notebook 01 has not run,
    the data is chosen as there (your data, a download, or the synthetic set). A dataset
    that is there is checked against ``cfg`` (from the source it was derived from): one
    derived with other settings is refused, never used as if it were this config's.

    Raises:
        FileExistsError: the dataset there was derived with other settings or sources.
    """
    import dataclasses

    from hippo_utils.derive import derive_dataset, read_dataset_meta

    out = cfg.derive.output_dir
    if (out / "dataset.json").is_file():
        made_from = Path(read_dataset_meta(out).get("source_dir") or cfg.derive.source_dir)
        layout = cfg.derive.layout if made_from == cfg.derive.source_dir else "auto"  # as it was derived
        derive_dataset(dataclasses.replace(cfg, derive=dataclasses.replace(cfg.derive, source_dir=made_from,
                                                                           layout=layout)),
                       progress=False)  # up to date: nothing is written
        return out
    source = resolve_source(cfg, data_dir)
    logger.warning("%s", source.message)
    layout = cfg.derive.layout if source.path == cfg.derive.source_dir else "auto"
    derive_dataset(dataclasses.replace(cfg, derive=dataclasses.replace(
        cfg.derive, source_dir=source.path, layout=layout)))
    return out
