# CondenseNet-A (v1, learned group convolutions only) on ImageNet: the baseline of the
# paper's appendix (Tables 12/13), trained with the paper's Augmented Setting (Appendix C).
_base_ = [
    '../_base_/models/condensenet_classifier.py',
    '../_base_/datasets/imagenet_bs128_cnv2.py', '../_base_/schedules/imagenet_cnv2_350e.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(arch='a'),
    # share of classifier inputs the deploy form keeps; the paper's figures for
    # CondenseNet-C (274M / 2.9M) are those of CondenseNet's 50% classifier pruning,
    # its A/B figures those without it (see README)
    head=dict(in_channels=672, keep_ratio=1.0))
