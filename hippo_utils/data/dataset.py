"""The tf.data input pipeline over the derived PNG dataset.

Images and masks are paired by file name. Mask colours become class indices through
``[mask] rgb_map``; a colour that is not in the map stops the pipeline with an error
naming the file, never a silent class. Decoded pairs are cached in memory only when
they fit (``[train] cache = "auto"``, 1 GiB), so memory stays bounded as the dataset
grows; otherwise the PNGs are decoded again each epoch, in parallel.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from hippo_utils.core.config import Config
from hippo_utils.core.png import DATASET_SUFFIXES, open_image, read_rgb
from hippo_utils.data.labels import Labels

logger = logging.getLogger(__name__)

CACHE_BUDGET_BYTES = 1 << 30


def pair_files(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by file stem, sorted by name.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: no images, or names that do not match, listed.
    """
    for d in (images_dir, masks_dir):
        if not Path(d).is_dir():
            raise FileNotFoundError(
                f"folder not found: {d} (derive the dataset first: python -m hippo_utils derive CONFIG)"
            )
    images = {p.stem: p for p in Path(images_dir).iterdir() if p.suffix.lower() in DATASET_SUFFIXES}
    masks = {p.stem: p for p in Path(masks_dir).iterdir() if p.suffix.lower() in DATASET_SUFFIXES}
    if not images:
        raise ValueError(f"{images_dir}: no .png or .jpg images")
    only_img, only_mask = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if only_img or only_mask:
        raise ValueError(
            f"{images_dir} and {masks_dir} do not match by name: images without mask "
            f"{only_img[:5]}, masks without image {only_mask[:5]}"
        )
    return [(images[k], masks[k]) for k in sorted(images)]


def split_dirs(cfg: Config, split: str) -> tuple[Path, Path]:
    """(images, masks) folders of a split: train, valid and test as their sections say
    ([train] images_dir, ...), mini_test in the derived dataset."""
    if split == "mini_test":
        return cfg.derive.output_dir / "mini_test" / "images", cfg.derive.output_dir / "mini_test" / "masks"
    section = {"train": cfg.train, "valid": cfg.valid, "test": cfg.test}[split]
    return section.images_dir, section.masks_dir


def split_pairs(cfg: Config, split: str = "test") -> list[tuple[Path, Path]]:
    """The (image, mask) files of a split (train, valid, test or mini_test), by name."""
    return pair_files(*split_dirs(cfg, split))


def _colour_table(labels: Labels):
    import tensorflow as tf

    keys, classes = labels.colour_table()
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(classes)), default_value=-1
    )


def decode_pair_fn(cfg: Config):
    """A tf function (image path, mask path) -> (uint8 image HxWxC, uint8 classes HxW)."""
    import tensorflow as tf

    m = cfg.model
    table = _colour_table(Labels.from_config(cfg))
    size = tf.constant([m.image_height, m.image_width])
    rgb_map_text = str(dict(cfg.mask.rgb_map))

    def decode(img_path, mask_path):
        image = tf.io.decode_image(tf.io.read_file(img_path), channels=m.image_channels, expand_animations=False)
        if cfg.image.color_order == "BGR" and m.image_channels == 3:
            image = image[..., ::-1]
        mask = tf.io.decode_image(tf.io.read_file(mask_path), channels=3, expand_animations=False)
        tf.debugging.assert_equal(
            tf.shape(image)[:2],
            size,
            message=(
                f"image size differs from [model] image_height x image_width = {m.image_height}x{m.image_width}"
                " (re-derive the dataset with this config); file:"
            ),
            summarize=3,
            name=None,
        )
        tf.debugging.assert_equal(
            tf.shape(mask)[:2], tf.shape(image)[:2], message="mask size differs from its image; file:"
        )
        m32 = tf.cast(mask, tf.int32)
        classes = table.lookup(m32[..., 0] * 65536 + m32[..., 1] * 256 + m32[..., 2])
        ok = tf.reduce_all(classes >= 0)
        tf.debugging.Assert(ok, [f"mask colour not in [mask] rgb_map {rgb_map_text}; file:", mask_path])
        image.set_shape((m.image_height, m.image_width, m.image_channels))
        classes = tf.cast(tf.maximum(classes, 0), tf.uint8)
        classes.set_shape((m.image_height, m.image_width))
        return image, classes

    return decode


