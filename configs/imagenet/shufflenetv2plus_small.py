# ShuffleNetV2+ Small (megvii's architecture; the paper's baseline) on ImageNet,
# trained with the paper's Augmented Setting (Appendix C).
_base_ = [
    '../_base_/models/shufflenetv2plus_classifier.py',
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]

model = dict(backbone=dict(arch='small'))
custom_hooks = [dict(type='EMAHook', momentum=0.0002, priority='ABOVE_NORMAL')]
