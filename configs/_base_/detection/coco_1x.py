# COCO 2017 detection, 1x schedule (12 epochs, SGD, 800 x 1333), as in the paper's Table 7.
# Data in data/coco/ of this repository (annotations/instances_{train,val}2017.json,
# train2017/, val2017/), whatever the working directory; point elsewhere with the COCO_ROOT
# environment variable or
# --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py', 'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)

# checkpoints written so that a run killed at any moment keeps its last complete one (see
# ../default_runtime.py)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))

__coco_root = '{{$COCO_ROOT:-}}'  # '-' when the variable is not set
data_root = (__coco_root if __coco_root != '-' else
             '{{ fileDirname }}/../../../data/coco').rstrip('/') + '/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# the recipes are written for 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)

# fail before the first iteration, with the rebuild command, where mmcv's compiled ops
# (nms, RoIAlign, focal loss) cannot run on the model's device (e.g. a CPU-only mmcv on a GPU)
custom_hooks = [dict(type='MMCVOpsCheckHook')]
