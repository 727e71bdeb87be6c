"""The whole-model conversions call the conversion each module owns (``switch_to_deploy()``,
``fuse_for_inference()``), whatever the module's type, and leave the others' subtrees to the
walk."""
import pytest
import torch
import torch.nn as nn

from mmcnv2.models import (CondenseNet, CondenseNetV2, LearnedGroupConv, SFRShuffleNetV2,
                           fuse_for_inference, switch_model_to_deploy)
from mmcnv2.models.layers import DenseStage, FusedSFRDenseStage, InferenceOnly

ARCH = dict(depths=(1, 2), growth_rates=(8, 8), condense_factor=4, sparse_factor=4, groups=4,
            bottleneck=4, stem_stride=1, hswish_from=1, se_from=1)


class Convertible(nn.Module):
    """A module of another codebase with a deploy form of its own."""

    def __init__(self, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.calls = 0
        self.inner = nn.Linear(2, 2)

    def switch_to_deploy(self):
        self.calls += 1
        self.deploy = True

    def fuse_for_inference(self, dense_below, backend):
        return nn.Identity()


def fully_sparse_lgc():
    lgc = LearnedGroupConv(8, 8, condense_factor=2, groups=2)
    lgc.sparsify(1.0)
    return lgc


def test_deploy_walk_calls_each_modules_own_conversion_once():
    model = nn.Sequential(nn.Sequential(fully_sparse_lgc(), Convertible()), Convertible(True))
    assert switch_model_to_deploy(model) == 1
    assert model[0][0].deploy and model[0][1].calls == 1
    assert model[1].calls == 0  # already in deploy form


def test_deploy_walk_converts_nothing_while_a_layer_is_unfinished():
    unfinished = LearnedGroupConv(8, 8, condense_factor=2, groups=2)
    model = nn.Sequential(fully_sparse_lgc(), unfinished, Convertible())
    with pytest.raises(ValueError, match='have not finished sparsifying'):
        switch_model_to_deploy(model)
    assert not model[0].deploy and model[2].calls == 0


def test_backbones_own_their_deploy_switch():
    model = CondenseNetV2(ARCH)
    for _, layer in model.sparse_layers():
        layer.sparsify(1.0)
    model.switch_to_deploy()
    assert model.deploy and all(m.deploy for _, m in model.sparse_layers())


def test_fuse_walk_replaces_what_fuse_for_inference_returns():
    net = CondenseNetV2(ARCH, deploy=True).eval()
    model = nn.Sequential(net, Convertible())
    with torch.no_grad():
        fused = fuse_for_inference(model, backend='python')
    assert isinstance(fused[1], nn.Identity)
    assert [type(s).__name__ for s in fused[0].stages] == ['FusedSFRDenseStage'] * 2
    assert isinstance(fused[0], InferenceOnly) and isinstance(fused, InferenceOnly)


def test_stages_without_a_fused_form_stay_and_shufflenets_go_channels_last():
    v1 = CondenseNet(dict((k, ARCH[k]) for k in ('depths', 'growth_rates', 'condense_factor',
                                                 'groups', 'bottleneck', 'stem_stride')),
                     deploy=True)
    with torch.no_grad():
        fused = fuse_for_inference(v1, backend='python')
    assert all(type(s) is DenseStage for s in fused.stages)
    assert not any(isinstance(m, FusedSFRDenseStage) for m in fused.modules())
    shufflenet = SFRShuffleNetV2('0.5x', deploy=True)
    with torch.no_grad():
        fused = fuse_for_inference(shufflenet, backend='python')
    assert fused.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match='inference-only'):
        fused.train()
