"""A 3D U-Net on the whole MSD Task04 crops, in about the 2D model's training time (issue 19).

    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_3d [--minutes 22] \
        [--compare runs/msd_bench/models] [--save runs/msd_3d]
    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_3d --load runs/msd_3d \
        --compare runs/msd_bench/models          # score saved probabilities again, no training

The question it answers: does a network that sees the whole long axis at once, as nnU-Net's
3D network does, place the anterior/posterior boundary better than the 2D FlexUNet, in about
the same training time? It trains a plain 3D U-Net: ``--levels`` resolution levels counting
the bottom one (so ``levels - 1`` poolings), two 3x3x3 ReLU convolutions each, ``--filters``
base filters doubling per level, 2x2x2 max-pooling and transposed convolutions; mixed
bfloat16 by default (float32 weights, bfloat16 arithmetic), which a CPU with AVX512-BF16 runs
about twice as fast. nnU-Net's network differs: instance normalisation, leaky ReLU, deep
supervision, SGD, and rotation, scaling and elastic deformation in training.

Training runs for ``--minutes`` of wall time (the validation passes every ``--every`` epochs
included; the last epoch may end past it) on the training subjects of the MSD derivation
(``dataset.json`` of ``configs/msd_task04.config``: the same 146 / 31 / 31 subjects as
``accuracy_msd.py``). Each example is a ``--patch`` box (40x56x40 voxels, nnU-Net's patch
for this task, about the size of a whole crop) centred on the crop and moved by up to 4
voxels along each axis; with ``[augment] enabled``, the crop's brightness and contrast are
changed as the 2D config's (before the zero padding) and it is mirrored across array axis 2
half the time (``hflip``); no rotation or scaling. Adam; the learning rate falls from
``--learning-rate`` as ``(1 - elapsed/minutes)**0.9`` (a "poly" schedule), set at the start
of each epoch. Loss: cross-entropy + foreground soft Dice. Inference runs on each whole volume
(zero-padded to a multiple of the pooling), averaged with its mirror across axis 2, and keeps
the largest connected component of each class.

It prints the validation Dice every ``--every`` epochs and, at the end, for the validation and
test subjects: the anterior, posterior, mean (with its 95% bootstrap interval over subjects)
and whole-hippocampus Dice, and how far the predicted anterior/posterior boundary lies from
the true one (``msd_boundary.py``'s measure, in axis-1 slices). ``--compare MODEL_DIR`` also
scores a trained 2D model folder (its config's flip TTA and slice smoothing), the average of
the two models' probabilities, and how often the two put the boundary on the same wrong
slice, against chance (the same count with the subjects paired at random). ``--save DIR``
writes the 3D model's probabilities (``valid_3d.npz``, ``test_3d.npz``, one array per
subject name); ``--load DIR`` scores them instead of training. Figures only; what they
showed is in RESULTS.md (rows 18-18b).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, bootstrap_ci
from benchmarks.experiments.msd_boundary import first_anterior_slice
from benchmarks.experiments.msd_refine3d import ce_dice, unet3d
from hippo_utils.core.config import load_config
from hippo_utils.data.components import keep_largest
from hippo_utils.data.preprocess import normalize_intensity
from hippo_utils.data.volumes import load_labels, load_volume
from hippo_utils.model.metrics import dice_score

CONFIG = ROOT / "configs" / "msd_task04.config"


def load_split(cfg) -> dict[str, list[tuple[str, object, np.ndarray, np.ndarray]]]:
    """(name, volume, image scaled to 0..1, labels) of every subject of the derivation, by split."""
    listing = Path(cfg.derive.output_dir) / "dataset.json"
    if not listing.exists():
        raise SystemExit(
            f"{listing}: no MSD derivation; run `python -m hippo_utils derive {CONFIG}` "
            "(or benchmarks/accuracy_msd.py) first"
        )
    source = Path(cfg.derive.source_dir)
    out: dict[str, list] = {}
    for split, names in json.loads(listing.read_text())["subjects"].items():
        out[split] = []
        for name in names:
            volume = load_volume(source / "images" / f"{name}.nii.gz")
            labels = load_labels(source / "labels" / f"{name}.nii.gz", like=volume).astype(np.uint8)
            image = normalize_intensity(volume, cfg.derive.intensity_percentiles).astype(np.float32)
            out[split].append((name, volume, image, labels))
    return out


def pad_to(arr: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``arr`` centred in a zero array of ``shape`` (each side at least as large), and where it lies."""
    out = np.zeros(shape, arr.dtype)
    where = tuple(slice((t - s) // 2, (t - s) // 2 + s) for s, t in zip(arr.shape, shape, strict=True))
    out[where] = arr
    return out, where


def scores(truths: list[np.ndarray], probs: list[np.ndarray]) -> np.ndarray:
    """Per subject: anterior, posterior and whole Dice, and the boundary's offset in slices."""
    rows = []
    for truth, p in zip(truths, probs, strict=True):
        classes = keep_largest(p.argmax(-1).astype(np.uint8), 1)
        k_true, k_pred = first_anterior_slice(truth), first_anterior_slice(classes)
        offset = np.nan if k_true is None or k_pred is None else k_pred - k_true
        rows.append(
            [
                dice_score(truth == 1, classes == 1),
                dice_score(truth == 2, classes == 2),
                dice_score(truth > 0, classes > 0),
                offset,
            ]
        )
    return np.asarray(rows, float)


def line(name: str, rows: np.ndarray) -> str:
    s, (lo, hi) = np.nanmean(rows, axis=0), bootstrap_ci(rows[:, :2].mean(axis=1))
    off = rows[:, 3][np.isfinite(rows[:, 3])]
    return (
        f"{name} anterior {s[0]:.4f} posterior {s[1]:.4f} mean {s[:2].mean():.4f} [{lo:.4f}, {hi:.4f}] "
        f"whole {s[2]:.4f}; boundary on the true slice {int((off == 0).sum())}/{len(off)}, "
        f"mean |offset| {np.abs(off).mean():.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=22.0, help="training time (wall clock)")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--patch", default="40,56,40", help="training box, voxels along axes 0,1,2")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--precision", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--every", type=int, default=10, help="validation Dice every N epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=Path, metavar="MODEL_DIR", help="a trained 2D model folder")
    parser.add_argument("--save", type=Path, metavar="DIR", help="save the 3D probabilities (npz) here")
    parser.add_argument("--load", type=Path, metavar="DIR", help="score the probabilities --save wrote; no training")
    args = parser.parse_args()
    patch = tuple(int(v) for v in args.patch.split(","))
    multiple = 2 ** (args.levels - 1)
    if len(patch) != 3 or any(p % multiple for p in patch):
        parser.error(f"--patch {args.patch}: three sizes, each a multiple of 2**(levels-1) = {multiple}")

    import keras
    import tensorflow as tf

    cfg = load_config(CONFIG)
    data = load_split(cfg)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    a = cfg.augment

    def examples():
        train = data["train"]
        while True:
            for k in rng.permutation(len(train)):
                _, _, image, labels = train[k]
                if a.enabled:
                    gain, shift = rng.uniform(1 - a.contrast, 1 + a.contrast), rng.uniform(-a.brightness, a.brightness)
                    image = np.clip((image - image.mean()) * gain + image.mean() + shift, 0, 1)
                big = tuple(max(s, p) + 8 for s, p in zip(image.shape, patch, strict=True))
                image, where = pad_to(image, big)
                labels, _ = pad_to(labels, big)
                centre = [(w.start + w.stop) // 2 + rng.integers(-4, 5) for w in where]
                box = tuple(
                    slice(o, o + p)
                    for o, p in (
                        (int(np.clip(c - p // 2, 0, b - p)), p) for c, p, b in zip(centre, patch, big, strict=True)
                    )
                )
                x, y = image[box], labels[box]
                if a.enabled and a.hflip and rng.random() < 0.5:
                    x, y = x[:, :, ::-1], y[:, :, ::-1]
                yield x[..., None].astype(np.float32), np.eye(3, dtype=np.float32)[y]

    spec = (tf.TensorSpec((*patch, 1), tf.float32), tf.TensorSpec((*patch, 3), tf.float32))
    dataset = tf.data.Dataset.from_generator(examples, output_signature=spec).batch(args.batch).prefetch(4)
    model = unet3d((None, None, None, 1), args.filters, args.levels)
    optimizer = keras.optimizers.Adam(args.learning_rate)
    model.compile(optimizer, ce_dice)

    def probabilities(image: np.ndarray) -> np.ndarray:
        x, where = pad_to(image, tuple(-(-s // multiple) * multiple for s in image.shape))
        batch = np.stack([x, x[:, :, ::-1]])[..., None]
        p = np.asarray(model.predict_on_batch(batch), np.float32)
        return ((p[0] + p[1][:, :, ::-1]) / 2)[where]

    def evaluate(split: str) -> tuple[list, list]:
        return [s[3] for s in data[split]], [probabilities(s[2]) for s in data[split]]

    if args.load:
        results = {
            split: ([s[3] for s in data[split]], load_probabilities(args.load, split, data[split]))
            for split in ("valid", "test")
        }
    else:
        print(
            f"3D U-Net, {model.count_params():,} parameters, {args.levels} levels, {args.filters} base filters, "
            f"patch {patch}, batch {args.batch}, {args.precision}, {len(data['train'])} training subjects, "
            f"{args.minutes:g} min on {os.cpu_count()} CPU cores",
            flush=True,
        )
        steps = len(data["train"]) // args.batch
        start, epoch = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - start) < args.minutes * 60:
            optimizer.learning_rate.assign(args.learning_rate * (1 - elapsed / (args.minutes * 60)) ** 0.9)
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
            epoch += 1
            if epoch % args.every == 0:
                print(
                    f"epoch {epoch} ({time.perf_counter() - start:.0f} s) "
                    + line("valid:", scores(*evaluate("valid"))),
                    flush=True,
                )
        print(f"trained {epoch} epochs in {time.perf_counter() - start:.0f} s", flush=True)
        results = {split: evaluate(split) for split in ("valid", "test")}
    if args.compare:
        from hippo_utils.inference.predict import volume_probabilities
        from hippo_utils.model.folder import load_model_dir

        keras.mixed_precision.set_global_policy("float32")
        model2d, cfg2d = load_model_dir(args.compare)
        flat = {split: [volume_probabilities(model2d, cfg2d, s[1]) for s in data[split]] for split in results}
    for split, (truths, probs) in results.items():
        rows3d = scores(truths, probs)
        print(line(f"3D, {split}:", rows3d))
        if args.compare:
            rows2d = scores(truths, flat[split])
            print(line(f"2D, {split}:", rows2d))
            print(
                line(
                    f"average of the two, {split}:",
                    scores(truths, [(p + q) / 2 for p, q in zip(probs, flat[split], strict=True)]),
                )
            )
            print("  " + agreement(rows2d[:, 3], rows3d[:, 3], rng))
        if args.save and not args.load:
            args.save.mkdir(parents=True, exist_ok=True)
            named = {s[0]: p for s, p in zip(data[split], probs, strict=True)}
            np.savez_compressed(args.save / f"{split}_3d.npz", **named)


def load_probabilities(folder: Path, split: str, subjects: list) -> list[np.ndarray]:
    path = folder / f"{split}_3d.npz"
    if not path.exists():
        raise SystemExit(f"{path}: not found; write it with --save {folder}")
    saved = np.load(path)
    missing = [s[0] for s in subjects if s[0] not in saved]
    if missing:
        raise SystemExit(f"{path}: no probabilities for {', '.join(missing[:3])}; saved from another derivation?")
    return [saved[s[0]] for s in subjects]


def agreement(first: np.ndarray, second: np.ndarray, rng: np.random.Generator, draws: int = 2000) -> str:
    """How often two models put the boundary on the same wrong slice, against chance: the
    same count with the second model's offsets shuffled across subjects (``draws`` times)."""
    ok = np.isfinite(first) & np.isfinite(second)
    a, b = first[ok], second[ok]

    def same(x, y):
        return int(((x != 0) & (x == y)).sum())

    both = int(((a != 0) & (b != 0)).sum())
    chance = np.mean([same(a, rng.permutation(b)) for _ in range(draws)])
    return (
        f"boundary: both models off in {both} of {len(a)} subjects, on the same wrong slice in {same(a, b)} "
        f"(chance, the subjects paired at random: {chance:.1f}); correlation of the offsets over all "
        f"{len(a)} subjects {np.corrcoef(a, b)[0, 1]:.2f}"
    )


if __name__ == "__main__":
    main()
