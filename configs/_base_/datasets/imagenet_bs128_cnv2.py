# ImageNet data of the CondenseNetV2 release: RandAugment rand-m9-mstd0.5,
# random erasing 0.2 (pixel mode), resize 256 + center crop 224 at test.
# Data in data/imagenet/ of this repository (train/<class>/*.JPEG, val/<class>/*.JPEG, or flat
# folders with meta/train.txt, meta/val.txt), whatever the working directory; point elsewhere
# with the IMAGENET_ROOT environment variable or --cfg-options ...dataset.data_root=...
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs128_mbv3.py']

__imagenet_root = '{{$IMAGENET_ROOT:-}}'  # '-' when the variable is not set
data_root = (__imagenet_root if __imagenet_root != '-' else
             '{{ fileDirname }}/../../../data/imagenet').rstrip('/') + '/'

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.2,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]

train_dataloader = dict(batch_size=128, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
