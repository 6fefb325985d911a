import numpy as np
import pytest

from hippo_utils.data.labels import palette
from hippo_utils.display.viewer import SliceViewer


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (30, 20, 24)).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    lab[10:16, 8:12, 8:14] = 1
    lab[10:16, 12:14, 8:14] = 2  # label 2 only on some coronal slices
    img[lab > 0] = 180
    pred = np.roll(lab, 1, axis=0)
    return img, lab, pred


def test_controls_change_the_rendered_image(volume):
    img, lab, pred = volume
    v = SliceViewer(img, label=lab, prediction=pred, spacing=(1.0, 1.0, 1.0))
    first = v.image.value
    for control, value in (
        (v.opacity, 0.9),
        (v.mode, "contour"),
        (v.mode, "side by side"),
        (v.show_label, False),
        (v.window, (0.2, 0.6)),
        (v.slider, 0),
    ):
        before = v.image.value
        control.value = value
        assert v.image.value != before, control.description
    assert v.image.value != first


def test_starts_on_the_slice_with_most_hippocampus_and_stays_in_bounds(volume):
    img, lab, _ = volume
    v = SliceViewer(img, label=lab, spacing=(1.0, 1.0, 1.0), plane="coronal")
    areas = (lab > 0).sum(axis=(0, 2))  # coronal slices run along axis 1 for an identity affine
    assert v.slider.value == int(np.argmax(areas))
    assert v.slider.min == 0 and v.slider.max == img.shape[1] - 1
    v.plane.value = "sagittal"
    assert v.slider.max == img.shape[0] - 1 and 0 <= v.slider.value <= v.slider.max


def test_aspect_follows_the_spacing(volume):
    img, lab, _ = volume
    v = SliceViewer(img, label=lab, spacing=(0.8, 2.0, 0.8), plane="axial")  # rows: y at 2 mm
    h, w = v.display_shape()
    assert h / w == pytest.approx((20 * 2.0) / (30 * 0.8), rel=0.02)
    assert v.render().shape[:2] == (h, w)
    v.plane.value = "coronal"  # rows z (0.8 mm), columns x (0.8 mm)
    h, w = v.display_shape()
    assert h / w == pytest.approx(24 / 30, rel=0.02)


def test_overlay_colours_follow_rgb_map(volume):
    img, lab, _ = volume
    rgb_map = {(0, 0, 0): 0, (0, 200, 0): 1}
    v = SliceViewer(img, label=lab, spacing=(1, 1, 1), rgb_map=rgb_map)
    v.opacity.value = 1.0
    colours = {tuple(c) for c in v.render().reshape(-1, 3).tolist()}
    assert (0, 200, 0) in colours and (255, 0, 0) not in colours  # label 1 takes class 1's colour
    v.slider.value = 12  # a coronal slice with label 2, which rgb_map does not colour
    colours = {tuple(c) for c in v.render().reshape(-1, 3).tolist()}
    assert tuple(int(c) for c in palette(rgb_map)[2]) in colours


