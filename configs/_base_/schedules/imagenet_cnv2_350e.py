# Schedule of the CondenseNetV2 release for a total batch of 1024 (8 GPUs x 128):
# SGD nesterov 0.9, lr 0.4, 5 warm-up epochs from 0.1, cosine stepped per
# iteration, 350 epochs, weight decay 4e-5 except on norm layers and biases,
# model EMA with decay 0.9998, learned sparsification over the first half.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, nesterov=True, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=345, by_epoch=True, begin=5, end=350, eta_min=0,
         convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=350, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The paper's recipe is written for 8 x 128 images.
auto_scale_lr = dict(base_batch_size=1024)

custom_hooks = [
    dict(type='SparsifyHook', end_progress=0.5),
    dict(type='EMAHook', momentum=0.0002, priority='ABOVE_NORMAL'),
]
