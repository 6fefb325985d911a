import csv

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hippo_utils import load_config
from hippo_utils.data.components import keep_largest, split_hemispheres
from hippo_utils.data.labels import Labels
from hippo_utils.data.volumes import Volume, load_volume
from hippo_utils.inference.predict import Ensemble, segment_volume
from hippo_utils.inference.segment import infer_folder, infer_volume, infer_volumes
from hippo_utils.inference.volumetry import volumetry
from hippo_utils.model.metrics import dice_score, hd95

from helpers import toy_volume, write_config, write_nifti


class BrightIsHippocampus:
    """A stand-in model: class 1 where the input is bright. It lets the geometry be
    checked exactly: any slip in orientation, resizing or affine misplaces the labels."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, training=False):
        self.calls += 1
        fg = (np.asarray(x)[..., 0] > 127).astype(np.float32)
        return np.stack([1 - fg, fg], axis=-1)


class SoftBright:
    """A stand-in model whose hippocampus probability is the input's brightness (0..1)."""

    def predict_on_batch(self, x):
        fg = np.clip(np.asarray(x)[..., :1] / 255.0, 0, 1)
        return np.concatenate([1 - fg, fg], axis=-1)


def _cfg(tmp_path, plane="coronal", size=64, label_map=None, extra=""):
    derive = {"plane": plane, "label_map": label_map or {1: 1, 2: 1}}
    return load_config(write_config(tmp_path / "c.config", derive, size=size, extra=extra))


