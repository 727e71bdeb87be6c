# ShuffleNetV2+ Medium (megvii's architecture; the paper's baseline) on ImageNet,
# trained with the paper's Augmented Setting (Appendix C).
_base_ = [
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ShuffleNetV2Plus', arch='medium'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='ShuffleNetV2PlusClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
custom_hooks = [dict(type='EMAHook', momentum=0.0002, priority='ABOVE_NORMAL')]
