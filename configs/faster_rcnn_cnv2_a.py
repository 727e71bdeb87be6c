# Faster R-CNN + FPN with a CondenseNetV2-A backbone on COCO, 1x (paper Table 7).
# ImageNet weights: train configs/imagenet/cnv2_a.py, or import the authors' release with
# tools/import_official.py; either form (training, fully sparse, or deploy) loads.
_base_ = ['./_base_/detection/faster_rcnn_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='CondenseNetV2',
        arch='a',
        out_indices=(1, 2, 3, 4),  # strides 4, 8, 16, 32
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        deploy=True,  # fine-tune the condensed network
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cnv2_a_imagenet.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[32, 96, 288, 800]))
