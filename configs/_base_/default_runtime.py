# mmpretrain's default runtime, with checkpoints written so that a run killed at any moment
# (even while saving) keeps its last complete checkpoint for --resume: AtomicCheckpointHook takes
# CheckpointHook's arguments, writes to a temporary file and renames it into place, and removes
# old checkpoints (max_keep_ckpts) only after the new one is complete.
_base_ = ['mmpretrain::_base_/default_runtime.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))