def _blobs(shape=(40, 30, 36)):
    """Two bright blobs, left and right of the middle of axis 0, on a dim background."""
    img = np.full(shape, 20.0, np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[6:14, 10:20, 12:24] = 1
    lab[26:34, 9:18, 14:22] = 2
    img[lab > 0] = 200.0
    img[0, 0, 0] = 255.0  # keep the bright blobs below the top percentile
    return img, lab


def _oblique_affine():
    """Anisotropic, rotated about two axes, not RAS (x flipped), with an offset."""

    def rot(axis, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        m = np.eye(3)
        i, j = [a for a in range(3) if a != axis]
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    aff = np.eye(4)
    aff[:3, :3] = rot(2, 12) @ rot(0, -8) @ np.diag([-0.9, 2.0, 1.1])
    aff[:3, 3] = [40.0, -20.0, 15.0]
    return aff


def test_volume_comes_back_on_its_own_grid(tmp_path):
    img, lab = _blobs()
    affine = _oblique_affine()
    src = tmp_path / "sub-01.nii.gz"
    nib.save(nib.Nifti1Image(img, affine), str(src))
    cfg = _cfg(tmp_path, plane="coronal", size=64, extra="[infer]\nleft_right_labels = (1, 2)\n")
    result = infer_volume(BrightIsHippocampus(), cfg, src, tmp_path / "out")
    out = nib.load(str(result.labels_path))
    assert result.labels_path.name == "sub-01_labels.nii.gz"
    assert out.shape == img.shape
    np.testing.assert_allclose(out.affine, affine, atol=1e-5)
    np.testing.assert_allclose(out.header.get_sform(), affine, atol=1e-5)
    pred = np.asarray(out.dataobj)
    assert dice_score(lab > 0, pred > 0) > 0.99  # the labels land on the right voxels
    # This affine is LAS (x flipped): a higher axis-0 index points to the subject's left,
    # so the blob at high axis-0 indices is the left hippocampus (label 1).
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    assert (pred[26:34, 9:18, 14:22] == 1).all() and (pred[6:14, 10:20, 12:24] == 2).all()


def test_ensemble_fuses_planes_on_the_source_grid(tmp_path):
    img, lab = _blobs()
    vol = Volume(img, _oblique_affine())
    cfgs = [
        load_config(write_config(tmp_path / f"{p}.config", {"plane": p, "label_map": {1: 1, 2: 1}}, size))
        for p, size in (("coronal", 64), ("axial", 48), ("sagittal", 32))
    ]
    model = BrightIsHippocampus()
    single = segment_volume(model, cfgs[0], vol)
    # one member: the same labels as the model alone (probabilities resized, then argmax)
    np.testing.assert_array_equal(segment_volume(Ensemble(((model, cfgs[0]),)), cfgs[0], vol), single)
    # three planes, three input sizes: every member lands on the source grid
    fused = segment_volume(Ensemble(tuple((model, c) for c in cfgs)), cfgs[0], vol)
    assert fused.shape == img.shape and dice_score(lab > 0, fused > 0) > 0.99
    for c in cfgs:
        assert dice_score(lab > 0, segment_volume(model, c, vol) > 0) > 0.97
    # volumetry from an ensemble's probabilities (on the grid already) is the model's own
    soft = SoftBright()
    alone = infer_volume(soft, cfgs[0], vol, tmp_path / "alone", qc=False).volumetry
    one = infer_volume(Ensemble(((soft, cfgs[0]),)), cfgs[0], vol, tmp_path / "one", qc=False).volumetry
    assert alone["label_1_voxels"] > 0 and alone["label_1_mm3"] != alone["label_1_voxels"] * vol.voxel_mm3
    assert one.pop("qc") == alone.pop("qc") and one == pytest.approx(alone, rel=1e-6)


def test_ensemble_refuses_models_of_other_classes(tmp_path):
    a = _cfg(tmp_path, label_map={1: 1, 2: 1})
    b = load_config(
        write_config(tmp_path / "b.config", {"label_map": {1: 1, 2: 2}}),
        ["model.num_classes=3", "mask.rgb_map={(0,0,0):0, (255,0,0):1, (0,255,0):2}"],
    )
    with pytest.raises(ValueError, match=r"runs/b: its \[model\] num_classes 3 differs from the first model's 2"):
        Ensemble(((None, a), (None, b)), ("runs/a", "runs/b"))
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble(())


def test_hemisphere_split_follows_the_affine():
    img, lab = _blobs()
    for flip, left_blob in ((1.0, slice(26, 34)), (-1.0, slice(6, 14))):  # RAS: higher x is right
        vol = Volume(img, np.diag([flip * -1.0, 1.0, 1.0, 1.0]))  # flip=1 -> LAS, -1 -> RAS
        left, right = split_hemispheres(lab > 0, vol)
        assert left[left_blob].sum() == (lab[left_blob] > 0).sum()
        assert not (left & right).any() and ((left | right) == (lab > 0)).all()


def test_volumetry_matches_a_hand_count(tmp_path):
    cfg = _cfg(tmp_path, extra="[infer]\nleft_right_labels = (1, 2)\n")
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:2, :3, :4] = 1  # 24 voxels
    labels[5:6, :5, :2] = 2  # 10 voxels
    affine = np.diag([0.5, 2.0, 1.5, 1.0])  # 1.5 mm^3 per voxel
    row = volumetry(labels, Volume(labels.astype(np.float32), affine), cfg)
    assert row["left_mm3"] == 24 * 1.5 and row["right_mm3"] == 10 * 1.5 and row["total_mm3"] == 34 * 1.5
    assert row["asymmetry_index"] == pytest.approx((36 - 15) / ((36 + 15) / 2), abs=1e-4)


def test_partial_volumes_count_each_voxel_by_its_probability(tmp_path):
    from hippo_utils.inference.volumetry import partial_volumes

    labels = np.zeros((12, 8, 8), np.uint8)
    labels[2:4, 2:4, 2:4] = 1  # 8 voxels of the left side of class 1
    labels[5, 2:4, 2:4] = 2  # the right side, same class, one voxel gap to the left
    labels[8:10, 2:4, 2:4] = 3  # another class, touching nothing
    probs = np.zeros((*labels.shape, 3), np.float32)
    probs[..., 0] = 1
    certain = {1: 1, 2: 1, 3: 2}
    for value, cls in certain.items():
        probs[labels == value] = np.eye(3)[cls]
    # certain probabilities: the partial volumes are the counts
    assert partial_volumes(labels, probs, certain, 2.0) == {1: 16.0, 2: 8.0, 3: 16.0}
    probs[4, 2, 2] = (0.6, 0.4, 0)  # in both hemispheres' shells: half of its 0.4 to each
    probs[2, 2, 2] = (0.3, 0.7, 0)  # a voxel of the left that the model was unsure of
    probs[11, 2, 2] = (0.5, 0, 0.5)  # two voxels from class 2: outside its shell, not counted
    probs[0, 0, 0] = (0.1, 0.9, 0)  # far from every label: an island the post-processing dropped
    got = partial_volumes(labels, probs, certain, 1.0)
    assert got == pytest.approx({1: 8 - 0.3 + 0.2, 2: 4 + 0.2, 3: 8.0})
    # a label at the volume's edge: its box is cut there, the shell is what lies inside
    edge = np.zeros((3, 3, 3), np.uint8)
    edge[0, 0, 0] = 1
    p_edge = np.full((3, 3, 3, 2), 0.5, np.float32)
    p_edge[0, 0, 0] = (0, 1)
    assert partial_volumes(edge, p_edge, {1: 1}, 1.0) == {1: 1 + 3 * 0.5}
    # the other hemisphere of the same class is never counted (its voxels are in the shell)
    labels[4, 2:4, 2:4] = 2
    probs[4, 2, 2] = (0, 1, 0)
    assert partial_volumes(labels, probs, {1: 1, 2: 1}, 1.0)[1] == pytest.approx(8 - 0.3)


def test_volumetry_from_probabilities_keeps_the_counts(tmp_path):
    cfg = _cfg(tmp_path, extra="[infer]\nleft_right_labels = (1, 2)\n")
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:2, :3, :4] = 1
    labels[5:6, :5, :2] = 2
    probs = np.stack([labels == 0, labels > 0], axis=-1).astype(np.float32)
    probs[labels == 1] = (0.5, 0.5)  # the model is half sure of the left side
    row = volumetry(labels, Volume(labels.astype(np.float32), np.eye(4)), cfg, probs)
    assert (row["left_mm3"], row["right_mm3"], row["total_mm3"]) == (12.0, 10.0, 22.0)
    assert (row["label_1_voxels"], row["label_2_voxels"]) == (24, 10)
    assert row["asymmetry_index"] == pytest.approx(2 / 11, abs=1e-4)


