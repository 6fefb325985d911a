"""The FlexUNet: a U-Net whose depth, width, kernels and dilation come from [model].

The architecture is the original FlexUNet's, layer for layer, so that its 512x512
configuration has exactly the original's 126,809,218 parameters. With
``num_layers = L``:

- encoder level i = 0..L-1 (the last is the bridge): two same-padded ReLU
  convolutions (he_normal) of ``base_filters * 2**i`` filters, kernel
  ``max(3, k0 - 2*i)`` and dilation ``max(1, d0 - i)``, with Dropout(dropout_rate * i)
  between them and BatchNormalization after each when ``normalization`` is on; a 2x2
  max-pool after every level but the bridge;
- decoder step back to level f = L-2..0: a 2x2 stride-2 transposed convolution to
  ``base_filters * 2**f`` filters, concatenated with the encoder output of level f,
  then two convolutions with level f's kernel and dilation and Dropout(dropout_rate * f);
- head: a 1x1 convolution to ``num_classes`` with softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hippo_utils.core.config import ModelSection


@dataclass(frozen=True)
class LevelSpec:
    """What one encoder level looks like (used by the model and by the drawing)."""

    level: int
    filters: int
    kernel: int
    dilation: int
    dropout: float
    size: tuple[int, int]  # feature-map height, width at this level


def level_specs(m: ModelSection) -> list[LevelSpec]:
    """The encoder levels of ``m``, checking the constraints the network needs.

    Raises:
        ValueError: the image size is not divisible by ``2**(num_layers-1)``, or the
            kernel is even.
    """
    factor = 2 ** (m.num_layers - 1)
    if m.image_height % factor or m.image_width % factor:
        raise ValueError(
            f"[model] image size {m.image_height}x{m.image_width} must be divisible by "
            f"2**(num_layers-1) = {factor} for num_layers = {m.num_layers}"
        )
    k0, d0 = m.base_kernels[0], m.dilation[0]
    if k0 % 2 == 0:
        raise ValueError(f"[model] base_kernels = {m.base_kernels}: kernels must be odd")
    return [
        LevelSpec(
            i,
            m.base_filters * 2**i,
            max(3, k0 - 2 * i),
            max(1, d0 - i),
            m.dropout_rate * i,
            (m.image_height // 2**i, m.image_width // 2**i),
        )
        for i in range(m.num_layers)
    ]


def receptive_field(m: ModelSection) -> int:
    """How many input pixels across one output pixel of the FlexUNet of ``m`` can see.

    Each convolution widens it by ``dilation * (kernel - 1)`` pixels of its level, which
    are ``2**level`` input pixels apart; each max-pool by one pixel of its level; the
    2x2 stride-2 transposed convolutions and the 1x1 head add nothing. This is the
    theoretical field: the pixels near its edge weigh less (Luo et al., 2016).
    """
    specs = level_specs(m)
    field, jump = 1, 1
    for spec in specs:  # encoder, bridge last
        field += 2 * spec.dilation * (spec.kernel - 1) * jump
        if spec.level < len(specs) - 1:
            field += jump  # 2x2 max-pool
            jump *= 2
    for spec in reversed(specs[:-1]):  # decoder: back up to level f, then two convolutions there
        jump //= 2
        field += 2 * spec.dilation * (spec.kernel - 1) * jump
    return field


def build_flexunet(m: ModelSection, seed: int | None = None, dtype_policy: str | None = None):
    """Build the (uncompiled) FlexUNet of a [model] section.

    Args:
        m: the [model] section. Constraints: the image size must be divisible by
            ``2**(num_layers-1)``; ``base_kernels`` must be odd.
        seed: seeds the dropout layers, so that a seeded run is repeatable.
        dtype_policy: a Keras dtype policy for every layer but the softmax head, such as
            ``"mixed_bfloat16"`` (:mod:`hippo_utils.model.precision`); the head is float32.

    Returns:
        A ``keras.Model`` (Functional API, every layer named) from an
        ``(image_height, image_width, image_channels)`` input to per-pixel class
        probabilities of shape ``(image_height, image_width, num_classes)``.
    """
    import keras
    from keras import layers

    specs = level_specs(m)

    def conv_block(x, spec: LevelSpec, prefix: str):
        for n in (1, 2):
            x = layers.Conv2D(
                spec.filters,
                spec.kernel,
                padding="same",
                activation="relu",
                kernel_initializer="he_normal",
                dilation_rate=spec.dilation,
                name=f"{prefix}_conv{n}",
                dtype=dtype_policy,
            )(x)
            if m.normalization:
                x = layers.BatchNormalization(name=f"{prefix}_bn{n}", dtype=dtype_policy)(x)
            if n == 1:
                x = layers.Dropout(spec.dropout, seed=seed, name=f"{prefix}_drop", dtype=dtype_policy)(x)
        return x

    inputs = keras.Input((m.image_height, m.image_width, m.image_channels), name="image")
    x = layers.Rescaling(1.0 / 255, name="input_rescale", dtype=dtype_policy)(inputs) if m.input_normalize else inputs
    skips = []
    for spec in specs:
        x = conv_block(x, spec, f"enc{spec.level}")
        if spec.level < m.num_layers - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"enc{spec.level}_pool", dtype=dtype_policy)(x)
    for spec in reversed(specs[:-1]):
        f = spec.level
        x = layers.Conv2DTranspose(spec.filters, 2, strides=2, padding="same", name=f"dec{f}_up", dtype=dtype_policy)(x)
        x = layers.Concatenate(name=f"dec{f}_concat", dtype=dtype_policy)([x, skips[f]])
        x = conv_block(x, spec, f"dec{f}")
    # float32 whatever the policy: the probabilities, losses and metrics keep full precision
    outputs = layers.Conv2D(m.num_classes, 1, activation="softmax", name="head", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="FlexUNet")


@dataclass(frozen=True)
class MemoryEstimate:
    """What training a model holds in memory, in bytes (:func:`memory_estimate`)."""

    parameters: int  # the weights
    training_state: int  # their gradients and Adam's two moments
    activations_per_image: int  # every layer's output, kept for the backward pass
    batch_size: int

    @property
    def total(self) -> int:
        return self.parameters + self.training_state + self.activations_per_image * self.batch_size

    def batch_that_fits(self, available: int) -> int:
        """The largest batch whose estimate fits in ``available`` bytes (0: not even one image)."""
        return max(0, (available - self.parameters - self.training_state) // max(self.activations_per_image, 1))

    def describe(self) -> str:
        mib = 2**20
        return (
            f"model memory: parameters {self.parameters / mib:.1f} MiB (+ {self.training_state / mib:.1f} MiB "
            f"gradients and Adam state), activations about {self.activations_per_image / mib:.1f} MiB an image, "
            f"{self.activations_per_image * self.batch_size / mib:.0f} MiB at batch {self.batch_size}; "
            f"about {self.total / mib:.0f} MiB in all"
        )


def memory_estimate(model, batch_size: int) -> MemoryEstimate:
    """Estimate the memory of training ``model`` at ``batch_size``: float32 weights with their
    gradients and Adam's moments, and every layer's output in its compute dtype (what the
    backward pass keeps). It leaves out what the framework and the device's libraries take,
    so it is a lower bound: on CPU it came to 0.89 of the measured growth of peak memory per
    image (tests/test_precision.py checks it within 0.6-1.4)."""
    weights = 4 * int(model.count_params())
    per_image = sum(
        int(np.prod(layer.output.shape[1:])) * np.dtype(layer.compute_dtype).itemsize
        for layer in model.layers
        if layer.__class__.__name__ != "InputLayer"
    )
    return MemoryEstimate(weights, 3 * weights, per_image, batch_size)
