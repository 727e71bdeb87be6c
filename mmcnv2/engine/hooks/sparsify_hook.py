"""Drive the learned sparsification of LGC / SFR layers from the training loop."""
import copy
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import EMAHook, Hook

from ...analysis.complexity import paper_complexity
from ...checkpoint.files import save_deploy_checkpoint
from ...models.deploy import sparse_layers, switch_model_to_deploy
from ...models.layers import LearnedGroupConv, SparseFeatureReactivation, unwrap
from ...registry import register


@register('HOOKS')
class SparsifyHook(Hook):
    """Prune every LGC / SFR layer of the model on the paper's schedule.

    The lifecycle of a CondenseNetV2-style model is *train dense -> sparsify
    -> deploy*: every learned group convolution and sparse feature
    reactivation starts dense; this hook moves each of them, after every
    training iteration, to the stage of ``progress = finished iterations /
    max_iters`` (epoch- and iteration-based loops alike), so that a layer with
    factor ``F`` drops ``1/F`` of its connections at ``progress = i *
    end_progress / (F - 1)``, ``i = 1 .. F-1``, and trains sparse after
    ``end_progress`` (0.5 in the paper); the trained model is then condensed
    (``convert_at_end`` or ``tools/convert.py``).

    * Runs at ``ABOVE_NORMAL`` priority, before the checkpoint hook, so every
      checkpoint carries the masks of its iteration. The hook keeps no state
      of its own: masks and stages are model buffers, so ``--resume`` and
      ``load_from`` continue exactly (a layer never un-prunes, and a layer
      loaded at a later stage waits for the schedule to catch up).
    * Finds the layers anywhere in the model (classifier or detector
      backbone, wrapped in DDP or not). The pruning is deterministic, so all
      ranks agree; DDP also broadcasts the buffers from rank 0.
    * With mmengine's ``EMAHook`` (``update_buffers=False``), the averaged
      model gets the live model's masks and stages after every iteration.
    * Logs ``train/density_lgc``, ``train/density_sfr`` (live / total
      connections) and ``train/live_mflops`` (the model's FLOPs at its current
      density, the paper's count, at the training input size) to the
      runner's logs and visualization backends.

    Args:
        end_progress (float): Fraction of training at which sparsification
            ends, in ``(0, 1]``. Defaults to 0.5.
        convert_at_end (bool): After training, write the deploy form (from the
            EMA weights when EMA is on) next to the last checkpoint, as
            ``<checkpoint>_deploy.pth``. Defaults to False.
        log_flops (bool): Log the live FLOPs. Defaults to True.
        flops_input_shape (Sequence[int], optional): ``(C, H, W)`` for the
            FLOPs; defaults to the shape of the first training input.

    Example:
        >>> custom_hooks = [dict(type='SparsifyHook', convert_at_end=True)]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, end_progress: float = 0.5, convert_at_end: bool = False,
                 log_flops: bool = True, flops_input_shape: Optional[Sequence[int]] = None):
        if isinstance(end_progress, bool) or not isinstance(end_progress, (int, float)) \
                or not 0 < end_progress <= 1:
            raise ValueError(f'end_progress must be a number in (0, 1], got {end_progress!r}')
        if flops_input_shape is not None and len(flops_input_shape) != 3:
            raise ValueError('flops_input_shape must be (C, H, W), got '
                             f'{flops_input_shape!r}')
        self.end_progress = float(end_progress)
        self.convert_at_end = convert_at_end
        self.log_flops = log_flops
        self.flops_input_shape = tuple(flops_input_shape) if flops_input_shape else None
        self._live_flops = None
        self._densities: Dict[str, float] = {}

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _model(runner):
        return unwrap(runner.model)

    @staticmethod
    def _ema_hooks(runner):
        return [h for h in runner.hooks if isinstance(h, EMAHook)]

    def schedule_progress(self, runner, iteration: int) -> float:
        """The layers' ``progress`` argument after ``iteration`` finished iterations."""
        return 0.5 * iteration / (runner.max_iters * self.end_progress)

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner):
        layers = sparse_layers(runner.model)
        if not layers:
            raise RuntimeError('SparsifyHook: the model has no LGC/SFR layers to sparsify; '
                               'remove the hook or use a training-form sparse backbone')
        if all(m.deploy for _, m in layers):
            raise RuntimeError('SparsifyHook: every sparse layer is already in deploy form '
                               '(condensed); there is nothing to sparsify, remove the hook')
        for hook in self._ema_hooks(runner):
            if hook.ema_model.update_buffers:
                raise ValueError('SparsifyHook: EMAHook(update_buffers=True) would average the '
                                 'boolean masks; use update_buffers=False (the default)')
        max_stages = max(m.num_stages for _, m in layers if not m.deploy)
        end_iter = runner.max_iters * self.end_progress
        if end_iter < max_stages:
            runner.logger.warning(
                f'SparsifyHook: the schedule is short: {runner.max_iters} iterations, '
                f'sparsification ending at iteration {end_iter:g}, for up to {max_stages} pruning '
                'stages; several stages will be dropped in the same iteration')
        # Layers loaded mid-schedule (load_from / resume) move to their stage;
        # nothing happens if they are already there or beyond.
        self._step(runner, runner.iter)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        if self.log_flops and self.flops_input_shape is None and data_batch is not None:
            inputs = data_batch['inputs'] if isinstance(data_batch, dict) else None
            if inputs is not None and len(inputs):
                self.flops_input_shape = tuple(inputs[0].shape[-3:])
        if self.log_flops and self._live_flops is None and self.flops_input_shape:
            self._update_flops(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None):
        self._step(runner, runner.iter + 1)
        hub = runner.message_hub
        for kind, value in self._densities.items():
            hub.update_scalar(f'train/density_{kind}', value)
        if self._live_flops is not None:
            hub.update_scalar('train/live_mflops', self._live_flops / 1e6)

    def after_train(self, runner):
        if not self.convert_at_end or not is_main_process():
            return
        ema = self._ema_hooks(runner)
        source = ema[0].ema_model.module if ema else self._model(runner)
        model = copy.deepcopy(source).cpu()
        switch_model_to_deploy(model)
        out = self._deploy_path(runner)
        meta = dict(mmcnv2=dict(from_ema=bool(ema), iter=runner.iter),
                    cfg=runner.cfg.pretty_text if hasattr(runner, 'cfg') else None)
        # as Runner.save_checkpoint does: the inferencers label with these classes
        dataset = getattr(getattr(runner, 'train_dataloader', None), 'dataset', None)
        if hasattr(dataset, 'metainfo'):
            meta['dataset_meta'] = copy.deepcopy(dataset.metainfo)
        save_deploy_checkpoint(model, out, meta, force=True)
        runner.logger.info(f'SparsifyHook: deploy-form checkpoint ({"EMA" if ema else "live"} '
                           f'weights) saved to {out}; load it with model.backbone.deploy=True')

    # --------------------------------------------------------------- internals
    def _deploy_path(self, runner) -> str:
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.exists(last):
            with open(last) as f:
                ckpt = f.read().strip()
            if ckpt:
                return osp.splitext(ckpt)[0] + '_deploy.pth'
        return osp.join(runner.work_dir, 'deploy.pth')

    def _step(self, runner, iteration: int):
        progress = self.schedule_progress(runner, iteration)
        layers = sparse_layers(runner.model)
        dropped = sum(m.sparsify(progress) for _, m in layers if not m.deploy)
        if dropped or not self._densities:
            self._densities = self._measure_densities(layers)
            self._sync_ema(runner, layers)
            if dropped:
                if self._live_flops is not None:
                    self._update_flops(runner)
                summary = ', '.join(f'{k} {v:.4f}' for k, v in self._densities.items())
                runner.logger.info(f'SparsifyHook: iteration {iteration}: {dropped} layer '
                                   f'stages dropped; density {summary}')

    @staticmethod
    def _measure_densities(layers) -> Dict[str, float]:
        result = {}
        for kind, cls in (('lgc', LearnedGroupConv), ('sfr', SparseFeatureReactivation)):
            group = [m for _, m in layers if isinstance(m, cls)]
            if group:
                total = sum(m.in_channels * m.out_channels for m in group)
                result[kind] = sum(m.density * m.in_channels * m.out_channels
                                   for m in group) / total
        return result

    def _sync_ema(self, runner, layers):
        for hook in self._ema_hooks(runner):
            if not hasattr(hook, 'ema_model'):
                continue
            ema_layers = dict(sparse_layers(hook.ema_model.module))
            for name, m in layers:
                if m.deploy:
                    continue
                target = ema_layers[name]
                target.mask.copy_(m.mask)
                target.stage.copy_(m.stage)

    def _update_flops(self, runner):
        model = self._model(runner)
        forward = (lambda m, x: m(x, mode='tensor')) if hasattr(model, 'data_preprocessor') \
            else None
        try:
            self._live_flops, _ = paper_complexity(model, self.flops_input_shape, forward,
                                                   live=True)
        except (TypeError, RuntimeError) as e:
            runner.logger.warning(f'SparsifyHook: live FLOPs not logged ({e})')
            self.log_flops, self._live_flops = False, None