def augment_fn(cfg: Config):
    """Paired random flip, rotation, scale (image bilinear, mask nearest) and
    brightness/contrast on (uint8 image, uint8 classes); returns float image, classes."""
    import tensorflow as tf

    a = cfg.augment
    h, w = cfg.model.image_height, cfg.model.image_width
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    def transform(x, matrix, interpolation):
        x = tf.cast(x, tf.float32)[None]
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=matrix[None],
            output_shape=tf.constant([h, w]),
            interpolation=interpolation,
            fill_mode="CONSTANT",
            fill_value=0.0,
        )
        return out[0]

    def augment(image, classes):
        image = tf.cast(image, tf.float32)
        classes = classes[..., None]
        if a.hflip:
            flip = tf.random.uniform(()) < 0.5
            image = tf.where(flip, image[:, ::-1], image)
            classes = tf.where(flip, classes[:, ::-1], classes)
        theta = tf.random.uniform((), -a.rotation, a.rotation) * math.pi / 180.0
        scale = tf.random.uniform((), a.scale[0], a.scale[1])
        c, s = tf.cos(theta) / scale, tf.sin(theta) / scale
        matrix = tf.stack([c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy, 0.0, 0.0])
        image = transform(image, matrix, "BILINEAR")
        classes = tf.cast(transform(classes, matrix, "NEAREST"), tf.uint8)[..., 0]
        gain = tf.random.uniform((), 1 - a.contrast, 1 + a.contrast)
        shift = tf.random.uniform((), -a.brightness, a.brightness) * 255.0
        mean = tf.reduce_mean(image)
        image = tf.clip_by_value((image - mean) * gain + mean + shift, 0.0, 255.0)
        return image, classes

    return augment


def make_dataset(
    cfg: Config,
    split: str = "train",
    training: bool | None = None,
    batch_size: int | None = None,
    cache: str | None = None,
    repeat: bool = False,
):
    """A batched ``tf.data.Dataset`` of (float32 image 0..255, one-hot float32 mask).

    Args:
        cfg: the config (model size, rgb_map, seed, augmentation, folders).
        split: ``train``, ``valid`` or ``test``: which [section] images_dir/masks_dir.
        training: shuffle and augment (default: ``split == "train"``).
        batch_size: default ``[train] batch_size``.
        cache: override ``[train] cache``.
        repeat: repeat the epoch's batches without end (reshuffled each time); give ``fit``
            ``steps_per_epoch=ds.steps``. Keras then keeps one iterator for the whole run.
            Without it, Keras makes a new iterator each epoch, and destroying the old one
            (waiting for its tf.data autotuning threads) stalls each epoch on a small CPU
            (``benchmarks/speed.py epochs`` measures it). Datasets that are not for training
            are made without autotuning, for the same reason.

    Returns:
        The dataset; its ``.files`` attribute lists the (image, mask) pairs in order and
        ``.steps`` the batches in one pass over them.
    """
    import tensorflow as tf

    training = split == "train" if training is None else training
    pairs = pair_files(*split_dirs(cfg, split))
    m = cfg.model
    ds = tf.data.Dataset.from_tensor_slices(([str(p[0]) for p in pairs], [str(p[1]) for p in pairs]))
    ds = ds.map(decode_pair_fn(cfg), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    mode = cache or cfg.train.cache
    nbytes = len(pairs) * m.image_height * m.image_width * (m.image_channels + 1)
    if mode == "memory" or (mode == "auto" and nbytes <= CACHE_BUDGET_BYTES):
        ds = ds.cache()
    if training:
        ds = ds.shuffle(min(len(pairs), 2048), seed=cfg.train.seed, reshuffle_each_iteration=True)
        if cfg.augment.enabled:
            ds = ds.map(augment_fn(cfg), num_parallel_calls=tf.data.AUTOTUNE)
    depth = m.num_classes

    def finish(image, classes):
        return tf.cast(image, tf.float32), tf.one_hot(tf.cast(classes, tf.int32), depth)

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    batch_size = batch_size or cfg.train.batch_size
    ds = ds.batch(batch_size)
    if repeat:  # after batch: each pass yields the same batch sizes as one epoch without it
        ds = ds.repeat()
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if not training:  # see ``repeat``: Keras makes a new validation iterator every epoch, and one
        options = tf.data.Options()  # without autotuning threads is destroyed at once
        options.autotune.enabled = False
        ds = ds.with_options(options)
    ds.files = pairs  # type: ignore[attr-defined]
    ds.steps = math.ceil(len(pairs) / batch_size)  # type: ignore[attr-defined]
    return ds


def load_masks(paths: list[Path], cfg: Config) -> np.ndarray:
    """Read mask images as uint8 (N, H, W) class maps through [mask] rgb_map.

    Raises:
        ValueError: a colour outside rgb_map, naming the file.
    """
    labels = Labels.from_config(cfg)
    return np.stack([labels.mask_to_classes(read_rgb(p), str(p)) for p in paths])


def load_images(paths: list[Path], cfg: Config) -> np.ndarray:
    """Read images as a float32 (N, H, W, C) batch the model takes (0..255)."""
    mode = "RGB" if cfg.model.image_channels == 3 else "L"
    arrays = []
    for p in paths:
        a = np.asarray(open_image(p).convert(mode), np.float32)
        if a.ndim == 2:
            a = a[..., None]
        if cfg.image.color_order == "BGR" and a.shape[-1] == 3:
            a = a[..., ::-1]
        arrays.append(a)
    return np.stack(arrays)