def test_probabilities_near_the_foreground_are_those_of_the_whole_grid(tmp_path):
    from scipy import ndimage

    from hippo_utils.inference.predict import classes_on_grid, grid_prediction, prepare_volume, slice_probabilities

    img, lab = _blobs()
    img[lab == 2] = 20.0  # one blob only
    vol = Volume(img, np.diag([1.0, 1.2, 0.9, 1.0]))
    for plane in ("coronal", "axial", "sagittal"):
        cfg = _cfg(tmp_path, plane=plane)
        prepared = prepare_volume(cfg, vol)
        probs = 0.01 + 0.98 * slice_probabilities(BrightIsHippocampus(), cfg, prepared)  # never quite sure
        whole = grid_prediction(prepared.geom, probs)[1]
        classes, sparse = grid_prediction(prepared.geom, probs, near_foreground=True)
        assert whole.shape == sparse.shape == (*vol.shape, 2)
        shell = ndimage.binary_dilation(classes > 0)  # what volumetry reads
        np.testing.assert_array_equal(sparse[shell], whole[shell], err_msg=plane)
        np.testing.assert_array_equal(classes, classes_on_grid(prepared.geom, probs), err_msg=plane)
        np.testing.assert_array_equal(classes, whole.argmax(-1), err_msg=plane)
        assert ((sparse[..., 0] == 1) & (whole[..., 0] < 1)).any(), plane  # slices far from the blob: skipped


def test_a_source_label_mapped_to_the_background_is_never_written(tmp_path):
    labels_of = Labels({1: 1, 2: 0}, {(0, 0, 0): 0, (255, 0, 0): 1})  # label 2 ignored, as background
    classes = np.zeros((4, 4, 4), np.uint8)
    classes[1:3, 1:3, 1:3] = 1
    written = labels_of.to_source(classes, Volume(classes.astype(np.float32), np.eye(4)))
    np.testing.assert_array_equal(written, classes)  # the background stays 0, not 2
    assert labels_of.output_values() == [1] and labels_of.background_values() == [2]
    cfg = _cfg(tmp_path, label_map={1: 1, 2: 0}, extra="[infer]\nleft_right_labels = None\n")
    row = volumetry(written, Volume(written.astype(np.float32), np.eye(4)), cfg)
    assert row["label_1_voxels"] == 8 and "label_2_mm3" not in row and row["total_mm3"] == 8.0


