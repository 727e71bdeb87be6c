# SFR-ShuffleNetV2+ Medium (paper Tables 10/11; a reconstruction, see README) on ImageNet,
# trained with the paper's Augmented Setting (Appendix C) and learned sparsification.
_base_ = [
    '../_base_/models/shufflenetv2plus_classifier.py',
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]

model = dict(backbone=dict(type='SFRShuffleNetV2Plus', arch='medium'))
