"""Bad input gets a clear error naming the file, section or key, and nothing half-written.

Every bad input (issues 7 and 18) has a test that expects a clear error; ``CASES`` below is the
index (the cases tested elsewhere test more of the same module), and
``test_every_case_has_its_test`` keeps the index true.
"""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.data.derive import derive_dataset
from hippo_utils.data.preprocess import normalize_intensity
from hippo_utils.data.volumes import load_labels, load_volume

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


@pytest.mark.parametrize(
    "dtype, scale", [(np.int16, 32000), (np.uint16, 65000), (np.int32, 2_000_000_000), (np.uint8, 255)]
)
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
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {"source_dir": str(root), "output_dir": str(tmp_path / "out"), "plane": "axis1"},
            size=32,
        )
    )
    result = derive_dataset(cfg, progress=False)
    assert sorted(sum(result.subjects.values(), [])) == ["s0", "s1", "s2"]


def test_paths_that_do_not_exist(tmp_path):
    cfg = load_config(
        write_config(
            tmp_path / "c.config", {"source_dir": str(tmp_path / "no_such_folder"), "output_dir": str(tmp_path / "out")}
        )
    )
    with pytest.raises(FileNotFoundError, match="source folder not found: .*no_such_folder"):
        derive_dataset(cfg, progress=False)
    from hippo_utils.data.dataset import make_dataset

    with pytest.raises(FileNotFoundError, match=r"out/train/images.*derive the dataset first"):
        make_dataset(cfg, "train")
    assert not (tmp_path / "out").exists()


def test_label_without_image(tmp_path):
    from hippo_utils.data.layouts import find_subjects

    for i in range(2):
        img, lab = toy_volume(i)
        write_nifti(tmp_path / "p" / "images" / f"s{i}.nii.gz", img)
        write_nifti(tmp_path / "p" / "labels" / f"s{i}.nii.gz", lab)
    write_nifti(tmp_path / "p" / "labels" / "s9.nii.gz", lab)
    with pytest.raises(ValueError, match="labels without an image: s9"):
        find_subjects(tmp_path / "p")


def test_mask_of_another_size_than_its_image(tmp_path):
    from PIL import Image

    root = tmp_path / "slices"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((40, 50), 90, np.uint8)).save(root / "images" / f"HFH_00{i}_010.png")
        Image.fromarray(np.zeros((40, 50 if i else 48, 3), np.uint8)).save(root / "masks" / f"HFH_00{i}_010.png")
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {"source_dir": str(root), "output_dir": str(tmp_path / "out"), "layout": "slices"},
            size=32,
        )
    )
    with pytest.raises(ValueError, match=r"HFH_000_010\.png: mask size 48x40 differs from its image"):
        derive_dataset(cfg, progress=False)
    assert not (tmp_path / "out").exists()


def test_too_many_layers_for_the_image_size(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"\[model\] image_height: 64 must be divisible by "
        r"2\*\*\(num_layers-1\) = 128.*too many layers for this size \(at most 7\)",
    ):
        load_config(write_config(tmp_path / "c.config", {}), ["model.num_layers=8"])


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    """A copy of a trained model folder, to spoil."""
    import shutil

    return Path(shutil.copytree(tiny_model_dir.train.model_dir, tmp_path / "models"))


def test_checkpoint_folder_of_the_original_system(model_copy, tmp_path):
    from hippo_utils.model.folder import load_model_dir

    original = tmp_path / "original_models"
    original.mkdir()
    (original / "best_model.h5").write_bytes((model_copy / "best.weights.h5").read_bytes())
    with pytest.raises(
        FileNotFoundError,
        match=r"original_models: no train_eval_infer\.config\. It holds "
        r"best_model\.h5: a model folder of another tool or of the original",
    ):
        load_model_dir(original)
    with pytest.raises(FileNotFoundError, match="model folder not found: .*nowhere"):
        load_model_dir(tmp_path / "nowhere")


