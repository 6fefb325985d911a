"""Write the README's gallery from a real run: small PNGs in docs/figures/.

    python docs/make_figures.py                      # demo config -> docs/figures/
    python docs/make_figures.py --config configs/ci.config --out /tmp/figures

Derives the dataset and trains the model of the config where they are missing (the demo:
about 6 minutes on 2 CPU cores), then draws each figure from that run's own outputs.
With ``--msd-metrics`` (the ``metrics.csv`` of ``infer-volume --labels`` on held-out MSD
Task04 subjects, as benchmarks/accuracy_msd.py writes it) it also draws the real-data
result per subject.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# name -> what it shows (the README's captions come from here too)
FIGURES = {
    "derived_slices.png": "derived coronal training slices with their hippocampus masks",
    "epoch_previews.png": "the mini_test predictions at the start, middle and end of training, against the truth",
    "dice_curves.png": "the foreground Dice beside the original's background-counting dice_coef_multiclass",
    "volume_prediction.png": "a whole test volume segmented slice by slice, in three planes",
    "slice_viewer.png": "the slice viewer: ground truth (left) and prediction (right) on one coronal slice",
}
MSD_FIGURE = "msd_per_subject.png"


def save_small(fig_or_array, path: Path, max_width: int = 900) -> int:
    """Save a figure, RGB array or PNG as a compact PNG (at most ``max_width`` px, 256 colours)."""
    from hippo_utils.core.files import atomic_write_bytes
    from hippo_utils.display import figures

    if isinstance(fig_or_array, bytes):
        image = Image.open(io.BytesIO(fig_or_array))
    elif isinstance(fig_or_array, np.ndarray):
        image = Image.fromarray(fig_or_array)
    else:
        image = Image.open(io.BytesIO(figures.figure_png(fig_or_array, dpi=72)))
    image = image.convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return len(buf.getvalue())


def msd_figure(metrics_csv: Path):
    """3D Dice per held-out MSD subject, one point each, per label and for the whole."""
    from hippo_utils.display import figures

    with metrics_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c.endswith("_dice")]
    fig = figures.Figure(figsize=(1.5 * len(cols) + 2, 3.4))
    ax = fig.subplots()
    for i, col in enumerate(cols):
        values = np.array([float(r[col]) for r in rows])
        ax.scatter(i + np.linspace(-0.2, 0.2, len(values)), values, s=10, alpha=0.7)
        ax.hlines(values.mean(), i - 0.3, i + 0.3, color="black")
        ax.text(i + 0.32, values.mean(), f"{values.mean():.3f}", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), [c.removesuffix("_dice") for c in cols])
    ax.set_ylabel("3D Dice per subject")
    ax.set_title(f"real MSD Task04, {len(rows)} held-out subjects (line: mean)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def make_figures(config: Path, out: Path, msd_metrics: Path | None = None) -> dict[str, int]:
    """Every figure of the gallery from the run of ``config``; returns name -> bytes."""
    from hippo_utils import load_config
    from hippo_utils.core.backend import import_tensorflow
    from hippo_utils.data.derive import read_manifest, sample_slices
    from hippo_utils.data.sources import ensure_dataset
    from hippo_utils.display import figures
    from hippo_utils.display.viewer import SliceViewer
    from hippo_utils.inference.segment import infer_volume
    from hippo_utils.model.folder import load_model_dir, read_epoch_previews
    from hippo_utils.training.trainer import ensure_trained

    import_tensorflow()  # without its C++ start-up lines
    cfg = load_config(config)
    dataset_dir = ensure_dataset(cfg)
    model_dir = ensure_trained(cfg)
    rows = read_manifest(dataset_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}

    sizes["derived_slices.png"] = save_small(
        figures.sample_grid(sample_slices(dataset_dir, rows, n=5, split="train")), out / "derived_slices.png"
    )

    import json

    history = json.loads((model_dir / "history.json").read_text())
    n = len(history["loss"])
    preview_dir = cfg.train.epoch_change_infer_dir
    names = sorted({p.stem.split("_", 2)[2] for p in preview_dir.glob("Epoch_1_*.png")})[:4]
    fig = figures.epoch_previews(
        read_epoch_previews(
            preview_dir,
            dataset_dir / "mini_test" / "images",
            sorted({1, max(1, n // 2), n}),
            names,
            masks_dir=dataset_dir / "mini_test" / "masks",
        )
    )
    sizes["epoch_previews.png"] = save_small(fig, out / "epoch_previews.png", max_width=640)

    columns = [
        c for c in ("val_dice_fg", "val_dice_coef_multiclass", "dice_fg", "dice_coef_multiclass") if c in history
    ]
    sizes["dice_curves.png"] = save_small(
        figures.history_plot(history, columns, "Dice per epoch"), out / "dice_curves.png", max_width=560
    )

    test = next(r for r in rows if r["split"] == "test")
    model, _ = load_model_dir(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        result = infer_volume(model, cfg, Path(test["source"]), Path(tmp), qc=True)
        sizes["volume_prediction.png"] = save_small(
            np.asarray(Image.open(result.qc_path).convert("RGB")), out / "volume_prediction.png"
        )
        viewer = SliceViewer(
            Path(test["source"]),
            label=Path(test["label_source"]),
            prediction=result.labels_path,
            rgb_map=cfg.mask.rgb_map,
            title=f"test subject {test['subject']}: ground truth (left), prediction (right)",
        )
        viewer.mode.value = "side by side"
        sizes["slice_viewer.png"] = save_small(viewer.snapshot(), out / "slice_viewer.png", max_width=860)
    if msd_metrics is not None:
        sizes[MSD_FIGURE] = save_small(msd_figure(msd_metrics), out / MSD_FIGURE, max_width=560)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.config")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--msd-metrics", type=Path, help="metrics.csv of held-out MSD subjects (optional)")
    args = parser.parse_args(argv)
    sizes = make_figures(args.config, args.out, args.msd_metrics)
    for name, size in sizes.items():
        print(f"{args.out / name}: {size / 1024:.0f} KiB")
    print(f"{len(sizes)} figures, {sum(sizes.values()) / 1024:.0f} KiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
