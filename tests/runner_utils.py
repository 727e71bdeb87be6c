"""Tiny, fast mmengine runs of a CondenseNetV2 classifier for the engine tests."""
import copy
import uuid

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

# C = 4 (3 LGC stages) and S = 8 (7 SFR stages), so both schedules are exercised.
TINY_ARCH = dict(depths=(1, 2), growth_rates=(8, 8), condense_factor=4, sparse_factor=8,
                 groups=4, bottleneck=4, stem_stride=1, hswish_from=1, se_from=1)


def tiny_cfg(work_dir, iters=None, epochs=None, images=32, batch=8, hooks=None,
             checkpoint_interval=1, **extra):
    """A Config of a tiny CondenseNetV2 on 8x8 digits; ``iters`` or ``epochs``."""
    by_epoch = epochs is not None
    cfg = dict(
        default_scope='mmpretrain',
        work_dir=str(work_dir),
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(num_classes=10, mean=[127.5] * 3, std=[127.5] * 3),
            backbone=dict(type='CondenseNetV2', arch=copy.deepcopy(TINY_ARCH)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=40)),
        train_dataloader=dict(
            batch_size=batch, num_workers=0,
            dataset=dict(type='SklearnDigits', split='train', size=8, indices=images,
                         pipeline=[dict(type='PackInputs')]),
            sampler=dict(type='DefaultSampler' if by_epoch else 'InfiniteSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs) if by_epoch else dict(
            type='IterBasedTrainLoop', max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=checkpoint_interval,
                            by_epoch=by_epoch),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks if hooks is not None else [dict(type='SparsifyHook')],
        randomness=dict(seed=0, deterministic=True),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
        experiment_name=f'tiny_{uuid.uuid4().hex[:8]}',
    )
    cfg.update(extra)
    return Config(cfg)


def masks_of(model):
    from mmcnv2.models.deploy import sparse_layers
    return {n: m.mask.clone() for n, m in sparse_layers(model) if not m.deploy}


class RecordHook(Hook):
    """Records stages and masks after every iteration, after the other hooks."""

    priority = 'LOWEST'

    def __init__(self):
        self.stages, self.masks, self.ema_masks = [], [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        from mmengine.hooks import EMAHook
        from mmengine.model import is_model_wrapper

        from mmcnv2.models.deploy import sparse_layers
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.stages.append({n: int(m.stage) for n, m in sparse_layers(model)})
        self.masks.append(masks_of(model))
        for h in runner.hooks:
            if isinstance(h, EMAHook):
                self.ema_masks.append(masks_of(h.ema_model.module))


def final_state(runner):
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return {k: v.clone() for k, v in model.state_dict().items()}


def run(cfg, record=True):
    from mmengine.runner import Runner

    import mmcnv2  # noqa: F401
    runner = Runner.from_cfg(cfg)
    recorder = RecordHook() if record else None
    if recorder is not None:
        runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def assert_state_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
