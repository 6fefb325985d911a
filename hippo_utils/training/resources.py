"""Whether a model fits the machine: a learner can skip this module.

:func:`check_memory` estimates a training run's memory before it starts
(:func:`~hippo_utils.model.flexunet.memory_estimate`) and refuses, on a CPU, a batch the
system would kill the run for; on a GPU it warns and names the batch that would fit.
"""

from __future__ import annotations

import logging

from hippo_utils.core.config import Config
from hippo_utils.data.volumes import available_memory
from hippo_utils.model.flexunet import memory_estimate
from hippo_utils.model.precision import visible_gpu_memory

logger = logging.getLogger(__name__)


def memory_report(
    model, batch_size: int, available: int | None = None, where: str = "the GPU's"
) -> tuple[str, str | None]:
    """The model's training memory at ``batch_size`` in words (:func:`~hippo_utils.model.flexunet.memory_estimate`),
    and a warning when that is over the GPU's memory, with the batch that would fit (None otherwise).

    ``available``: that memory in bytes; when None, the total memory of the first GPU that
    TensorFlow sees (``nvidia-smi``), none without a GPU. Total, not free GPU memory, and one
    GPU: with ``[train] distribute`` each GPU holds only its share of the batch, so the warning
    is then cautious. ``where``: whose memory it is, for the message (training passes the free
    memory of a machine without a GPU).
    """
    estimate = memory_estimate(model, batch_size)
    available = visible_gpu_memory() if available is None else available
    if not available or estimate.total <= available:
        return estimate.describe(), None
    mib = 2**20
    fits = estimate.batch_that_fits(available)
    if fits == 0:
        fixed = estimate.parameters + estimate.training_state
        return estimate.describe(), (
            f"the weights, gradients and Adam state alone ({fixed // mib} MiB) "
            f"leave no room in {where} {available // mib} MiB for one image's activations "
            f"({estimate.activations_per_image // mib} MiB): use fewer [model] num_layers or base_filters"
        )
    return estimate.describe(), (
        f"about {estimate.total // mib} MiB of training memory at batch {batch_size}, more than {where} "
        f"{available // mib} MiB: set [train] batch_size = {fits} or less"
    )


def check_memory(cfg: Config, model) -> tuple[str, str | None]:
    """The run's memory in words, and a warning when it is over the GPU's (None otherwise).

    Raises:
        ValueError: on a machine without a GPU, a batch over the free memory.
    """
    t = cfg.train
    gpu_memory = visible_gpu_memory()
    memory, too_big = memory_report(
        model, t.batch_size, gpu_memory or available_memory(), where="the GPU's" if gpu_memory else "the free memory's"
    )
    if too_big and not gpu_memory:  # on a CPU the system would kill the run: refuse it
        raise ValueError(f"{cfg.path}: [train] batch_size = {t.batch_size} cannot fit: {too_big}")
    if too_big:
        logger.warning("%s", too_big)
    return memory, too_big
