"""Bad backbone arguments (custom arch dicts, in_channels) and inputs below the smallest size
are errors that name the argument and the allowed values."""
import copy

import pytest
import torch

from mmcnv2.models import CondenseNet, CondenseNetV2, SFRShuffleNetV2

#: A tiny CondenseNetV2 (two blocks, stride-1 stem).
ARCH = dict(depths=(1, 2), growth_rates=(8, 8), condense_factor=4, sparse_factor=4, groups=4,
            bottleneck=4, stem_stride=1, hswish_from=1, se_from=1)


@pytest.mark.parametrize('cls,key,value,message', [
    (CondenseNetV2, 'depths', (1, -1), r"arch\['depths'\]\[1\] must be an int >= 0, got -1"),
    (CondenseNetV2, 'growth_rates', (8, -8),
     r"arch\['growth_rates'\]\[1\] must be a positive int, got -8"),
    (CondenseNetV2, 'stem_stride', 0, r"arch\['stem_stride'\] must be a positive int, got 0"),
    (CondenseNetV2, 'se_from', -1, r"arch\['se_from'\] must be an int >= 0, got -1"),
    (CondenseNet, 'depths', (-1, 2), r"arch\['depths'\]\[0\] must be an int >= 0, got -1"),
    (CondenseNet, 'depths', (2, 1.5), r"arch\['depths'\]\[1\] must be an int >= 0, got 1.5"),
    (CondenseNet, 'growth_rates', (0, 8), r"arch\['growth_rates'\]\[0\] must be a positive"),
    (CondenseNet, 'stem_stride', 0, r"arch\['stem_stride'\] must be a positive int, got 0"),
])
def test_bad_custom_dense_archs_are_refused(cls, key, value, message):
    arch = {k: v for k, v in ARCH.items() if cls is CondenseNetV2 or k not in (
        'sparse_factor', 'hswish_from', 'se_from')}
    arch[key] = value
    with pytest.raises(ValueError, match=message):
        cls(arch)


def test_bad_shufflenet_archs_and_in_channels_are_refused():
    arch = copy.deepcopy(SFRShuffleNetV2.arch_settings['0.5x'])
    for key, value, index in (('units', (4, 0, 4), 1), ('widths', (48, -96, 192), 1)):
        bad = dict(arch, **{key: value})
        with pytest.raises(ValueError, match=rf"arch\['{key}'\]\[{index}\] must be a positive"):
            SFRShuffleNetV2(bad)
    for cls, kwargs in ((CondenseNetV2, dict(arch=copy.deepcopy(ARCH))),
                        (CondenseNet, dict(arch='a')), (SFRShuffleNetV2, {})):
        with pytest.raises(ValueError, match='in_channels must be a positive int, got 0'):
            cls(in_channels=0, **kwargs)


@pytest.mark.parametrize('cls,arch,size', [(CondenseNetV2, 'a', 31), (CondenseNet, 'b', 31),
                                           (CondenseNetV2, 'cifar110', 4)])
def test_minimum_input_size(cls, arch, size):
    """The smallest input: a stride-s stem then a 2x2 pool between stages; computed here from
    the layer arithmetic, independently of the backbone's formula."""
    model = cls(arch).eval()
    stride = model.arch['stem_stride']
    pools = len(model.arch['depths']) - 1
    smallest = next(h for h in range(1, 100) if ((h - 1) // stride + 1) // 2**pools >= 1)
    assert model.min_input_size == smallest == size
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size))[0].shape[-2:] == (1, 1)
        with pytest.raises(ValueError, match=rf'at least {size}x{size} .*got {size - 1}x{size}'):
            model(torch.randn(1, 3, size - 1, size))
