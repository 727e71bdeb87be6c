"""The key mapping covers every key of the real official CondenseNetV2-A checkpoints.

The key/shape lists were read off the released files (tests/data/official_keys).
Tensors are synthesised with those shapes; values do not matter for the mapping.
"""
import os.path as osp

import pytest
import torch

from mmcnv2.checkpoint.official import (OfficialCheckpointError, classifier_config,
                                        convert_state_dict, infer_arch, select_state_dict)

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'official_keys')
DTYPES = {'float32': torch.float32, 'int64': torch.int64}


def synthesize(name):
    """Tensors of the listed shapes; training-form masks at stage 1 of CondenseNetV2-A
    (C = S = G = 8): every group has pruned the first 1/8 of its candidates (LGC: inputs,
    SFR: outputs), ``_stage`` 1."""
    sd = {}
    with open(osp.join(DATA, name)) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, dtype, shape = line.split(' ', 2)
            shape = [int(s) for s in shape.strip()[1:-1].split(',') if s.strip()]
            if key.endswith('conv_1._mask'):
                t = torch.ones(shape)
                t[:, :shape[1] // 8] = 0
            elif key.endswith('sfr._mask'):
                t = torch.ones(shape)
                t[:shape[0] // 8] = 0
            elif key.endswith('._stage'):
                t = torch.ones(shape)
            elif key.endswith('sfr.index'):
                t = torch.eye(shape[0])
            elif key.endswith('conv_1.index'):
                t = torch.arange(shape[0])
            else:
                t = torch.zeros(shape, dtype=DTYPES[dtype])
            sd[key] = t
    return sd


@pytest.mark.parametrize('name,deploy', [('cdnv2_a_training.txt', False),
                                         ('cdnv2_a_converted.txt', True)])
def test_every_official_key_maps_onto_arch_a(name, deploy):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    raw = synthesize(name)
    wrapped = {'state_dict': {'module.' + k: v for k, v in raw.items()}} if not deploy else raw
    sd, entry = select_state_dict(wrapped)
    info = infer_arch(sd)
    assert info['arch'] == 'a' and info['deploy'] is deploy
    assert (info['num_classes'], info['fc_channels'], info['se_reduction']) == (1000, 828, 16)
    ours = convert_state_dict(sd, info)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(classifier_config(info))
    expected = model.state_dict()
    assert set(ours) == set(expected)
    for k, v in ours.items():
        assert v.shape == expected[k].shape, k
    model.load_state_dict(ours, strict=True)


def test_unknown_key_is_an_error():
    sd = synthesize('cdnv2_a_converted.txt')
    sd['features.extra.weight'] = torch.zeros(1)
    with pytest.raises(OfficialCheckpointError, match='features.extra.weight'):
        convert_state_dict(sd, infer_arch(sd))


def test_foreign_state_dict_is_an_error():
    with pytest.raises(OfficialCheckpointError, match='not an official CondenseNetV2'):
        select_state_dict({'conv.weight': torch.zeros(1)})
