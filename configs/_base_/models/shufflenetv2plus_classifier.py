# ShuffleNetV2+ ImageNet classifier (megvii's architecture; SFR-ShuffleNetV2+ sets
# backbone.type='SFRShuffleNetV2Plus'): backbone -> global average pool -> megvii's head
# (SE, Linear to 1280, h-swish, dropout, classifier).
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ShuffleNetV2Plus', arch='small'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='ShuffleNetV2PlusClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
