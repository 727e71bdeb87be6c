# RetinaNet + FPN on COCO, 1x; the backbone and neck.in_channels are set per config.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', './coco_1x.py']
optim_wrapper = dict(optimizer=dict(lr=0.01))
