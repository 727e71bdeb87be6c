"""Weights of the other form, another model's or a partial set never load silently.

Every path that loads weights into our backbones and heads goes through
``_load_from_state_dict``: torch's ``load_state_dict`` (strict or not) and
mmengine's ``load_checkpoint`` / ``load_state_dict`` (what ``load_from``,
``init_detector`` and the inferencers use, non-strict).
"""
import copy

import pytest
import torch
import torchvision
from mmengine.runner.checkpoint import load_state_dict as mmengine_load_state_dict

from mmcnv2.models import CondenseNetV2, SFRShuffleNetV2
from mmcnv2.models.deploy import switch_model_to_deploy
from mmcnv2.models.forms import (CheckpointFormError, CheckpointMismatchError, checkpoint_form,
                                 state_dict_form)
from mmcnv2.models.heads import CondenseNetClsHead
from tests.utils import randomize_bn
from tests.test_models.test_backbone_args import ARCH


def sparse_backbone(deploy_after=False, progress=1.0):
    torch.manual_seed(0)
    model = CondenseNetV2(copy.deepcopy(ARCH))
    model.init_weights()
    randomize_bn(model)
    for _, m in model.sparse_layers():
        m.sparsify(progress)
    if deploy_after:
        model.switch_to_deploy()
    return model.eval()


class Wrapper(torch.nn.Module):
    """A model with the backbone at ``backbone.``, as in a classifier or detector."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


def test_form_of_state_dicts_and_checkpoints():
    training, deploy = sparse_backbone().state_dict(), sparse_backbone(True).state_dict()
    assert state_dict_form(training) == 'training'
    assert state_dict_form(deploy) == 'deploy'
    assert state_dict_form(torchvision.models.resnet18().state_dict()) is None
    wrapped = {'state_dict': {'module.' + k: v for k, v in deploy.items()}}
    assert checkpoint_form(wrapped) == 'deploy'
    mixed = dict(training, **{'other.' + k: v for k, v in deploy.items()})
    with pytest.raises(CheckpointFormError, match='mixes training-form'):
        state_dict_form(mixed)
    with pytest.raises(CheckpointFormError, match="meta says training form"):
        checkpoint_form({'state_dict': deploy, 'meta': {'mmcnv2': {'form': 'training'}}})


@pytest.mark.parametrize('loader', ['torch', 'mmengine'])
def test_deploy_weights_into_training_model_are_refused(loader):
    source = Wrapper(sparse_backbone(deploy_after=True))
    target = Wrapper(CondenseNetV2(copy.deepcopy(ARCH)))
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(CheckpointFormError) as info:
        if loader == 'torch':
            target.load_state_dict(source.state_dict(), strict=False)
        else:
            mmengine_load_state_dict(target, source.state_dict(), strict=False)
    message = str(info.value)
    assert 'holds the deploy form of CondenseNetV2' in message
    assert '--cfg-options model.backbone.deploy=True' in message
    assert 'cfg.model.backbone.deploy = True' in message
    for k, v in target.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_training_weights_into_deploy_model_are_refused():
    source = Wrapper(sparse_backbone())
    target = Wrapper(CondenseNetV2(copy.deepcopy(ARCH), deploy=True))
    with pytest.raises(CheckpointFormError, match='model.backbone.deploy=False'):
        mmengine_load_state_dict(target, source.state_dict(), strict=False)


def test_ema_prefix_names_the_same_flag():
    source = Wrapper(sparse_backbone(deploy_after=True))
    ema = torch.nn.Module()
    ema.module = Wrapper(CondenseNetV2(copy.deepcopy(ARCH)))
    state = {'module.' + k: v for k, v in source.state_dict().items()}
    with pytest.raises(CheckpointFormError, match=r'model\.backbone\.deploy=True'):
        ema.load_state_dict(state, strict=False)


def test_foreign_and_partial_weights_are_refused():
    target = Wrapper(CondenseNetV2(copy.deepcopy(ARCH)))
    foreign = torchvision.models.resnet18().state_dict()
    with pytest.raises(CheckpointMismatchError, match="no key starts with 'backbone.'"):
        mmengine_load_state_dict(target, foreign, strict=False)
    # resnet18's keys where the backbone's should be
    with pytest.raises(CheckpointMismatchError, match=r'missing: stem\.weight.*unexpected: conv1'):
        mmengine_load_state_dict(target, {'backbone.' + k: v for k, v in foreign.items()})
    state = Wrapper(sparse_backbone()).state_dict()
    del state['backbone.stages.1.layers.0.conv2.conv.weight']
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing: stages\.1\.layers\.0\.conv2\.conv\.weight'):
        mmengine_load_state_dict(target, state, strict=False)


def test_shape_mismatch_is_refused_by_a_non_strict_load():
    other = dict(ARCH, growth_rates=(8, 16))
    source = Wrapper(CondenseNetV2(other))
    target = Wrapper(CondenseNetV2(copy.deepcopy(ARCH)))
    with pytest.raises(CheckpointMismatchError, match='shape mismatch'):
        mmengine_load_state_dict(target, source.state_dict(), strict=False)


def test_matching_weights_still_load_everywhere():
    """The check does not get in the way of exact loads (with or without num_batches_tracked)."""
    for deploy in (False, True):
        source = Wrapper(sparse_backbone(deploy_after=deploy))
        target = Wrapper(CondenseNetV2(copy.deepcopy(ARCH), deploy=deploy))
        state = {k: v for k, v in source.state_dict().items()
                 if not k.endswith('num_batches_tracked')}
        mmengine_load_state_dict(target, state, strict=False)
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(target.backbone.eval()(x), source.backbone(x))


def test_condensenet_head_follows_the_backbone_form():
    """A deploy checkpoint of CondenseNet-C (condensed classifier) loads into a training-form
    head exactly: model.backbone.deploy=True is the only switch needed."""
    torch.manual_seed(0)
    head = CondenseNetClsHead(10, 64, keep_ratio=0.5)
    x = torch.randn(3, 64)
    condensed = copy.deepcopy(head)
    condensed.switch_to_deploy()
    ref = condensed((x, ))
    training = CondenseNetClsHead(10, 64, keep_ratio=0.5)
    mmengine_load_state_dict(training, condensed.state_dict(), strict=True)
    torch.testing.assert_close(training((x, )), ref)
    # a condensed head refuses a training-form classifier
    with pytest.raises(CheckpointFormError, match='holds the training form'):
        CondenseNetClsHead(10, 64, keep_ratio=0.5, deploy=True).load_state_dict(
            head.state_dict(), strict=False)


def test_sfr_shufflenet_deploy_weights_refused_by_training_model():
    torch.manual_seed(0)
    model = SFRShuffleNetV2('0.5x')
    for _, m in model.sparse_layers():
        m.sparsify(1.0)
    deployed = copy.deepcopy(model)
    switch_model_to_deploy(deployed)
    with pytest.raises(CheckpointFormError, match="under 'backbone.'"):
        mmengine_load_state_dict(Wrapper(model), Wrapper(deployed).state_dict(), strict=False)
