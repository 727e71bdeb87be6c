# CondenseNetV2 ImageNet classifier: backbone -> global average pool -> the
# release's head (SE, Linear to fc_channels, h-swish, classifier).
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CondenseNetV2', arch='a', out_indices=(4, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='CondenseNetV2ClsHead',
        num_classes=1000,
        in_channels=800,
        fc_channels=828,
        se_reduction=16,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
