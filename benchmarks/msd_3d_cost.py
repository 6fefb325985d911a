"""What a 3D U-Net would cost on the MSD Task04 crops on this CPU.

    python benchmarks/msd_3d_cost.py [--shape 48 64 48] [--filters 8 16] [--train-volumes 146]

The 2D FlexUNet leaves the anterior/posterior boundary to a slice-by-slice decision
(benchmarks/RESULTS.md). A network that sees the whole crop at once is the usual answer;
this measures how many passes over the training volumes such a network gets in the
30-minute budget of benchmarks/accuracy_msd.py. The network is a plain 3D U-Net (two 3x3x3
convolutions per level, 3 levels, ReLU, transposed-convolution upsampling, softmax over
3 classes), trained with `fit` on random data of the padded crop shape: 48x64x48 holds
every MSD crop (31-43 x 40-59 x 24-47 voxels) without cutting. Figures only, no accuracy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def unet3d(shape: tuple[int, int, int], filters: int, levels: int = 3, classes: int = 3):
    import keras
    from keras import layers

    x = inputs = keras.Input((*shape, 1))
    skips = []
    for level in range(levels):
        for _ in range(2):
            x = layers.Conv3D(filters * 2**level, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPool3D(2)(x)
    x = layers.Conv3D(filters * 2**levels, 3, padding="same", activation="relu")(x)
    for level in reversed(range(levels)):
        x = layers.Conv3DTranspose(filters * 2**level, 2, strides=2)(x)
        x = layers.Concatenate()([x, skips[level]])
        for _ in range(2):
            x = layers.Conv3D(filters * 2**level, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, layers.Conv3D(classes, 1, activation="softmax")(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 64, 48])
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--volumes", type=int, default=16, help="volumes per timed pass")
    parser.add_argument("--train-volumes", type=int, default=146, help="volumes in one epoch")
    parser.add_argument("--budget-min", type=float, default=30.0)
    args = parser.parse_args()

    import keras
    shape = tuple(args.shape)
    rng = np.random.default_rng(0)
    x = rng.random((args.volumes, *shape, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, (args.volumes, *shape)), 3)
    print(f"3D U-Net, input {'x'.join(map(str, shape))}, batch {args.batch_size}, "
          f"{args.train_volumes} training volumes per epoch, budget {args.budget_min:g} min")
    for filters in args.filters:
        model = unet3d(shape, filters)
        model.compile("adam", "categorical_crossentropy")
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)  # build and warm up
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        rate = args.volumes / (time.perf_counter() - start)
        epoch_s = args.train_volumes / rate
        print(f"  {filters:2d} base filters, {model.count_params():,} parameters: {rate:.2f} volumes/s, "
              f"{epoch_s:.0f} s per epoch, {args.budget_min * 60 / epoch_s:.1f} epochs "
              f"({args.budget_min * 60 * rate:.0f} volume presentations) in the budget")


if __name__ == "__main__":
    main()
