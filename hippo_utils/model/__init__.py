"""Notebook 02, the model: the configurable FlexUNet and how it is scored.

Read first ``flexunet`` (:func:`~hippo_utils.model.flexunet.build_flexunet`), then
``losses`` (the training losses and metrics by name) and ``metrics`` (the NumPy maths
behind every reported number).

- ``folder``: a trained model's folder (checkpoints, history, config, provenance);
- ``precision``: float32 or mixed bfloat16/float16, as the machine allows.
"""