def test_info_reports_position_and_slice_dice(volume):
    from hippo_utils.data.volumes import Volume
    from hippo_utils.model.metrics import dice_score

    img, lab, pred = volume
    # Array axes stored as (z, x reversed, y), 1.2, 0.9 and 2.0 mm, with an offset: the coronal slices
    # run along array axis 2, and their position is world y = 2.0 * index - 31.
    affine = np.array([[0.0, -0.9, 0.0, 12.0], [0.0, 0.0, 2.0, -31.0], [1.2, 0.0, 0.0, 5.5], [0, 0, 0, 1]])
    v = SliceViewer(Volume(img, affine), label=lab, prediction=lab, plane="coronal")
    assert v.slider.max == img.shape[2] - 1
    v.slider.value = 11
    assert v.status.value == (
        "<b>coronal</b> slice 11 (0–23, as the slider counts)<br>position -9.0 mm "
        "(y, scanner space)<br>slice Dice 1.000"
    )
    v.plane.value = "axial"  # along array axis 0 (z = 1.2 * index + 5.5); the viewer starts on the largest slice
    areas = (lab > 0).sum(axis=(1, 2))
    assert v.slider.value == int(np.argmax(areas)) == 10
    assert v.status.value == (
        "<b>axial</b> slice 10 (0–29, as the slider counts)<br>position +17.5 mm (z, scanner space)<br>slice Dice 1.000"
    )
    # the Dice is the slice's own: the prediction is shifted one axial slice, and a third of slice 13 is cut
    pred = pred.copy()
    pred[13, 8:10] = 0  # 24 of its 36 voxels left, all inside the truth: Dice 2 * 24 / (36 + 24)
    v = SliceViewer(Volume(img, affine), label=lab, prediction=pred, plane="axial")
    for index, dice in ((10, "0.000"), (13, "0.800"), (15, "1.000"), (16, "0.000")):
        v.slider.value = index
        assert v.status.value.endswith(f"<br>slice Dice {dice}"), (index, v.status.value)
        assert dice == f"{dice_score(lab[index] > 0, pred[index] > 0):.3f}"


def test_pages_through_a_derived_dataset(tiny_config):
    v = SliceViewer.from_dataset(tiny_config.derive.output_dir, "train", rgb_map=tiny_config.mask.rgb_map)
    assert v.plane.disabled and v.slider.max + 1 == len(
        list((tiny_config.derive.output_dir / "train" / "images").glob("*.png"))
    )
    before = v.image.value
    v.slider.value = index = (v.slider.value + 1) % (v.slider.max + 1)
    assert v.image.value != before
    # the status names the slice's file, and the view (labels hidden) is that file's picture, enlarged
    from PIL import Image

    files = sorted((tiny_config.derive.output_dir / "train" / "images").glob("*.png"))
    n = len(files)
    assert v.status.value == f"<b>{files[index].stem}</b><br>slice {index} (0–{n - 1}, as the slider counts)"
    v.show_label.value = False
    shown = v.render()
    png = np.asarray(Image.open(files[index]).convert("L")).astype(int)
    h, w = png.shape
    centres = np.ix_(
        ((np.arange(h) + 0.5) * shown.shape[0] / h).astype(int), ((np.arange(w) + 0.5) * shown.shape[1] / w).astype(int)
    )
    assert np.abs(shown[..., 0][centres].astype(int) - png).max() <= 1


def test_agreement_mode_colours_the_prediction_against_the_truth(volume):
    from hippo_utils.display.pictures import AGREEMENT_CAPTION, AGREEMENT_COLOURS

    img, lab, pred = volume  # pred is lab shifted one slice along axis 0: TP, FP and FN all occur
    v = SliceViewer(img, label=lab, prediction=pred, spacing=(1.0, 1.0, 1.0), plane="coronal")
    v.opacity.value = 1.0
    v.mode.value = "agreement"
    colours = {tuple(c) for c in v.render().reshape(-1, 3).tolist()}
    assert set(AGREEMENT_COLOURS.values()) <= colours
    assert AGREEMENT_CAPTION in v.status.value


def test_directions_are_marked_at_the_edges_in_radiological_display(volume):
    from hippo_utils.data.preprocess import display_directions

    assert display_directions("coronal") == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    assert display_directions("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert display_directions("sagittal") == {"top": "S", "bottom": "I", "left": "A", "right": "P"}
    assert display_directions("axis0") is None
    img, lab, _ = volume
    v = SliceViewer(img, label=lab, spacing=(1.0, 1.0, 1.0), display_size=200)
    marked = v.render()
    v.show_directions.value = False
    plain = v.render()
    changed = np.argwhere((marked != plain).any(axis=-1))
    h, w = plain.shape[:2]
    assert len(changed)  # letters drawn...
    near_edge = (changed[:, 0] < 22) | (changed[:, 0] > h - 22) | (changed[:, 1] < 22) | (changed[:, 1] > w - 22)
    assert near_edge.all()  # ...at the edges only, the anatomy untouched