def test_checkpoint_folder_from_another_version(model_copy, tiny_model_dir):
    import json

    from hippo_utils.model.folder import load_model_dir
    from hippo_utils.training.trainer import train

    prov = json.loads((model_copy / "provenance.json").read_text())
    prov.update(hippo_utils="0.0.1", keras="2.15.0")
    (model_copy / "provenance.json").write_text(json.dumps(prov))
    # a checkpoint in a format this Keras cannot read
    (model_copy / "last.keras").write_bytes(b"PK\x03\x04 not this version's archive")
    with pytest.raises(
        ValueError,
        match=r"last\.keras: cannot load this checkpoint.*written by hippo_utils 0\.0\.1 "
        r"with Keras 2\.15\.0; this is hippo_utils",
    ):
        load_model_dir(model_copy, which="last")
    # weights saved in another layout
    (model_copy / "best.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match=r"best\.weights\.h5: .*written by hippo_utils 0\.0\.1"):
        load_model_dir(model_copy)
    # a training state of another format cannot be resumed, and is left as it was
    (model_copy / "state.json").write_text('{"epochs_completed": 2}')
    cfg = load_config(tiny_model_dir.path, [f"train.model_dir={model_copy}"])
    with pytest.raises(ValueError, match=r"state\.json: not a training state this version can resume"):
        train(cfg, resume=True, progress=False)
    assert (model_copy / "state.json").read_text() == '{"epochs_completed": 2}'
    # a config key a later version added
    cfg_file = model_copy / "train_eval_infer.config"
    cfg_file.write_text(cfg_file.read_text().replace("[train]", "[train]\nwarmup_epochs = 3", 1))
    with pytest.raises(ValueError, match=r"warmup_epochs.*written by hippo_utils 0\.0\.1"):
        load_model_dir(model_copy)


# (case, test file, test function): every bad input the project promises a clear error for.
CASES = [
    ("truncated or corrupt .nii.gz", "test_bad_inputs.py", "test_truncated_nifti_names_the_file"),
    ("Analyze .hdr without its .img", "test_bad_inputs.py", "test_analyze_header_without_image"),
    ("4D volume with a real time axis", "test_bad_inputs.py", "test_time_series_and_2d_images_are_refused"),
    ("2D image where a volume is expected", "test_bad_inputs.py", "test_time_series_and_2d_images_are_refused"),
    ("NaN or Inf voxels", "test_bad_inputs.py", "test_nan_and_constant_volumes"),
    ("constant volume", "test_bad_inputs.py", "test_nan_and_constant_volumes"),
    ("integer overflow ranges", "test_bad_inputs.py", "test_integer_ranges_normalise_alike"),
    ("label shape or affine differs from the image", "test_bad_inputs.py", "test_labels_on_another_grid"),
    ("label values outside the configured map", "test_derive.py", "test_unknown_label_values_are_an_error"),
    ("image without a label", "test_derive.py", "test_unpaired_and_duplicate_subjects"),
    ("label without an image", "test_bad_inputs.py", "test_label_without_image"),
    ("empty or missing source folder", "test_derive.py", "test_empty_missing_and_unknown_folders"),
    ("unrecognised layout", "test_derive.py", "test_empty_missing_and_unknown_folders"),
    ("duplicate subject IDs", "test_derive.py", "test_unpaired_and_duplicate_subjects"),
    ("non-image files mixed in", "test_bad_inputs.py", "test_non_image_files_mixed_in_are_ignored"),
    ("image/mask name mismatches", "test_dataset.py", "test_pairs_by_name_and_reports_mismatches"),
    ("mask colours outside rgb_map", "test_dataset.py", "test_unknown_mask_colour_names_the_file"),
    ("masks of another size than their image", "test_bad_inputs.py", "test_mask_of_another_size_than_its_image"),
    ("config: missing section", "test_config.py", "test_missing_section_is_named_when_needed"),
    ("config: typo'd key", "test_config.py", "test_typo_names_file_section_key_and_closest"),
    ("config: value of the wrong type", "test_config.py", "test_wrong_type_names_key_and_type"),
    ("config: malformed literal", "test_config.py", "test_malformed_literal"),
    ("config: image size not divisible, even kernel", "test_config.py", "test_invalid_values"),
    ("config: too many layers for the size", "test_bad_inputs.py", "test_too_many_layers_for_the_image_size"),
    ("config: num_classes disagreeing with rgb_map", "test_config.py", "test_invalid_values"),
    ("config: paths that do not exist", "test_bad_inputs.py", "test_paths_that_do_not_exist"),
    (
        "weights into a model of a different config",
        "test_trainer.py",
        "test_weights_from_another_architecture_are_refused",
    ),
    ("checkpoint folder from another version", "test_bad_inputs.py", "test_checkpoint_folder_from_another_version"),
    ("model folder of the original system", "test_bad_inputs.py", "test_checkpoint_folder_of_the_original_system"),
    # issue 18: batches of scans
    ("inputs that share a file name", "test_batch.py", "test_inputs_that_share_a_stem_get_distinct_traceable_names"),
    ("a second batch into the same --out", "test_batch.py", "test_a_second_batch_adds_rows_and_keeps_the_others"),
    (
        "--out holding another model's results, or a file",
        "test_batch.py",
        "test_results_of_another_model_or_a_file_as_out_are_refused",
    ),
    (
        "no usable voxel size (pixdim 0, no qform/sform)",
        "test_batch.py",
        "test_missing_voxel_size_is_refused_unless_assumed",
    ),
    (
        "a header claiming more than the file or memory holds",
        "test_batch.py",
        "test_headers_claiming_more_than_the_file_holds",
    ),
    (
        "two live processes on one folder, a stale lock",
        "test_batch.py",
        "test_a_second_writer_is_refused_and_a_killed_ones_lock_taken_over",
    ),
    (
        "derivation and inference into a locked folder",
        "test_batch.py",
        "test_derivation_and_inference_take_the_lock_too",
    ),
    ("implausible volumes (qc flags)", "test_batch.py", "test_qc_flags_on_a_hand_made_label_volume"),
    (
        "raw system errors, --assume-voxel-size",
        "test_batch.py",
        "test_command_line_marks_assumed_volumes_and_speaks_plainly",
    ),
    # issue 30: nothing the user had is lost
    (
        "derive --force on a user's folder, the source, the current, home or config folder, a dataset "
        "with a user's file or a model inside",
        "test_no_loss.py",
        "test_derive_force_never_replaces_what_it_cannot_prove_it_made",
    ),
    (
        "derive --force on its own dataset; without --force",
        "test_no_loss.py",
        "test_derive_force_replaces_its_own_dataset_and_says_so_otherwise",
    ),
    (
        "synthesize --force on a folder it did not make",
        "test_no_loss.py",
        "test_synthesize_force_replaces_only_a_synthetic_set",
    ),
    ("infer with output_dir = images_dir", "test_no_loss.py", "test_infer_into_its_images_folder_is_refused"),
    (
        "infer over a picture it did not write",
        "test_no_loss.py",
        "test_infer_never_replaces_a_picture_it_did_not_write",
    ),
    (
        "a user's volumetry.csv, NAME_qc.png or run.json in --out",
        "test_no_loss.py",
        "test_infer_volume_never_replaces_a_file_of_the_users",
    ),
    ("a user's NAME_labels.nii.gz in --out", "test_no_loss.py", "test_a_label_volume_of_the_users_keeps_its_name"),
    (
        "--out = an input, a parent of one, a model folder; results read as scans",
        "test_no_loss.py",
        "test_infer_volume_keeps_apart_from_its_inputs_and_skips_its_own_results",
    ),
    ("--labels with invalid values", "test_no_loss.py", "test_bad_labels_are_refused_before_anything_is_written"),
    (
        "a batch stopped by Ctrl-C, SIGTERM or SIGKILL, and its re-run",
        "test_no_loss.py",
        "test_a_stopped_batch_keeps_its_finished_volumes_and_a_rerun_completes_it",
    ),
    (
        "a full disk, a read-only file system",
        "test_no_loss.py",
        "test_a_full_disk_keeps_the_finished_volumes_and_a_rerun_completes_them",
    ),
    (
        "two trainings sharing eval_dir or the previews' folder; evaluating another model into it",
        "test_no_loss.py",
        "test_two_runs_never_share_an_evaluation_or_preview_folder",
    ),
    (
        "a user's file in the model folder; model_dir = the dataset",
        "test_no_loss.py",
        "test_training_never_writes_over_a_users_file_in_its_folders",
    ),
    (
        "complex or RGB volumes, 16-bit slices, mask colours of no class",
        "test_no_loss.py",
        "test_inputs_that_would_be_misread_are_refused_or_read_right",
    ),
    (
        "empty image files, configs in UTF-16 or Latin-1",
        "test_no_loss.py",
        "test_unreadable_images_and_configs_get_one_line",
    ),
    (
        "a batch size that cannot fit in memory",
        "test_no_loss.py",
        "test_a_batch_that_cannot_fit_in_memory_is_refused_before_training",
    ),
    (
        "--force on a folder with look-alike temporaries, system files or links",
        "test_no_loss.py",
        "test_a_folder_with_look_alike_temporaries_system_files_or_links_is_not_replaced",
    ),
    ("a user's file named like a lock", "test_no_loss.py", "test_a_file_in_the_way_of_a_lock_is_kept"),
    (
        "--resume or evaluate with other [model] settings or another dataset",
        "test_no_loss.py",
        "test_resuming_or_evaluating_with_other_settings_or_data_is_refused",
    ),
    ("a refused training leaves no folder claimed", "test_no_loss.py", "test_a_refused_training_claims_nothing"),
    (
        "images whose results would share a name; absurd voxel sizes",
        "test_no_loss.py",
        "test_images_that_would_share_a_result_and_broken_voxel_sizes_are_refused",
    ),
    ("float64 or int32 values far from zero", "test_no_loss.py", "test_values_far_from_zero_keep_their_contrast"),
]


def test_every_case_has_its_test():
    import ast

    here = Path(__file__).parent
    defined = {
        f: {n.name for n in ast.walk(ast.parse((here / f).read_text())) if isinstance(n, ast.FunctionDef)}
        for f in {c[1] for c in CASES}
    }
    missing = [c for c in CASES if c[2] not in defined[c[1]]]
    assert not missing, missing
