"""[derive] crop (issue 27): the model sees a window around the hippocampi at the scan's own
resolution, learned from the training labels, placed from each head's centre, the same at
derivation and inference, and written back on the input's grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.data.layouts import find_subjects
from hippo_utils.data.preprocess import (
    crop_window,
    display_stack,
    head_centre,
    label_box_mm,
    normalize_intensity,
    plane_axes,
    slice_geometry,
)
from hippo_utils.data.volumes import Volume, load_labels, load_volume

from helpers import write_config


def _head(shape=(96, 40, 96), spacing=(0.8, 2.0, 0.8), shift=(0, 0)):
    """A bright ellipsoid head on black, two label blobs below its centre."""
    x, y, z = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    cx, cz = shape[0] / 2 + shift[0], shape[2] / 2 + shift[1]
    head = (((x - cx) / 40) ** 2 + ((z - cz) / 44) ** 2 + ((y - shape[1] / 2) / 18) ** 2) < 1
    data = np.where(head, 100.0, 0.0).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    for side in (-1, 1):
        labels[int(cx + side * 14) - 3 : int(cx + side * 14) + 3, 15:25, int(cz) - 8 : int(cz) - 3] = 1
    affine = np.diag([*spacing, 1.0])
    return Volume(data, affine), labels


def test_a_window_round_trips_and_is_background_outside():
    volume, labels = _head()
    axes = plane_axes(volume, "coronal")
    centre = head_centre(display_stack(normalize_intensity(volume), *axes))
    box = label_box_mm(display_stack(labels, *axes), centre, (volume.spacing[axes[1]], volume.spacing[axes[2]]))
    window = crop_window([box], 4.0, (32, 32))
    assert window[1] - window[0] == pytest.approx(window[3] - window[2], abs=0.02)  # the model's square aspect
    geom = slice_geometry(volume, "coronal", (32, 32), crop_mm=window)
    assert geom.crop is not None and geom.in_shape == (96, 96)
    oriented = display_stack(labels, *axes)
    index = int(np.argmax(oriented.reshape(len(oriented), -1).sum(1)))
    model = geom.to_model(oriented[index], is_label=True)
    pixel = (window[1] - window[0]) / 32
    assert pixel < 2.4 / 2  # twice as fine as the whole 96 * 0.8 mm slice in 32 pixels (2.4 mm)
    back = geom.from_model(model, is_label=True)
    dice = 2 * (back & oriented[index]).sum() / (back.sum() + oriented[index].sum())
    assert dice > 0.9
    probs = np.zeros((32, 32, 2), np.float32)
    probs[..., 1] = 1  # the model says hippocampus everywhere in its window
    back = geom.from_model(probs)
    inside = np.zeros((96, 96), bool)
    top, left, h, w = geom.crop
    inside[max(top, 0) : top + h, max(left, 0) : left + w] = True
    assert (back.argmax(-1) == 1).sum() == inside.sum() and back[~inside, 0].min() == 1


def test_the_window_follows_the_head_and_refuses_a_scan_that_does_not_hold_it():
    volume, labels = _head()
    axes = plane_axes(volume, "coronal")
    centre = head_centre(display_stack(normalize_intensity(volume), *axes))
    window = crop_window([label_box_mm(display_stack(labels, *axes), centre, (0.8, 0.8))], 4.0, (32, 32))
    moved, moved_labels = _head(shift=(10, -6))  # the same head elsewhere in the field of view
    geom = slice_geometry(moved, "coronal", (32, 32), crop_mm=window)
    oriented = display_stack(moved_labels, *axes)
    top, left, h, w = geom.crop
    assert oriented[:, top : top + h, left : left + w].sum() == oriented.sum()  # every labelled voxel in the window
    tiny = Volume(np.asarray(volume.data[40:56, :, 70:86]), volume.affine, None)
    with pytest.raises(
        ValueError,
        match=r"volume: only \d+% of the window the model was trained on .* lies inside "
        r"this scan's .* slices; the model needs whole-head scans",
    ):
        slice_geometry(tiny, "coronal", (32, 32), crop_mm=window)


def test_derivation_learns_the_window_and_inference_writes_back_on_the_grid(synthetic_hfh, tmp_path):
    import nibabel as nib

    from hippo_utils.data.derive import derive_dataset, read_manifest
    from hippo_utils.inference.segment import infer_volumes
    from hippo_utils.model.folder import load_model_config
    from hippo_utils.training.trainer import train

    extra = "\n".join(
        [
            "[train]",
            "epochs = 1",
            "batch_size = 16",
            "num_infer_images = 1",
            f"model_dir = {str(tmp_path / 'models')!r}",
            f"eval_dir = {str(tmp_path / 'eval')!r}",
            f"epoch_change_infer_dir = {str(tmp_path / 'previews')!r}",
        ]
    )
    path = write_config(
        tmp_path / "c.config",
        {
            "source_dir": str(synthetic_hfh),
            "output_dir": str(tmp_path / "d"),
            "split": (0.5, 0.25, 0.25),
            "mini_test_size": 1,
            "crop": "auto",
        },
        size=32,
        extra=extra,
    )
    path.write_text(path.read_text().replace("num_layers = 4", "num_layers = 3\nbase_filters = 4"))
    cfg = load_config(path)
    result = derive_dataset(cfg, progress=False)
    window = json.loads((result.output_dir / "dataset.json").read_text())["crop_box_mm"]
    assert len(window) == 4 and window[0] < 0 < window[1]
    rows = read_manifest(result.output_dir)
    assert all(r["crop"] for r in rows) and rows[0]["out_size"] == "32x32"
    train(cfg, progress=False)
    assert load_model_config(tmp_path / "models").derive.crop_box_mm == pytest.approx(tuple(window))
    scan = find_subjects(synthetic_hfh).unlabelled[0].image
    (out,) = infer_volumes(tmp_path / "models", [scan], tmp_path / "out", progress=False)
    written = nib.load(str(out.labels_path))
    assert written.shape == load_volume(scan).shape
    # a scan cropped already cannot hold the window: one line, nothing written
    cut = tmp_path / "cut.nii.gz"
    img = load_volume(scan)
    nib.save(nib.Nifti1Image(img.data[100:140, :, 100:130], img.affine), str(cut))
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: only \d+% of the window"):
        infer_volumes(tmp_path / "models", [cut], tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2" / "cut_labels.nii.gz").exists()
    labels = load_labels(find_subjects(synthetic_hfh).labelled[0].label)
    assert labels.any()
