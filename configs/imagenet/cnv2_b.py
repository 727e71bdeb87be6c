# CondenseNetV2-B on ImageNet (paper Table 2), the release's recipe.
_base_ = [
    '../_base_/models/cnv2_classifier.py', '../_base_/datasets/imagenet_bs128_cnv2.py',
    '../_base_/schedules/imagenet_cnv2_350e.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(arch='b'),
    head=dict(in_channels=1176, fc_channels=1024))
