# CIFAR schedule of the paper (Sec. 4.3): SGD nesterov 0.9, lr 0.1, cosine
# annealing, 300 epochs, batch 64; weight decay 1e-4 as in CondenseNet's CIFAR
# recipe (the paper does not give it); learned sparsification over the first half.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=300, by_epoch=True, begin=0, end=300, eta_min=0,
         convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
custom_hooks = [dict(type='SparsifyHook', end_progress=0.5)]
