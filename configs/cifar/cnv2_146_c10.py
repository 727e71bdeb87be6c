# CondenseNetV2-146 on CIFAR-10 (paper Table 6; depths are our reading, see README).
_base_ = [
    '../_base_/models/cnv2_cifar_classifier.py', 'mmpretrain::_base_/datasets/cifar10_bs16.py',
    '../_base_/schedules/cifar_cnv2_300e.py', '../_base_/default_runtime.py'
]

model = dict(backbone=dict(arch='cifar146'), head=dict(num_classes=10, in_channels=912))

train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
