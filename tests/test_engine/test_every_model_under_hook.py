"""Every sparse model of the project trains a few iterations under SparsifyHook and
converts; the plain ShuffleNetV2+ baseline trains without it (it has nothing to prune)."""
import pytest

from tests.runner_utils import run, tiny_cfg

MODELS = [
    (dict(type='CondenseNetV2', arch=a), c) for a, c in (('a', 800), ('b', 1176), ('c', 2064))
] + [
    (dict(type='CondenseNet', arch=a), c) for a, c in (('a', 672), ('b', 1176), ('c', 2064))
] + [
    (dict(type='SFRShuffleNetV2', arch=a), 1024) for a in ('0.5x', '1.0x', '1.5x')
] + [
    (dict(type='SFRShuffleNetV2Plus', arch=a), 1280) for a in ('small', 'medium')
]


@pytest.mark.parametrize('backbone,channels', MODELS,
                         ids=[f"{b['type']}-{b['arch']}" for b, _ in MODELS])
def test_trains_under_the_hook_and_converts(tmp_path, backbone, channels):
    cfg = tiny_cfg(tmp_path, iters=3, images=4, batch=2, checkpoint_interval=10**6)
    cfg.train_dataloader.dataset.size = 32
    cfg.model.backbone = backbone
    cfg.model.head.in_channels = channels
    runner, rec = run(cfg)
    layers = runner.model.backbone.sparse_layers()
    assert layers and all(m.density == pytest.approx(1 / m.factor) for _, m in layers)
    assert len(rec.stages) == 3
    runner.model.backbone.switch_to_deploy()
    assert all(m.deploy for _, m in layers)


def test_plain_shufflenetv2plus_trains_without_the_hook(tmp_path):
    cfg = tiny_cfg(tmp_path, iters=2, images=4, batch=2, checkpoint_interval=10**6, hooks=[])
    cfg.train_dataloader.dataset.size = 32
    cfg.model.backbone = dict(type='ShuffleNetV2Plus', arch='small')
    cfg.model.head.in_channels = 1280
    runner, rec = run(cfg)
    assert len(rec.stages) == 2 and rec.stages[0] == {}
