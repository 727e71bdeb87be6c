# CondenseNetV2 CIFAR classifier (the paper's CIFAR layout, stride-1 stem): backbone ->
# global average pool -> linear classifier.
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CondenseNetV2', arch='cifar110'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=688,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
