# Faster R-CNN + FPN on COCO, 1x; the backbone and neck.in_channels are set per config.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', './coco_1x.py']
