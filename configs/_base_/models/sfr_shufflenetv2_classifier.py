# SFR-ShuffleNetV2 ImageNet classifier: backbone -> global average pool -> linear classifier.
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='SFRShuffleNetV2', arch='1.0x'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
