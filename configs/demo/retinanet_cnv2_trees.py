# The detection demo: RetinaNet + FPN with a small CondenseNetV2, trained from scratch on real
# NEON aerial tree-crown tiles (demo_data/neon_trees, 44 train / 10 val tiles of 400x400) on CPU,
# with the backbone's LGC/SFR layers pruned by SparsifyHook over the first half of training and
# the deploy (condensed) checkpoint written at the end. From scratch on 44 tiles, the head and
# neck use GroupNorm and the training data scale/crop/colour jitter.
#
# The pyramid fits the crowns, 9-108 px (median 40) at 400 px: three FPN levels at strides 8, 16
# and 32 (no stride-4 level, no P6/P7) with square anchors of 16-101 px, three per place, so that
# 98% of the crowns have an anchor at IoU >= 0.5 (mmdet's default RetinaNet anchors, 32-813 px
# from stride 8, leave one crown in nine without one). The backbone has no dense layer at stride
# 2 (at 200x200 it took 45% of the backbone's training time) and is deeper at strides 16 and 32.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='CondenseNetV2',
        # CondenseNetV2-A's layout, smaller, with C = S = G = 4
        arch=dict(depths=(0, 1, 2, 4, 6), growth_rates=(8, 8, 16, 32, 64), condense_factor=4,
                  sparse_factor=4, groups=4, bottleneck=4, stem_stride=2, hswish_from=2,
                  se_from=3),
        out_indices=(2, 3, 4),  # strides 8, 16, 32
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[56, 184, 568], out_channels=64, start_level=0, num_outs=3,
              add_extra_convs=False, norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)),
    bbox_head=dict(num_classes=1, in_channels=64, feat_channels=64, stacked_convs=2,
                   norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
                   anchor_generator=dict(octave_base_scale=2, scales_per_octave=3, ratios=[1.0],
                                         strides=[8, 16, 32])),
    test_cfg=dict(score_thr=0.05, max_per_img=300))

# the repository's demo data, whatever the working directory
data_root = '{{ fileDirname }}/../../demo_data/neon_trees/'
metainfo = dict(classes=('tree', ), palette=[(0, 255, 0)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(400, 400), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(400, 400), allow_negative_crop=False),
    dict(type='PhotoMetricDistortion', brightness_delta=24, contrast_range=(0.75, 1.25),
         saturation_range=(0.75, 1.25), hue_delta=10),
    dict(type='RandomFlip', prob=[0.5, 0.5], direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/val.json', data_prefix=dict(img='val/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json',
                     metric='bbox', format_only=False)
test_evaluator = val_evaluator

max_epochs = 130
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=6e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0, end=max_epochs,
         eta_min=2e-5, convert_to_iter_based=True),
]

custom_hooks = [dict(type='SparsifyHook', end_progress=0.5, convert_at_end=True,
                     flops_input_shape=(3, 400, 400))]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=11),
    progress=dict(type='ProgressBarHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
