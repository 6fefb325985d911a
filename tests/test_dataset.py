import numpy as np
import pytest
from PIL import Image

from hippo_utils import load_config
from hippo_utils.data.dataset import make_dataset, pair_files

from helpers import write_config


def _folder(tmp_path, n=4, size=32, bad_colour=None, missing_mask=None):
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[:size, :size]
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        img = (255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))).astype(np.uint8)
        mask = np.zeros((size, size, 3), np.uint8)
        mask[img > 128] = (255, 0, 0)  # the mask is a function of the image: alignment is checkable
        if bad_colour is not None and i == 2:
            mask[0, 0] = bad_colour
        Image.fromarray(img).save(img_dir / f"s{i}.png")
        if i != missing_mask:
            Image.fromarray(mask).save(mask_dir / f"s{i}.png")
    return img_dir, mask_dir


def _cfg(tmp_path, img_dir, mask_dir, extra=""):
    text = f"[train]\nimages_dir = {str(img_dir)!r}\nmasks_dir = {str(mask_dir)!r}\nbatch_size = 2\nseed = 3\n{extra}"
    return load_config(write_config(tmp_path / "c.config", {}, size=32, extra=text))


def test_pairs_by_name_and_reports_mismatches(tmp_path):
    img_dir, mask_dir = _folder(tmp_path, missing_mask=1)
    with pytest.raises(ValueError, match=r"images without mask \['s1'\]"):
        pair_files(img_dir, mask_dir)
    with pytest.raises(FileNotFoundError, match="derive the dataset first"):
        pair_files(tmp_path / "nope", mask_dir)


def test_batches_and_one_hot_masks(tmp_path):
    img_dir, mask_dir = _folder(tmp_path)
    ds = make_dataset(_cfg(tmp_path, img_dir, mask_dir), "train")
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 2]
    x, y = batches[0]
    assert x.shape == (2, 32, 32, 3) and y.shape == (2, 32, 32, 2)
    np.testing.assert_array_equal(y.numpy()[..., 1], (x.numpy()[..., 0] > 128).astype(np.float32))


def test_unknown_mask_colour_names_the_file(tmp_path):
    import tensorflow as tf

    img_dir, mask_dir = _folder(tmp_path, bad_colour=(0, 255, 0))
    ds = make_dataset(_cfg(tmp_path, img_dir, mask_dir), "train", training=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not in \[mask\] rgb_map.*s2.png"):
        list(ds)


def test_augmentation_keeps_image_and_mask_aligned(tmp_path):
    img_dir, mask_dir = _folder(tmp_path, n=6, size=32)
    cfg = _cfg(
        tmp_path, img_dir, mask_dir, "[augment]\nenabled = True\nrotation = 20.0\nbrightness = 0.0\ncontrast = 0.0\n"
    )
    x, y = next(iter(make_dataset(cfg, "train", batch_size=6)))
    x, y = x.numpy()[..., 0], y.numpy()[..., 1]
    changed = not np.array_equal(y, (x > 128))  # something moved...
    inner = (slice(None), slice(6, 26), slice(6, 26))  # ...and inside, away from the filled corners,
    agreement = ((x[inner] > 128) == (y[inner] > 0.5)).mean()
    assert changed and agreement > 0.97  # the mask still follows the image (bilinear vs nearest)


def test_cache_is_skipped_when_the_data_would_not_fit(tmp_path, monkeypatch):
    import hippo_utils.data.dataset as dataset_mod

    img_dir, mask_dir = _folder(tmp_path)
    cfg = _cfg(tmp_path, img_dir, mask_dir)
    monkeypatch.setattr(dataset_mod, "CACHE_BUDGET_BYTES", 10)
    graph = make_dataset(cfg, "train")._as_serialized_graph().numpy()
    assert b"CacheDataset" not in graph
    monkeypatch.setattr(dataset_mod, "CACHE_BUDGET_BYTES", 1 << 30)
    assert b"CacheDataset" in make_dataset(cfg, "train")._as_serialized_graph().numpy()


def test_repeated_dataset_passes_are_whole_reshuffled_epochs(tmp_path):
    img_dir, mask_dir = _folder(tmp_path, n=5)
    ds = make_dataset(_cfg(tmp_path, img_dir, mask_dir), "train", repeat=True)
    assert ds.steps == 3  # 5 slices in batches of 2
    it = iter(ds)
    passes = []
    for _ in range(4):  # what fit(steps_per_epoch=ds.steps) takes each epoch
        batches = [next(it)[0].numpy() for _ in range(ds.steps)]
        assert [len(b) for b in batches] == [2, 2, 1]  # an epoch never runs into the next one
        passes.append([float(img.sum()) for b in batches for img in b])
    for p in passes:
        assert sorted(p) == sorted(passes[0])  # every slice once per epoch
    assert len({tuple(p) for p in passes}) > 1  # in a new order
