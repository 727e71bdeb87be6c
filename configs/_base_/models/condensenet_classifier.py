# CondenseNet (v1) ImageNet classifier: backbone -> global average pool -> CondenseNet's
# linear classifier, whose deploy form keeps ``keep_ratio`` of its inputs.
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CondenseNet', arch='a'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='CondenseNetClsHead',
        num_classes=1000,
        in_channels=672,
        keep_ratio=1.0,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
