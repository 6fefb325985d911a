"""Notebook 03, training.

Read ``trainer`` (:func:`~hippo_utils.training.trainer.train`: the model, the data, one
``model.fit``) and then ``callbacks`` (what happens after each epoch: checkpoints,
previews, curves). The losses are in :mod:`hippo_utils.model.losses`.
"""