def test_merged_classes_map_back_to_source_labels(tmp_path):
    img, lab = _blobs()
    vol = Volume(img, np.eye(4))  # RAS: the low-index blob is the left one
    merged = _cfg(tmp_path, extra="[infer]\nleft_right_labels = (1, 2)\n")
    np.testing.assert_array_equal(Labels.from_config(merged).to_source((lab > 0).astype(np.uint8), vol), lab)
    one_sided = _cfg(tmp_path, extra="[infer]\nleft_right_labels = None\n")
    np.testing.assert_array_equal(
        Labels.from_config(one_sided).to_source((lab > 0).astype(np.uint8), vol), (lab > 0) * 1
    )


def test_keep_largest_components():
    classes = np.zeros((10, 10, 10), np.uint8)
    classes[0:3, 0:3, 0:3] = 1
    classes[6:8, 6:8, 6:8] = 1
    classes[9, 0, 9] = 1
    kept = keep_largest(classes, 2)
    assert kept.sum() == 27 + 8 and kept[9, 0, 9] == 0
    assert (keep_largest(classes, 0) == classes).all()
    assert (keep_largest(np.zeros((4, 4, 4), np.uint8), 1) == 0).all()

    from scipy import ndimage  # the box around the foreground gives what the whole volume gives

    rng = np.random.default_rng(0)
    noisy = np.zeros((30, 30, 30), np.uint8)
    noisy[5:25, 8:20, 10:28] = rng.integers(0, 3, (20, 12, 18)) * (rng.random((20, 12, 18)) < 0.3)
    expected = noisy.copy()
    for c in (1, 2):
        comp, _ = ndimage.label(noisy == c, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(comp.ravel())[1:]
        expected[(comp > 0) & (comp != np.argmax(sizes) + 1)] = 0
    np.testing.assert_array_equal(keep_largest(noisy, 1), expected)


def test_hd95_by_hand():
    a = np.zeros((5, 5, 8), bool)
    b = np.zeros((5, 5, 8), bool)
    a[2, 2, 1] = True
    b[2, 2, 4] = True  # 3 voxels apart along an axis of 2 mm
    assert hd95(a, b, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(a, a, (1.0, 1.0, 2.0)) == 0.0
    assert hd95(a & False, a & False, (1, 1, 1)) == 0.0
    assert np.isnan(hd95(a, a & False, (1, 1, 1)))


def test_folder_inference_is_batched_and_keeps_input_sizes(tmp_path):
    images, masks = tmp_path / "mini" / "images", tmp_path / "mini" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i, size in enumerate([(40, 50), (64, 64), (30, 20), (64, 80), (50, 50)]):
        img = np.zeros(size, np.uint8)
        img[5:20, 4:16] = 220
        Image.fromarray(img).save(images / f"s{i}.png")
        mask = np.zeros((*size, 3), np.uint8)
        mask[5:20, 4:16] = (255, 0, 0)
        Image.fromarray(mask).save(masks / f"s{i}.png")
    cfg = _cfg(
        tmp_path,
        size=64,
        extra=f"[infer]\nimages_dir = {str(images)!r}\noutput_dir = {str(tmp_path / 'out')!r}\nbatch_size = 2\n",
    )
    model = BrightIsHippocampus()
    result = infer_folder(model, cfg, progress=False)
    assert model.calls == 3  # 5 images in batches of 2, never one call per image
    for i, size in enumerate([(40, 50), (64, 64), (30, 20), (64, 80), (50, 50)]):
        pred = np.asarray(Image.open(tmp_path / "out" / f"s{i}.png").convert("RGB"))
        assert pred.shape[:2] == size
        assert dice_score(pred[..., 0] > 0, np.asarray(Image.open(masks / f"s{i}.png"))[..., 0] > 0) > 0.9
        # the overlay is the input, with the predicted pixels blended 45% towards the class colour (red)
        grey = np.asarray(Image.open(images / f"s{i}.png")).astype(float)
        shown = np.asarray(Image.open(tmp_path / "out" / "overlays" / f"s{i}.png").convert("RGB")).astype(float)
        on = pred[..., 0] > 0
        assert shown.shape == (*size, 3) and on.any() and not on.all()
        np.testing.assert_array_equal(shown[~on], np.repeat(grey[~on][:, None], 3, axis=1))
        np.testing.assert_allclose(shown[on], 0.55 * grey[on][:, None] + 0.45 * np.array([255.0, 0, 0]), atol=1)
        merged = Image.open(result.merged_dir / f"s{i}.png")
        assert merged.size == (3 * size[1], size[0])
        np.testing.assert_array_equal(
            np.asarray(merged.convert("RGB"))[:, : size[1]],  # the input comes first
            np.repeat(grey[..., None], 3, axis=2),
        )


def test_infer_volumes_with_a_trained_model(tiny_model_dir, synthetic_hfh, tmp_path):
    cfg = tiny_model_dir
    results = infer_volumes(
        cfg.train.model_dir,
        [synthetic_hfh / "Train" / "HFH_001.img"],
        tmp_path / "out",
        labels_dir=synthetic_hfh / "Train" / "Labels",
        progress=False,
    )
    src = load_volume(synthetic_hfh / "Train" / "HFH_001.img")
    out = nib.load(str(tmp_path / "out" / "HFH_001_labels.nii.gz"))
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine)
    rows = list(csv.DictReader((tmp_path / "out" / "volumetry.csv").open()))
    assert rows[0]["subject"] == "HFH_001" and "asymmetry_index" in rows[0]
    metrics = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert [r["subject"] for r in metrics] == ["HFH_001", "mean", "std"]
    assert "label1_hd95_mm" in metrics[0] and "hippocampus_dice" in metrics[0]
    # the one result names its input and its files; its voxel counts are the written labels',
    # its volumes the model's probabilities over those labels and one voxel around them
    (result,) = results
    assert result.name == "HFH_001" and result.source == synthetic_hfh / "Train" / "HFH_001.img"
    assert result.labels_path == tmp_path / "out" / "HFH_001_labels.nii.gz"
    assert result.qc_path == tmp_path / "out" / "HFH_001_qc.png" and result.qc_path.is_file()
    labels = np.asarray(out.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2}
    voxel_mm3 = abs(np.linalg.det(src.affine[:3, :3]))
    from scipy import ndimage

    from hippo_utils.inference.predict import volume_probabilities
    from hippo_utils.model.folder import load_model_dir

    model, saved = load_model_dir(cfg.train.model_dir)
    hippocampus = volume_probabilities(model, saved, src)[..., 1]  # every slice, the whole grid
    left, right = (
        hippocampus[ndimage.binary_dilation(labels == side) & (labels != other)].sum() * voxel_mm3
        for side, other in ((1, 2), (2, 1))
    )
    volumes = {k: v for k, v in result.volumetry.items() if k != "qc"}
    assert volumes == {
        "label_1_mm3": pytest.approx(left, abs=0.02),
        "label_1_voxels": (labels == 1).sum(),
        "label_2_mm3": pytest.approx(right, abs=0.02),
        "label_2_voxels": (labels == 2).sum(),
        "total_mm3": pytest.approx(left + right, abs=0.02),
        "left_mm3": pytest.approx(left, abs=0.02),
        "right_mm3": pytest.approx(right, abs=0.02),
        "asymmetry_index": pytest.approx((left - right) / ((left + right) / 2), abs=1e-4, nan_ok=True),
    }
    from hippo_utils.inference.volumetry import plausibility_flags

    assert result.volumetry["qc"] == plausibility_flags(volumes)  # a tiny model: its flags, whatever they are
    assert {k: float(v) for k, v in rows[0].items() if k in volumes} == pytest.approx(
        volumes, nan_ok=True
    )  # the table says the same
    assert rows[0]["qc"] == result.volumetry["qc"] and rows[0]["input"] == str(result.source.resolve())
    truth = load_volume(synthetic_hfh / "Train" / "Labels" / "HFH_001_Hipp_Labels.img").data
    assert result.metrics["hippocampus_dice"] == round(dice_score(truth > 0, labels > 0), 4)
    assert float(metrics[0]["hippocampus_dice"]) == result.metrics["hippocampus_dice"]
    # the QC figure: three greyscale planes, the predicted labels over them, and a legend of those labels
    from hippo_utils.data.labels import LABEL_COLOURS

    from helpers import colour_mask, png_pixels

    qc = png_pixels(result.qc_path)
    assert 700 < qc.shape[1] < 1100 and 300 < qc.shape[0] < qc.shape[1]  # 13 x 4.6 inches at 80 dpi
    grey = (qc[..., 0] == qc[..., 1]) & (qc[..., 1] == qc[..., 2])
    assert grey.mean() > 0.8 and len(np.unique(qc[..., 0][grey])) > 100  # the MRI, not a blank figure
    rgb = qc.astype(int)
    legend_top = qc.shape[0]
    for value, colour in enumerate(LABEL_COLOURS[1:], start=1):
        patch = np.nonzero(colour_mask(qc, colour))[0]  # the legend names the labels present, in their colours
        assert (len(patch) > 30) == bool((labels == value).any()), f"legend patch of label {value}"
        legend_top = min(legend_top, patch.min()) if len(patch) else legend_top
    for value in np.unique(labels[labels > 0]):  # over the slices: the label's colour blended at alpha 0.55
        c = [int(LABEL_COLOURS[value][i : i + 2], 16) for i in (1, 3, 5)]
        blended = (np.abs((rgb[..., 0] - rgb[..., 1]) - 0.55 * (c[0] - c[1])) <= 2) & (
            np.abs((rgb[..., 1] - rgb[..., 2]) - 0.55 * (c[1] - c[2])) <= 2
        )
        assert blended[: legend_top - 5].sum() > 50, f"label {value} is not drawn over the slices"
    import json

    run = json.loads((tmp_path / "out" / "run.json").read_text())
    from hippo_utils.data.volumes import volume_sha256

    assert run["inputs"]["HFH_001"]["sha256"] == volume_sha256(synthetic_hfh / "Train" / "HFH_001.img")  # .hdr + .img
    assert run["model_provenance"]["hippo_utils"] and run["model_dir"] == str(cfg.train.model_dir.resolve())

    # two model folders fuse; the same model twice gives the same labels
    from hippo_utils.cli import main

    assert (
        main(
            [
                "--quiet",
                "infer-volume",
                str(cfg.train.model_dir),
                str(synthetic_hfh / "Train" / "HFH_001.img"),
                "--out",
                str(tmp_path / "fused"),
                "--add-model",
                str(cfg.train.model_dir),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        np.asarray(nib.load(str(tmp_path / "fused" / "HFH_001_labels.nii.gz")).dataobj), np.asarray(out.dataobj)
    )
    fused = json.loads((tmp_path / "fused" / "run.json").read_text())
    assert [m["model_dir"] for m in fused["ensemble"]] == [str(cfg.train.model_dir.resolve())] * 2

    # [infer] settings can change at inference, nothing else
    infer_volumes(
        cfg.train.model_dir,
        [synthetic_hfh / "Train" / "HFH_001.img"],
        tmp_path / "tta",
        progress=False,
        overrides=["infer.flip_tta=True"],
    )
    assert nib.load(str(tmp_path / "tta" / "HFH_001_labels.nii.gz")).shape == src.shape
    with pytest.raises(ValueError, match=r"--set model.base_filters=8: only \[infer\] settings"):
        infer_volumes(
            cfg.train.model_dir,
            [synthetic_hfh / "Train" / "HFH_001.img"],
            tmp_path / "bad",
            progress=False,
            overrides=["model.base_filters=8"],
        )
    assert not (tmp_path / "bad").exists()


def test_background_shortcut_is_exact():
    from hippo_utils.data.preprocess import classes_from_probs, image_geometry

    rng = np.random.default_rng(0)
    geom = image_geometry((37, 53), (32, 32))
    for fg_scale in (0.0, 0.45, 1.0):  # no foreground anywhere, almost, and some
        probs = rng.random((32, 32, 3)).astype(np.float32)
        probs[..., 1:] *= fg_scale
        probs[..., 0] += 0.9 if fg_scale < 1 else 0.0
        probs /= probs.sum(-1, keepdims=True)
        full = np.argmax(geom.from_model(probs), axis=-1)
        np.testing.assert_array_equal(classes_from_probs(geom, probs), full)


def test_context_slices_feed_the_same_input_in_derivation_and_inference(tmp_path):
    """2.5D: channels are slices i-1, i, i+1 (edges repeat), or i-2, i, i+2 with context_step 2,
    identical in the derived PNGs and in whole-volume inference; without context the PNG is
    the grey slice itself."""
    from hippo_utils.data.derive import derive_dataset, read_manifest
    from hippo_utils.data.preprocess import image_geometry, model_slices, normalize_intensity, slice_geometry
    from hippo_utils.data.volumes import load_volume

    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32) / 3
    same_size = image_geometry((2, 2), (2, 2))  # to_model changes nothing: the channels alone are tested
    ctx = model_slices(stack, same_size, 1) // 85  # slice k is k * 85 in 8 bits
    assert ctx.shape == (4, 2, 2, 3) and ctx.dtype == np.uint8
    assert ctx[0, 0, 0].tolist() == [0, 0, 1] and ctx[2, 0, 0].tolist() == [1, 2, 3]
    assert ctx[3, 0, 0].tolist() == [2, 3, 3]
    wide = model_slices(stack, same_size, 1, step=2) // 85
    assert [wide[i, 0, 0].tolist() for i in range(4)] == [[0, 0, 2], [0, 1, 3], [0, 2, 3], [1, 3, 3]]
    assert model_slices(stack, same_size, 1, indices=[3])[0].tolist() == (ctx[3] * 85).tolist()

    for i in range(3):
        img, lab = toy_volume(i)
        write_nifti(tmp_path / "src" / "images" / f"s{i}.nii.gz", img)
        write_nifti(tmp_path / "src" / "labels" / f"s{i}.nii.gz", lab)
    images = {}
    for c, step in ((0, 1), (1, 1), (1, 2)):
        cfg = load_config(
            write_config(
                tmp_path / f"c{c}{step}.config",
                {
                    "source_dir": str(tmp_path / "src"),
                    "output_dir": str(tmp_path / f"out{c}{step}"),
                    "plane": "axis1",
                    "context_slices": c,
                    "context_step": step,
                    "label_map": {1: 1, 2: 1},
                    "empty_slice_ratio": 1.0,
                },
                size=32,
            ),
            ["model.image_channels=3"],
        )
        derive_dataset(cfg, progress=False)
        rows = [r for r in read_manifest(cfg.derive.output_dir) if r["subject"] == "s1"]
        images[c, step] = {
            int(r["slice_index"]): np.asarray(Image.open(cfg.derive.output_dir / r["image"])) for r in rows
        }
        vol = load_volume(tmp_path / "src" / "images" / "s1.nii.gz")
        geom = slice_geometry(vol, "axis1", cfg.image_size)
        norm = geom.orient(normalize_intensity(vol, cfg.derive.intensity_percentiles))
        x = model_slices(norm, geom, c, step)  # what volume inference feeds the model
        for idx, png in images[c, step].items():
            np.testing.assert_array_equal(x[idx], png if png.ndim == 3 else png[..., None])
    assert images[1, 1][min(images[1, 1])].ndim == 3
    inner = sorted(images[1, 1])[2]  # the wider context differs in the outer channels only
    assert np.array_equal(images[1, 1][inner][..., 1], images[1, 2][inner][..., 1])
    assert not np.array_equal(images[1, 1][inner], images[1, 2][inner])

    class Recorder:  # folder inference feeds the derived PNGs' neighbour channels unchanged
        def predict_on_batch(self, x):
            self.seen = x
            return np.stack([np.ones(x.shape[:3]), np.zeros(x.shape[:3])], axis=-1)

    mini = cfg.derive.output_dir / "mini_test" / "images"
    infer_folder(model := Recorder(), cfg, mini, tmp_path / "folder_out", progress=False)
    pngs = [np.asarray(Image.open(p)) for p in sorted(mini.glob("*.png"))]
    np.testing.assert_array_equal(model.seen, np.stack(pngs).astype(np.float32))
    for step in (1, 2):
        for idx, png in images[1, step].items():
            np.testing.assert_array_equal(png[..., 1], images[0, 1][idx])  # the centre is the slice itself
            if idx + step in images[0, 1]:
                np.testing.assert_array_equal(png[..., 2], images[0, 1][idx + step])


def test_context_slices_need_three_channels(tmp_path):
    with pytest.raises(ValueError, match=r"\[derive\] context_slices.*image_channels = 3"):
        load_config(write_config(tmp_path / "c.config", {"context_slices": 1}), ["model.image_channels=1"])
    with pytest.raises(ValueError, match=r"\[derive\] context_step.*got 0"):
        load_config(
            write_config(tmp_path / "c.config", {"context_slices": 1, "context_step": 0}), ["model.image_channels=3"]
        )
    with pytest.raises(ValueError, match=r"\[derive\] context_step.*context_slices = 0 there are none"):
        load_config(write_config(tmp_path / "c.config", {"context_step": 2}))


def test_flip_tta_averages_the_mirrored_prediction():
    """A model blind in its last column: with flip_tta the first and last columns get half
    the probability (each seen in one of the two passes), and the calls double."""
    from hippo_utils.inference.predict import predict_batches

    class BlindLastColumn:
        calls = 0

        def predict_on_batch(self, x):
            self.calls += 1
            fg = (x[..., :1] > 100).astype(np.float32)
            fg[:, :, -1] = 0
            return np.concatenate([1 - fg, fg], axis=-1)

    x = np.full((3, 4, 5, 1), 200, np.float32)
    model = BlindLastColumn()
    plain = predict_batches(model, x, 2)
    both = predict_batches(model, x, 2, flip=True)
    assert model.calls == 2 + 4
    assert plain[..., 1].tolist() == [[[1, 1, 1, 1, 0]] * 4] * 3
    assert both[..., 1].tolist() == [[[0.5, 1, 1, 1, 0.5]] * 4] * 3
    np.testing.assert_allclose(both.sum(-1), 1)


def test_slice_smoothing_makes_neighbouring_slices_agree(tmp_path):
    """A stand-in model whose foreground probability is the input brightness. Along axis 1:
    a run of sure slices with one faint slice inside (probability 0.3: a hole without
    smoothing, filled with it: 0.25 + 0.5 * 0.3 + 0.25 = 0.65), and one lone half-bright
    slice among sure background (0.6: kept without smoothing, dropped with it: 0.3)."""
    from hippo_utils.inference.predict import smooth_across_slices

    img = np.zeros((24, 20, 24), np.float32)
    img[8:16, 2:9, 8:16] = 255.0
    img[8:16, 5, 8:16] = 0.3 * 255
    img[8:16, 14, 8:16] = 0.6 * 255
    vol = Volume(img, np.eye(4))
    plain = _cfg(tmp_path, plane="axis1", size=32)
    smooth = load_config(plain.path, ["infer.slice_smoothing=True"])
    before, after = segment_volume(SoftBright(), plain, vol), segment_volume(SoftBright(), smooth, vol)
    centre = (slice(10, 14), slice(10, 14))
    assert not before[centre[0], 5, centre[1]].any() and after[centre[0], 5, centre[1]].all()
    assert before[centre[0], 14, centre[1]].all() and not after[:, 14].any()
    assert after[centre[0], 2:9, centre[1]].all()  # the sure run, its ends included, stays

    probs = np.random.default_rng(0).random((5, 3, 4, 2)).astype(np.float32)
    out = smooth_across_slices(probs)
    assert out.dtype == np.float32 and out.shape == probs.shape
    np.testing.assert_allclose(out[2], 0.25 * probs[1] + 0.5 * probs[2] + 0.25 * probs[3], rtol=1e-6)
    np.testing.assert_allclose(out[0], 0.75 * probs[0] + 0.25 * probs[1], rtol=1e-6)
    np.testing.assert_array_equal(smooth_across_slices(probs[:1]), probs[:1])  # one slice: nothing to smooth


@pytest.mark.parametrize("channels, order", [(3, "RGB"), (3, "BGR"), (1, "RGB")])
def test_folder_inference_reads_images_as_training_decodes_them(tmp_path, channels, order):
    """[image] color_order and [model] image_channels reach folder inference: a colour image's
    channels, reversed for BGR, or its grey for a one-channel model (hippo_utils.data.dataset)."""
    cfg = load_config(
        write_config(tmp_path / "c.config", {}, size=32),
        [f"model.image_channels={channels}", f'image.color_order="{order}"'],
    )
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(rgb).save(tmp_path / "imgs" / "a.png")

    class Recorder:
        def predict_on_batch(self, x):
            self.seen = x
            return np.stack([np.ones(x.shape[:3]), np.zeros(x.shape[:3])], axis=-1)

    infer_folder(model := Recorder(), cfg, tmp_path / "imgs", tmp_path / "out", progress=False)
    expected = (
        {"RGB": rgb, "BGR": rgb[..., ::-1]}[order]
        if channels == 3
        else np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    )
    np.testing.assert_array_equal(model.seen[0], expected.astype(np.float32))
