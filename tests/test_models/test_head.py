import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def _classifier(deploy=False):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='CondenseNetV2', arch='a', deploy=deploy),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='CondenseNetV2ClsHead', num_classes=1000, in_channels=800,
                      fc_channels=828, loss=dict(type='CrossEntropyLoss'))))


def test_classifier_tensor_loss_predict():
    model = _classifier()
    x = torch.randn(2, 3, 224, 224)
    assert model(x, mode='tensor').shape == (2, 1000)
    samples = [DataSample().set_gt_label(1), DataSample().set_gt_label(3)]
    losses = model(x, samples, mode='loss')
    assert losses['loss'].requires_grad and torch.isfinite(losses['loss'])
    preds = model(x, samples, mode='predict')
    assert preds[0].pred_score.shape == (1000, )


def test_head_structure_matches_release():
    head = _classifier().head
    assert head.se.fc1.weight.shape == (50, 800) and head.se.fc1.bias is None
    assert head.fc.weight.shape == (828, 800)
    assert head.classifier.weight.shape == (1000, 828)
    x = torch.randn(3, 800)
    y = x * torch.sigmoid(head.se.fc2(torch.relu(head.se.fc1(x))))
    y = head.fc(y)
    y = y * torch.clamp(y + 3, 0, 6) / 6
    torch.testing.assert_close(head((x, )), head.classifier(y))


def test_head_rejects_unpooled_features():
    head = _classifier().head
    with pytest.raises(ValueError, match='GlobalAveragePooling'):
        head((torch.randn(1, 800, 7, 7), ))
