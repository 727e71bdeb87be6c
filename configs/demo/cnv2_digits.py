# The classification demo: a small CIFAR-shaped CondenseNetV2 trained from
# scratch on scikit-learn's real handwritten digits (1797 images, upsampled to
# 32x32), pruned on the paper's schedule by SparsifyHook, in a few minutes on
# two CPU cores.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CondenseNetV2',
        arch=dict(depths=(3, 3, 3), growth_rates=(8, 16, 32), condense_factor=4,
                  sparse_factor=4, groups=4, bottleneck=4, stem_stride=1, hswish_from=3,
                  se_from=3)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=184,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

data_preprocessor = dict(num_classes=10, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=False)

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type='SklearnDigits', split='train',
                 pipeline=[dict(type='RandomCrop', crop_size=32, padding=2),
                           dict(type='PackInputs')]),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type='SklearnDigits', split='test', pipeline=[dict(type='PackInputs')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=12, by_epoch=True, begin=0, end=12,
         convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=4)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [dict(type='SparsifyHook', end_progress=0.5)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=15),
    progress=dict(type='ProgressBarHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=4, max_keep_ckpts=1, save_last=True))
randomness = dict(seed=0, deterministic=True)
