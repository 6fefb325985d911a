"""Notebook 03, training.

Read ``trainer`` (:func:`~hippo_utils.training.trainer.train`: the model, the data, one
``model.fit``) and then ``callbacks`` (what happens after each epoch: checkpoints,
previews, curves); the losses are in :mod:`hippo_utils.model.losses`. For a new run those
three files are the whole of training. A resumed run starts from
:func:`~hippo_utils.training.run_folder.begin_run`'s ``RunStart`` (its epoch, best value and
history), and what each epoch's checkpoint writes is
:func:`~hippo_utils.model.folder.commit_epoch`.

The rest of ``run_folder`` (the refusals: nothing a run or the user had is overwritten, a
resumed run goes on with its own settings) and ``resources`` (a batch that cannot fit is
refused before it starts) are hardening a learner can skip.
"""
