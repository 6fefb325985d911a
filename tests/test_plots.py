"""Figures where a prediction meets the truth: TP/FP/FN colours, zoom boxes, points per subject."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hippo_utils.display import figures as plots
from hippo_utils.display import pictures
from hippo_utils.model.folder import read_epoch_previews

TP, FP, FN = pictures.AGREEMENT_COLOURS.values()


def test_agreement_colours_each_pixel_by_what_truth_and_prediction_say():
    grey = np.zeros((1, 4), np.uint8)
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    out = pictures.agreement(grey, truth, pred, alpha=1.0)
    assert [tuple(c) for c in out[0]] == [TP, FN, FP, (0, 0, 0)]
    rgb_truth = np.zeros((1, 4, 3), np.uint8)
    rgb_truth[0, :2] = (255, 0, 0)  # colour masks work the same
    assert np.array_equal(pictures.agreement(grey, rgb_truth, pred, alpha=1.0), out)


def test_zoom_box_holds_the_masks_with_a_margin_and_falls_back_to_the_whole_image():
    mask = np.zeros((128, 128), bool)
    mask[60:66, 30:40] = True
    rows, cols = pictures.zoom_box([mask], mask.shape, margin=1.0, min_size=8)
    assert rows.start <= 60 and rows.stop >= 66 and cols.start <= 30 and cols.stop >= 40
    assert rows.stop - rows.start == cols.stop - cols.start == 30  # 10 px across, half again on each side
    assert pictures.zoom_box([np.zeros((50, 70))], (50, 70)) == (slice(0, 50), slice(0, 70))
    edge = np.zeros((64, 64), bool)
    edge[0:3, 0:3] = True  # at the border the box shifts inside rather than shrinking
    rows, cols = pictures.zoom_box([edge], edge.shape, min_size=32)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 32, 0, 32)


def test_preview_strip_zooms_each_column_and_colours_the_prediction():
    img = np.full((2, 64, 64, 3), 100, np.float32)
    truth = np.zeros((64, 64, 3), np.uint8)
    truth[30:34, 30:34] = (255, 0, 0)
    pred = np.zeros((64, 64, 3), np.uint8)
    pred[30:34, 32:36] = (255, 0, 0)
    strip = pictures.preview_strip(img, [truth, truth], [pred, truth], tile=40)
    assert strip.shape == (3 * 44, 2 * 44, 3)
    colours = {tuple(c) for c in strip[88:, :44].reshape(-1, 3)}  # the prediction row of column a
    blend = {tuple(np.rint(0.4 * 100 + 0.6 * np.asarray(c)).astype(int)) for c in (TP, FP, FN)}
    assert blend <= colours
    # With the plane, the image row carries direction letters and the mask rows do not.
    lettered = pictures.preview_strip(img, [truth, truth], [pred, truth], tile=40, plane="coronal")
    assert (lettered[2:42, 2:42] != strip[2:42, 2:42]).any()
    np.testing.assert_array_equal(lettered[44:], strip[44:])


@pytest.mark.parametrize("n", [1, 3, 12])
def test_dice_per_subject_draws_one_point_per_subject(n):
    subjects = [{"subject": f"S{i}", "hippocampus_dice": 0.8 + 0.01 * i, "label_1_dice": 0.7} for i in range(n)]
    fig = plots.dice_per_subject(subjects)
    ax = fig.axes[0]
    from matplotlib.collections import PathCollection

    points = [c for c in ax.collections if isinstance(c, PathCollection)]  # the scatters
    assert sum(len(c.get_offsets()) for c in points) == 2 * n
    assert [t.get_text() for t in ax.get_xticklabels()] == ["hippocampus", "label_1"]


def test_epoch_previews_with_masks_start_with_the_truth(tmp_path):
    images, masks, previews = (tmp_path / d for d in ("images", "masks", "previews"))
    for d in (images, masks, previews):
        d.mkdir()
    grey = np.full((64, 64), 90, np.uint8)
    truth = np.zeros((64, 64, 3), np.uint8)
    truth[20:26, 20:26] = (255, 0, 0)
    Image.fromarray(grey).save(images / "s1.png")
    Image.fromarray(truth).save(masks / "s1.png")
    for e in (1, 2):
        Image.fromarray(np.roll(truth, e, axis=1)).save(previews / f"Epoch_{e}_s1.png")
    fig = plots.epoch_previews(read_epoch_previews(previews, images, [1, 2], ["s1"], masks_dir=masks))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["ground truth", "epoch 1", "epoch 2"]
    assert fig.axes[0].images[0].get_array().shape[0] < 64  # zoomed on the hippocampus
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()] == list(pictures.AGREEMENT_COLOURS)


@pytest.mark.parametrize("x_code, x_sign", [("R", 1.0), ("L", -1.0)])
def test_three_planes_show_radiological_orientation_with_true_ticks(x_code, x_sign):
    from hippo_utils.data.volumes import Volume

    data = np.zeros((30, 20, 40), np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[5:8, 9:12, 30:33] = 1  # near the subject's right (RAS) or left (LAS) side, and high up
    vol = Volume(data, np.diag([x_sign * 1.0, 2.0, 1.0, 1.0]))
    assert vol.axcodes[0] == x_code
    fig = plots.three_planes(vol, labels=labels)
    sagittal, coronal, axial = fig.axes[:3]
    letters = {t.get_text() for t in coronal.texts}
    assert letters == {"S", "I", "R", "L"} and {t.get_text() for t in axial.texts} == {"A", "P", "R", "L"}
    bottom, top = coronal.get_ylim()
    assert bottom < top and top == pytest.approx(39.5)  # superior (index 39) up, ticks in array indices
    left, right = coronal.get_xlim()
    # the subject's right is on the image's left: an index that grows towards R (RAS) grows leftwards
    assert (left > right) == (x_code == "R")
    assert "array axis 1 = 10" in coronal.get_title()


def test_an_affine_not_read_as_anatomy_shows_array_axes():
    """MSD's crops ([derive] plane = axis1): the three pictures are the array's axes, with no
    direction letters or radiological claim, in the figure and in the batch QC picture."""
    from hippo_utils.data.volumes import Volume

    data = np.random.default_rng(0).uniform(size=(30, 20, 40)).astype(np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[5:8, 9:12, 30:33] = 1
    vol = Volume(data, np.diag([1.0, 2.0, 1.0, 1.0]))
    fig = plots.three_planes(vol, labels=labels, anatomical=False)
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "axis0: array axis 0 = 6",
        "axis1: array axis 1 = 10",
        "axis2: array axis 2 = 31",
    ]
    assert all(not ax.texts for ax in fig.axes[:3]) and "no anatomical directions" in fig._suptitle.get_text()
    anatomical, as_stored = (pictures.qc_snapshot(vol, labels, data, anatomical=a) for a in (True, False))
    assert anatomical.shape != as_stored.shape or not np.array_equal(anatomical, as_stored)


@pytest.mark.parametrize("plane, letters", [("coronal", {"S", "I", "R", "L"}), ("axis1", set()), (None, set())])
def test_slice_figures_letter_their_edges_when_the_plane_is_known(plane, letters):
    fig = plots.Figure()
    ax = fig.subplots()
    plots.letter_axes(ax, plane)
    assert {t.get_text() for t in ax.texts} == letters
