import dataclasses

import pytest

from hippo_utils import load_config
from hippo_utils.model.flexunet import build_flexunet, level_specs

from helpers import REPO

ORIGINAL = REPO / "tests" / "data" / "original_train_eval_infer.config"


@pytest.mark.parametrize(
    "change, params, size",
    [
        ({}, 126_809_218, 512),  # the original configuration: the original's parameter count
        ({"image_width": 128, "image_height": 128, "num_layers": 6}, 10_144_386, 128),
    ],
    ids=["original_512", "128_six_layers"],
)
def test_parameter_count_and_output_shape(clear_keras, change, params, size):
    model = build_flexunet(dataclasses.replace(load_config(ORIGINAL).model, **change))
    assert model.count_params() == params
    assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, size, size, 2)


def test_levels_follow_the_rules():
    m = load_config(ORIGINAL).model
    specs = level_specs(m)
    assert [s.filters for s in specs] == [16 * 2**i for i in range(8)]
    assert [s.kernel for s in specs] == [11, 9, 7, 5, 3, 3, 3, 3]
    assert [s.dropout for s in specs] == pytest.approx([0.05 * i for i in range(8)])
    assert specs[-1].size == (4, 4)
    d = dataclasses.replace(m, dilation=(3, 3))
    assert [s.dilation for s in level_specs(d)][:4] == [3, 2, 1, 1]


def test_every_layer_is_named_and_batchnorm_is_optional(clear_keras):
    m = dataclasses.replace(load_config(REPO / "configs" / "ci.config").model, normalization=True)
    model = build_flexunet(m)
    names = [layer.name for layer in model.layers]
    for expected in ("enc0_conv1", "enc0_bn1", "enc0_drop", "enc3_conv2", "dec2_up", "dec0_concat", "head"):
        assert expected in names
    assert not any(n.startswith(("conv2d", "dropout", "max_pooling")) for n in names)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image_width": 100, "image_height": 100}, "divisible by 2\\*\\*\\(num_layers-1\\) = 8"),
        ({"base_kernels": (4, 4)}, "must be odd"),
    ],
)
def test_impossible_architectures(change, match):
    m = dataclasses.replace(load_config(REPO / "configs" / "ci.config").model, **change)
    with pytest.raises(ValueError, match=match):
        build_flexunet(m)


@pytest.mark.parametrize(
    "layers, kernel, dilation, expected",
    [
        (1, 3, 1, 5),  # two 3x3 convolutions: 1 + 2 + 2
        (2, 3, 1, 18),  # 5, pool +1, two level-1 convolutions 2 x 2 x 2, back up, two more: +4
        (2, 5, 1, 26),  # 1 + level 0 kernel 5 (+4 +4) + pool 1 + level 1 kernel 3 (+4 +4) + level 0 again (+4 +4)
        (1, 3, 2, 9),  # dilation 2: each 3x3 convolution spans 5 pixels
    ],
)
def test_receptive_field_by_hand(layers, kernel, dilation, expected):
    from hippo_utils.core.config import ModelSection
    from hippo_utils.model.flexunet import receptive_field

    m = ModelSection(
        image_width=64, image_height=64, num_layers=layers, base_kernels=(kernel, kernel), dilation=(dilation, dilation)
    )
    assert receptive_field(m) == expected
