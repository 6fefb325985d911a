"""Notebook 03, training.

Read ``trainer`` (:func:`~hippo_utils.training.trainer.train`: the model, the data, one
``model.fit``) and then ``callbacks`` (what happens after each epoch: checkpoints,
previews, curves); the losses are in :mod:`hippo_utils.model.losses`. Those three files
are the whole of training.

A learner can skip ``run_folder`` (nothing a run or the user had is overwritten, and a
resumed run goes on with its own settings) and ``resources`` (a batch that cannot fit is
refused before it starts): hardening.
"""
