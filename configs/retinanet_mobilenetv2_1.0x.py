# RetinaNet + FPN with mmdet's MobileNetV2 1.0x on COCO, 1x: the paper's baseline (Table 7).
_base_ = ['./_base_/detection/retinanet_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.0,
        out_indices=(1, 2, 4, 7),  # strides 4, 8, 16, 32
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
