import numpy as np
import pytest

from hippo_utils.labels import palette
from hippo_utils.viewer import SliceViewer


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
    for control, value in ((v.opacity, 0.9), (v.mode, "contour"), (v.mode, "side by side"),
                           (v.show_label, False), (v.window, (0.2, 0.6)), (v.slider, 0)):
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
    img, lab, pred = volume
    affine_spacing = (1.0, 1.0, 1.0)
    v = SliceViewer(img, label=lab, prediction=lab, spacing=affine_spacing)
    assert "slice Dice 1.000" in v.status.value and "mm" in v.status.value


def test_pages_through_a_derived_dataset(tiny_config):
    v = SliceViewer.from_dataset(tiny_config.derive.output_dir, "train", rgb_map=tiny_config.mask.rgb_map)
    assert v.plane.disabled and v.slider.max + 1 == len(list((tiny_config.derive.output_dir / "train" / "images")
                                                              .iterdir()))
    before = v.image.value
    v.slider.value = (v.slider.value + 1) % (v.slider.max + 1)
    assert v.image.value != before and "slice" in v.status.value


def test_agreement_mode_colours_the_prediction_against_the_truth(volume):
    from hippo_utils.plots import AGREEMENT_CAPTION, AGREEMENT_COLOURS

    img, lab, pred = volume  # pred is lab shifted one slice along axis 0: TP, FP and FN all occur
    v = SliceViewer(img, label=lab, prediction=pred, spacing=(1.0, 1.0, 1.0), plane="coronal")
    v.opacity.value = 1.0
    v.mode.value = "agreement"
    colours = {tuple(c) for c in v.render().reshape(-1, 3).tolist()}
    assert set(AGREEMENT_COLOURS.values()) <= colours
    assert AGREEMENT_CAPTION in v.status.value


def test_directions_are_marked_at_the_edges_in_radiological_display(volume):
    from hippo_utils.preprocess import display_directions

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
