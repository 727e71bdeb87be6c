# CondenseNetV2-146 on CIFAR-100 (paper Table 6; depths are our reading, see README).
_base_ = [
    'mmpretrain::_base_/datasets/cifar100_bs16.py', '../_base_/schedules/cifar_cnv2_300e.py',
    '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CondenseNetV2', arch='cifar146'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=100, in_channels=912,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
