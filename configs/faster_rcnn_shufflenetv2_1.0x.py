# Faster R-CNN + FPN with mmpretrain's ShuffleNetV2 1.0x on COCO, 1x: the paper's baseline (Table 7).
# mmpretrain's ShuffleNetV2 has no stride-4 output, so the pyramid starts at stride 8
# (P3-P7, anchors and RoI strides 8-128). ImageNet weights: mmpretrain's model zoo has 1.0x;
# train configs of mmpretrain for the other widths and point init_cfg.checkpoint at them.
_base_ = ['./_base_/detection/faster_rcnn_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ShuffleNetV2',
        widen_factor=1.0,
        out_indices=(0, 1, 2),  # strides 8, 16, 32
        frozen_stages=0,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/shufflenetv2_1.0x_imagenet.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[116, 232, 464], start_level=0, num_outs=5, add_extra_convs='on_output'),
    rpn_head=dict(anchor_generator=dict(strides=[8, 16, 32, 64, 128])),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))
