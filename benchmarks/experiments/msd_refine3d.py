"""A second, 3D stage after the 2D FlexUNet on MSD Task04 (issue 19): does it help?

    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_refine3d runs/msd_bench/models \
        [--mode residual|image|mix] [--minutes 7] [--train-split train|valid]

The 2D model (a trained model folder of ``configs/msd_task04.config``) segments every
subject of its derivation (train, valid and test, as ``dataset.json`` lists them), with
the config's flip TTA and slice smoothing, on each volume's own grid. Then a small 3D
U-Net (two 3x3x3 convolutions per level, 3 levels, 8 base filters, batch 2) is trained for
``--minutes`` on a 32x56x40 box centred on the 2D model's foreground (it holds every
hippocampus of the set: at most 27x48x37 voxels), shifted by up to 3 voxels at random:

- ``residual``: the input is the image and the 2D class probabilities; the output is the 2D
  model's log-probabilities plus a correction whose last layer starts at zero, so the stage
  starts from the 2D result and learns only what to change;
- ``image``: the image alone, a 3D network on its own;
- ``mix``: as ``image``, and its probabilities are also averaged with the 2D model's at
  weights 0.3 / 0.5 / 0.7.

Every third epoch it prints the anterior, posterior and whole 3D Dice (largest component
per class kept, as the config does) of the validation and test subjects, against the 2D
model alone. ``--train-split valid`` trains the stage on the validation subjects, whose 2D
probabilities are as unsure as unseen ones (on its training subjects the 2D model scores a
mean of 0.899, on unseen ones 0.874-0.879). Figures only; what they showed is in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.common import bootstrap_ci
from hippo_utils.data.components import keep_largest
from hippo_utils.data.volumes import load_labels, load_volume
from hippo_utils.inference.predict import volume_probabilities
from hippo_utils.model.folder import load_model_dir
from hippo_utils.model.metrics import dice_score

BOX = (32, 56, 40)


def load_subjects(model_dir: Path) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """(name, image scaled to 0..1, labels, 2D class probabilities) of every subject, by split."""
    model, cfg = load_model_dir(model_dir)
    source = Path(cfg.derive.source_dir)
    subjects = json.loads((Path(cfg.derive.output_dir) / "dataset.json").read_text())["subjects"]
    out: dict[str, list] = {}
    for split, names in subjects.items():
        out[split] = []
        for name in names:
            volume = load_volume(source / "images" / f"{name}.nii.gz")
            labels = load_labels(source / "labels" / f"{name}.nii.gz", like=volume)
            lo, hi = np.percentile(volume.data, (0.5, 99.5))
            image = np.clip((volume.data - lo) / (hi - lo + 1e-6), 0, 1).astype(np.float32)
            out[split].append((name, image, labels.astype(np.uint8), volume_probabilities(model, cfg, volume)))
    return out


def box_origin(probs: np.ndarray, rng: np.random.Generator | None = None, jitter: int = 3) -> np.ndarray:
    fg = np.argwhere(probs.argmax(-1) > 0)
    centre = (fg.min(0) + fg.max(0)) / 2 if len(fg) else np.array(probs.shape[:3]) / 2
    if rng is not None:
        centre = centre + rng.integers(-jitter, jitter + 1, 3)
    return np.round(centre - np.array(BOX) / 2).astype(int)


def cut(arr: np.ndarray, origin: np.ndarray, fill) -> tuple[np.ndarray, tuple, tuple]:
    """The BOX at ``origin`` of ``arr`` (filled where it leaves the volume), and the slices
    that map it back."""
    out = np.full(BOX + arr.shape[3:], fill, arr.dtype)
    src = tuple(slice(max(o, 0), min(o + b, s)) for o, b, s in zip(origin, BOX, arr.shape[:3], strict=True))
    dst = tuple(slice(s.start - o, s.stop - o) for s, o in zip(src, origin, strict=True))
    out[dst] = arr[src]
    return out, src, dst


def ordered_boundary(probs: np.ndarray, first: int, second: int) -> tuple[int, bool]:
    """Where one class gives way to the other along axis 0 of ``probs`` (N, ..., C).

    Over the voxels predicted as either class, the cut k (0..N) maximises the probability
    that the voxels of slices before k have of being ``first`` plus that of the rest of
    being ``second``; the reverse order is scored too, for volumes stored the other way
    round. Returns (k, True when ``first`` comes first). A copy of what the package's
    ``[infer] ordered_labels`` used, kept here when that option was removed as not adopted
    (issue 29; benchmarks/RESULTS.md row 15).
    """
    pred = probs.argmax(-1)
    on = (pred == first) | (pred == second)
    a = np.concatenate([[0.0], np.cumsum((probs[..., first] * on).reshape(len(probs), -1).sum(axis=1))])
    b = np.concatenate([[0.0], np.cumsum((probs[..., second] * on).reshape(len(probs), -1).sum(axis=1))])
    forward, backward = a + (b[-1] - b), b + (a[-1] - a)
    if forward.max() >= backward.max():
        return int(np.argmax(forward)), True
    return int(np.argmax(backward)), False


def shift_boundary(probs: np.ndarray, rng: np.random.Generator, most: int) -> np.ndarray:
    """``probs`` with the anterior/posterior boundary moved by 1..``most`` slices along axis 1
    (the two classes' probabilities swapped on the slices in between), for training: on its
    training subjects the 2D model places the boundary right more often than on unseen ones."""
    moved = np.moveaxis(probs, 1, 0)
    cut, _ = ordered_boundary(moved, 1, 2)
    step = int(rng.integers(1, most + 1)) * (1 if rng.random() < 0.5 else -1)
    lo, hi = sorted((cut, int(np.clip(cut + step, 0, len(moved)))))
    out = moved.copy()
    out[lo:hi, ..., 1], out[lo:hi, ..., 2] = moved[lo:hi, ..., 2], moved[lo:hi, ..., 1]
    return np.moveaxis(out, 0, 1)


def box_inputs(image: np.ndarray, probs: np.ndarray, origin: np.ndarray):
    img, _, _ = cut(image[..., None], origin, np.float32(0))
    p, src, dst = cut(probs, origin, np.float32(0))
    p[p.sum(-1) == 0] = (1, 0, 0)
    return np.concatenate([img, p], -1), src, dst


def unet3d(input_shape: tuple, filters: int, levels: int, last_init: str = "glorot_uniform", head=None):
    """A plain 3D U-Net: two 3x3x3 ReLU convolutions per level, 2x2x2 max-pooling and transposed
    convolutions, a 1x1x1 head to 3 classes (``head(inputs, logits)`` may change its logits),
    softmax in float32."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    h, skips = inputs, []
    for level in range(levels - 1):
        for _ in range(2):
            h = layers.Conv3D(filters * 2**level, 3, padding="same", activation="relu")(h)
        skips.append(h)
        h = layers.MaxPool3D(2)(h)
    for _ in range(2):
        h = layers.Conv3D(filters * 2 ** (levels - 1), 3, padding="same", activation="relu")(h)
    for level in reversed(range(levels - 1)):
        h = layers.Concatenate()([layers.Conv3DTranspose(filters * 2**level, 2, strides=2)(h), skips[level]])
        for _ in range(2):
            h = layers.Conv3D(filters * 2**level, 3, padding="same", activation="relu")(h)
    logits = layers.Conv3D(3, 1, kernel_initializer=last_init)(h)
    if head is not None:
        logits = head(inputs, logits)
    return keras.Model(inputs, layers.Activation("softmax", dtype="float32")(logits))


def stage(mode: str, filters: int = 8, levels: int = 3):
    import keras
    from keras import layers

    if mode != "residual":
        image_only = unet3d((*BOX, 1), filters, levels)
        inputs = keras.Input((*BOX, 4))
        return keras.Model(inputs, image_only(layers.Lambda(lambda t: t[..., :1])(inputs)))

    def plus_prior(inputs, logits):
        prior = layers.Lambda(lambda t: keras.ops.log(keras.ops.clip(t[..., 1:], 1e-4, 1.0)))(inputs)
        return layers.Add()([logits, prior])

    return unet3d((*BOX, 4), filters, levels, last_init="zeros", head=plus_prior)


def ce_dice(y, p):
    import keras

    ce = keras.ops.mean(keras.losses.categorical_crossentropy(y, p))
    inter = keras.ops.sum(y[..., 1:] * p[..., 1:], axis=(1, 2, 3))
    total = keras.ops.sum(y[..., 1:] + p[..., 1:], axis=(1, 2, 3))
    return ce + 1 - keras.ops.mean((2 * inter + 1) / (total + 1))


def score(subjects, model=None, weight: float = 1.0) -> np.ndarray:
    """Anterior, posterior and whole Dice of each subject; ``weight`` of the stage's probabilities."""
    rows = []
    for _, image, labels, probs in subjects:
        if model is not None:
            x, src, dst = box_inputs(image, probs, box_origin(probs))
            refined = np.zeros(probs.shape, np.float32)
            refined[..., 0] = 1
            refined[src] = np.asarray(model.predict_on_batch(x[None]))[0][dst]
            probs = weight * refined + (1 - weight) * probs
        classes = keep_largest(probs.argmax(-1).astype(np.uint8), 1)
        rows.append(
            [
                dice_score(labels == 1, classes == 1),
                dice_score(labels == 2, classes == 2),
                dice_score(labels > 0, classes > 0),
            ]
        )
    return np.asarray(rows)


def line(name: str, rows: np.ndarray) -> str:
    """The mean Dice of each class and of the two, with the 95% bootstrap interval of the mean."""
    s, lo_hi = rows.mean(axis=0), bootstrap_ci(rows[:, :2].mean(axis=1))
    return (
        f"{name} anterior {s[0]:.4f} posterior {s[1]:.4f} mean {s[:2].mean():.4f} "
        f"[{lo_hi[0]:.4f}, {lo_hi[1]:.4f}] whole {s[2]:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--mode", choices=("residual", "image", "mix"), default="residual")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time of the 3D stage")
    parser.add_argument("--train-split", choices=("train", "valid"), default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--boundary-jitter",
        type=int,
        default=0,
        metavar="N",
        help="residual: in training, move the 2D boundary by 1..N slices (half the time)",
    )
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    start = time.perf_counter()
    data = load_subjects(args.model_dir)
    print(f"2D probabilities of {sum(map(len, data.values()))} subjects: {time.perf_counter() - start:.0f} s")
    for split in ("train", "valid", "test"):
        print(line(f"2D alone, {split}:", score(data[split])))

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = data[args.train_split]

    def examples():
        while True:
            for k in rng.permutation(len(train)):
                _, image, labels, probs = train[k]
                origin = box_origin(probs, rng)
                if args.boundary_jitter and rng.random() < 0.5:
                    probs = shift_boundary(probs, rng, args.boundary_jitter)
                x, _, _ = box_inputs(image, probs, origin)
                y, _, _ = cut(labels, origin, np.uint8(0))
                yield x, np.eye(3, dtype=np.float32)[y]

    spec = (tf.TensorSpec((*BOX, 4), tf.float32), tf.TensorSpec((*BOX, 3), tf.float32))
    dataset = tf.data.Dataset.from_generator(examples, output_signature=spec).batch(2).prefetch(2)
    model = stage("residual" if args.mode == "residual" else "image")
    model.compile(keras.optimizers.Adam(1e-3), ce_dice)
    print(
        f"3D stage ({args.mode}, {model.count_params():,} parameters), trained on the "
        f"{len(train)} {args.train_split} subjects for {args.minutes:g} min, {os.cpu_count()} CPU cores"
    )
    start, epoch = time.perf_counter(), 0
    while time.perf_counter() - start < args.minutes * 60:
        model.fit(dataset, steps_per_epoch=len(train) // 2, epochs=1, verbose=0)
        epoch += 1
        if epoch % 3:
            continue
        print(f"epoch {epoch} ({time.perf_counter() - start:.0f} s)")
        weights = (0.3, 0.5, 0.7, 1.0) if args.mode == "mix" else (1.0,)
        for w in weights:
            tag = "" if w == 1.0 else f" averaged with the 2D, weight {w}"
            print("  " + line(f"valid{tag}:", score(data["valid"], model, w)))
            print("  " + line(f"test{tag}:", score(data["test"], model, w)))


if __name__ == "__main__":
    main()
