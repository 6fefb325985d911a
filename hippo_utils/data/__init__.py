"""Notebook 01, the dataset: from MRI volumes to the 2D slices the model learns from.

Read first ``derive`` (:func:`~hippo_utils.data.derive.derive_dataset`: split by subject,
crop, resample, cut slices), then ``preprocess`` (the geometry and intensity steps it
uses) and ``dataset`` (the tf.data pipeline that feeds training).

- ``volumes`` (NIfTI/Analyze volumes in and out), ``labels`` (label values to model
  classes and back), ``components`` (connected components of label maps);
- ``sources`` (which data a run uses: synthetic, MSD Task04, Kaggle HFH or a folder),
  ``layouts`` (how a folder's images and labels are found and paired), ``download``
  (the checksum-verified MSD download), ``synthetic`` (the offline default data).
"""
