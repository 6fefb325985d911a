"""Bad input gets a clear error naming the file, section or key, and nothing half-written.

(Issue 7 gathers the full list here; config errors are in test_config.py, folder-layout
errors in test_derive.py, mask and weight errors in test_dataset.py and test_trainer.py.)
"""

import gzip

import nibabel as nib
import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.derive import derive_dataset
from hippo_utils.preprocess import normalize_intensity
from hippo_utils.volumes import load_labels, load_volume

from helpers import toy_volume, write_config, write_nifti


def test_truncated_nifti_names_the_file(tmp_path):
    img, _ = toy_volume(0)
    path = write_nifti(tmp_path / "cut.nii.gz", img)
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) // 2]))  # a download that stopped half way
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: .*(truncated|corrupt|cannot read)"):
        load_volume(path)
    path.write_bytes(b"not a nifti at all")
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: cannot read"):
        load_volume(path)


def test_analyze_header_without_image(tmp_path):
    img, _ = toy_volume(0)
    nib.save(nib.AnalyzeImage(img, np.eye(4)), str(tmp_path / "HFH_001.hdr"))
    (tmp_path / "HFH_001.img").unlink()
    with pytest.raises(FileNotFoundError, match=r"HFH_001\.hdr: .*HFH_001\.img is missing"):
        load_volume(tmp_path / "HFH_001.hdr")


def test_time_series_and_2d_images_are_refused(tmp_path):
    series = write_nifti(tmp_path / "fmri.nii.gz", np.zeros((8, 8, 8, 5), np.float32))
    with pytest.raises(ValueError, match=r"fmri\.nii\.gz: .*4th axis of 5"):
        load_volume(series)
    flat = write_nifti(tmp_path / "slice.nii.gz", np.zeros((64, 64, 1), np.float32))
    with pytest.raises(ValueError, match=r"slice\.nii\.gz: a 3D volume is needed.*2D image"):
        load_volume(flat)
    assert load_volume(write_nifti(tmp_path / "ok.nii.gz", np.ones((4, 5, 6, 1), np.float32))).shape == (4, 5, 6)


def test_nan_and_constant_volumes(tmp_path):
    img, _ = toy_volume(0)
    img[1, 2, 3] = np.nan
    img[2, 2, 2] = np.inf
    with pytest.raises(ValueError, match=r"nan\.nii\.gz: 2 voxels are NaN or infinite"):
        load_volume(write_nifti(tmp_path / "nan.nii.gz", img))
    flat = load_volume(write_nifti(tmp_path / "flat.nii.gz", np.full((6, 6, 6), 7.0, np.float32)))
    with pytest.raises(ValueError, match=r"flat\.nii\.gz: the volume is constant"):
        normalize_intensity(flat)


@pytest.mark.parametrize("dtype, scale", [(np.int16, 32000), (np.uint16, 65000), (np.int32, 2_000_000_000),
                                          (np.uint8, 255)])
def test_integer_ranges_normalise_alike(tmp_path, dtype, scale):
    img, _ = toy_volume(1)
    ref = normalize_intensity(img)
    stored = np.rint(img / img.max() * scale).astype(dtype)  # no wrap-around anywhere
    vol = load_volume(write_nifti(tmp_path / f"{dtype.__name__}.nii.gz", stored))
    assert vol.data.dtype == np.float32 and vol.data.max() == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(normalize_intensity(vol), ref, atol=0.02)


def test_labels_on_another_grid(tmp_path):
    img, lab = toy_volume(0)
    vol = load_volume(write_nifti(tmp_path / "img.nii.gz", img))
    with pytest.raises(ValueError, match=r"lab_shape\.nii\.gz: label shape .* differs from image .*img\.nii\.gz"):
        load_labels(write_nifti(tmp_path / "lab_shape.nii.gz", lab[:-1]), like=vol)
    moved = np.eye(4)
    moved[0, 3] = 5.0
    with pytest.raises(ValueError, match=r"lab_affine\.nii\.gz: label affine differs from the image"):
        load_labels(write_nifti(tmp_path / "lab_affine.nii.gz", lab, moved), like=vol)
    with pytest.raises(ValueError, match=r"frac\.nii\.gz: label values must be integers"):
        load_labels(write_nifti(tmp_path / "frac.nii.gz", lab.astype(np.float32) * 0.5), like=vol)


def test_non_image_files_mixed_in_are_ignored(tmp_path):
    root = tmp_path / "pairs"
    for i in range(3):
        img, lab = toy_volume(i)
        write_nifti(root / "images" / f"s{i}.nii.gz", img)
        write_nifti(root / "labels" / f"s{i}.nii.gz", lab)
    for junk in ("images/README.txt", "images/.DS_Store", "labels/notes.csv", "images/._s0.nii.gz"):
        (root / junk).write_text("junk")
    cfg = load_config(write_config(tmp_path / "c.config", {
        "source_dir": str(root), "output_dir": str(tmp_path / "out"), "plane": "axis1"}, size=32))
    result = derive_dataset(cfg, progress=False)
    assert sorted(sum(result.subjects.values(), [])) == ["s0", "s1", "s2"]


def test_paths_that_do_not_exist(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.config", {
        "source_dir": str(tmp_path / "no_such_folder"), "output_dir": str(tmp_path / "out")}))
    with pytest.raises(FileNotFoundError, match="source folder not found: .*no_such_folder"):
        derive_dataset(cfg, progress=False)
    from hippo_utils.dataset import make_dataset

    with pytest.raises(FileNotFoundError, match=r"out/train/images.*derive the dataset first"):
        make_dataset(cfg, "train")
    assert not (tmp_path / "out").exists()
