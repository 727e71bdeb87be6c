# SFR-ShuffleNetV2 1.0x on ImageNet (paper Tables 8/9; a reconstruction, see README), trained
# with the paper's Augmented Setting (Appendix C) and learned sparsification.
_base_ = [
    '../_base_/models/sfr_shufflenetv2_classifier.py',
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]

model = dict(backbone=dict(arch='1.0x'))
