# SFR-ShuffleNetV2+ Medium (paper Tables 10/11; a reconstruction, see README) on ImageNet,
# trained with the paper's Augmented Setting (Appendix C) and learned sparsification.
_base_ = [
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='SFRShuffleNetV2Plus', arch='medium'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='ShuffleNetV2PlusClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
