# Faster R-CNN + FPN with an SFR-ShuffleNetV2 0.5x backbone on COCO, 1x (paper Table 7 and Sec. 4.4;
# the backbone is a reconstruction, see README). ImageNet weights: train
# configs/imagenet/sfr_shufflenetv2_0.5x.py; either form (training, fully sparse, or deploy) loads.
_base_ = ['./_base_/detection/faster_rcnn_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='SFRShuffleNetV2',
        arch='0.5x',
        out_indices=(0, 1, 2, 3),  # strides 4, 8, 16, 32
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        deploy=True,  # fine-tune the condensed network
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/sfr_shufflenetv2_0.5x_imagenet.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[24, 48, 96, 192]))
