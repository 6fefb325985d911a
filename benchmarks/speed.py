"""Speed measurements, printed as figures. Run from the repository root:

    python benchmarks/speed.py inference [--config configs/demo.config] [--volumes 4]
    python benchmarks/speed.py viewer

inference: whole-volume inference end to end (load, pre-process, predict, reassemble,
write NIfTI) against the pure batched forward pass over the same slices, per stage.
viewer: the slice viewer's time per slider move (render and PNG encoding), median of 50.
The model's weights do not change its speed, so an untrained FlexUNet of the config
is used unless --model-dir names a trained one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hippo_utils import load_config  # noqa: E402


def _volumes(cfg, n: int) -> list[Path]:
    from hippo_utils.data import ensure_synthetic

    src = ensure_synthetic(cfg)
    files = sorted((src / "Train").glob("*.img"))[:n]
    if len(files) < n:
        raise SystemExit(f"only {len(files)} volumes in {src}")
    return files


def bench_inference(args) -> None:
    from hippo_utils.inference import _as_model_input, classes_to_labels, infer_volume, keep_largest, predict_batches
    from hippo_utils.model import build_flexunet
    from hippo_utils.preprocess import classes_from_probs, normalize_intensity, slice_geometry
    from hippo_utils.trainer import load_trained
    from hippo_utils.volumes import load_volume, save_nifti

    cfg = load_config(args.config)
    model = load_trained(args.model_dir)[0] if args.model_dir else build_flexunet(cfg.model)
    files = _volumes(cfg, args.volumes)
    bs = cfg.infer.batch_size
    infer_volume(model, cfg, files[0], tempfile.mkdtemp(), qc=False)  # warm-up: traces the model

    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    slices = 0
    for f in files:
        infer_volume(model, cfg, f, out, qc=False)
        slices += load_volume(f).shape[slice_geometry(load_volume(f), cfg.derive.plane, cfg.image_size).axis]
    end_to_end = time.perf_counter() - t0

    stages = dict.fromkeys(("load", "pre-process", "predict", "reassemble", "write"), 0.0)
    inputs_all = []
    for f in files:
        t = time.perf_counter()
        vol = load_volume(f)
        stages["load"] += time.perf_counter() - t
        t = time.perf_counter()
        geom = slice_geometry(vol, cfg.derive.plane, cfg.image_size)
        norm = geom.orient(normalize_intensity(vol, cfg.derive.intensity_percentiles))
        x = _as_model_input(np.stack([geom.to_model(s) for s in norm]), cfg.model.image_channels)
        stages["pre-process"] += time.perf_counter() - t
        inputs_all.append(x)
        t = time.perf_counter()
        probs = predict_batches(model, x, bs)
        stages["predict"] += time.perf_counter() - t
        t = time.perf_counter()
        classes = geom.unorient(np.stack([classes_from_probs(geom, p) for p in probs]))
        labels = classes_to_labels(keep_largest(classes, cfg.infer.keep_largest_components), cfg, vol)
        stages["reassemble"] += time.perf_counter() - t
        t = time.perf_counter()
        save_nifti(labels, vol.affine, out / "stage.nii.gz", vol.header)
        stages["write"] += time.perf_counter() - t

    x = np.concatenate(inputs_all)
    t = time.perf_counter()
    predict_batches(model, x, bs)
    forward = time.perf_counter() - t

    print(f"inference benchmark: {len(files)} volumes, {slices} slices, model {cfg.image_size}, batch {bs}, "
          f"{os.cpu_count()} CPU cores")
    print(f"  end to end          {end_to_end:7.2f} s  = {end_to_end / len(files):.2f} s per volume, "
          f"{slices / end_to_end:.1f} slices/s")
    print(f"  pure forward pass   {forward:7.2f} s  = {slices / forward:.1f} slices/s")
    print(f"  ratio end-to-end / forward = {end_to_end / forward:.2f}")
    total = sum(stages.values())
    print("  stages: " + ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in stages.items()))


def bench_viewer(args) -> None:
    from hippo_utils.data import ensure_synthetic
    from hippo_utils.viewer import SliceViewer

    cfg = load_config(args.config)
    src = ensure_synthetic(cfg)
    image = sorted((src / "Train").glob("*.img"))[0]
    label = src / "Train" / "Labels" / f"{image.stem}_Hipp_Labels.img"
    viewer = SliceViewer(image, label=label, prediction=label, rgb_map=cfg.mask.rgb_map)
    print(f"slice viewer, {image.name} {viewer.volume.shape}, display {viewer.display_shape()} px:")
    for mode in ("overlay", "side by side", "contour"):
        viewer.mode.value = mode
        for plane in ("coronal", "axial", "sagittal"):
            viewer.plane.value = plane
            print(f"  {mode:12s} {plane:9s} median {viewer.time_updates(50):5.1f} ms per slider move (50 moves)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["inference", "viewer"])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--model-dir", help="a trained model (default: an untrained one of the config)")
    parser.add_argument("--volumes", type=int, default=4)
    args = parser.parse_args()
    {"inference": bench_inference, "viewer": bench_viewer}[args.what](args)


if __name__ == "__main__":
    main()
