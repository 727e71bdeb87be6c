"""Modules that only run inference: no training mode, no autograd.

The fused form (:func:`mmcnv2.models.fuse_for_inference`) folds BatchNorm into
weights and keeps derived weights as buffers, so it has neither a training mode
nor gradients. Rather than run in training mode or return outputs that carry no
gradient (``backward()`` would succeed and leave ``x.grad`` None), every such
module refuses, the same way whatever its architecture:

* ``.train()`` (``mode=True``) raises ``RuntimeError``; ``.eval()`` works;
* a call with autograd enabled (``torch.is_grad_enabled()``) raises
  ``RuntimeError`` when an input tensor or a parameter requires grad; under
  ``torch.no_grad()`` / ``torch.inference_mode()`` anything goes.

A module becomes inference-only by :func:`make_inference_only`, which, like
``torch.nn.utils.parametrize``, swaps its class for a subclass mixing
:class:`InferenceOnly` in (so every ``isinstance`` check still holds).
"""
from typing import Iterator

import torch
import torch.nn as nn

_ADVICE = ('train the training or deploy form instead (fuse after loading the deploy '
           'checkpoint)')


def _input_tensors(args, kwargs) -> Iterator[torch.Tensor]:
    """The tensors among ``args`` and ``kwargs`` values, also inside lists and tuples."""
    for value in (*args, *(kwargs or {}).values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def refuse_autograd(module: nn.Module, args, kwargs=None) -> None:
    """Raise ``RuntimeError`` if calling ``module`` on ``args``/``kwargs`` would need
    gradients: autograd is enabled and an input tensor or a parameter requires grad.

    Example:
        >>> import torch
        >>> with torch.no_grad():
        ...     refuse_autograd(torch.nn.Linear(2, 2), (torch.ones(1, 2, requires_grad=True), ))
        >>> refuse_autograd(torch.nn.Linear(2, 2).requires_grad_(False), (torch.ones(1, 2), ))
        >>> refuse_autograd(torch.nn.Linear(2, 2), (torch.ones(1, 2), ))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        RuntimeError: Linear is inference-only: it computes no gradients, ...
    """
    if not torch.is_grad_enabled():
        return
    if any(t.requires_grad for t in _input_tensors(args, kwargs)) or any(
            p.requires_grad for p in module.parameters()):
        raise RuntimeError(
            f'{type(module).__name__} is inference-only: it computes no gradients, so it '
            'refuses inputs or parameters that require grad while autograd is enabled; call '
            f'it under torch.no_grad() or torch.inference_mode(), or {_ADVICE}')


def refuse_training_mode(module: nn.Module, mode: bool) -> None:
    """Raise ``RuntimeError`` if ``mode`` (the argument of ``module.train``) is true."""
    if mode:
        raise RuntimeError(f'{type(module).__name__} is inference-only (BatchNorm folded, '
                           f'weights derived): it has no training mode; {_ADVICE}')


class InferenceOnly:
    """Mixin of inference-only modules: see the module docstring.

    Mixed in before an ``nn.Module`` class (``class X(InferenceOnly, Base)``), it
    refuses ``train()`` and autograd, then runs ``Base.forward``.
    """

    def train(self, mode: bool = True):
        refuse_training_mode(self, mode)
        return super().train(False)

    def forward(self, *args, **kwargs):
        refuse_autograd(self, args, kwargs)
        return super().forward(*args, **kwargs)


def make_inference_only(module: nn.Module) -> nn.Module:
    """Make ``module`` inference-only, in place: eval mode, parameters frozen, and its
    class swapped for a subclass with :class:`InferenceOnly` mixed in.

    Returns:
        nn.Module: ``module``.

    Example:
        >>> import torch
        >>> net = make_inference_only(torch.nn.Sequential(torch.nn.Linear(2, 2)))
        >>> isinstance(net, torch.nn.Sequential), net.training
        (True, False)
        >>> net.train()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        RuntimeError: Sequential is inference-only (BatchNorm folded, weights derived): ...
    """
    module.eval()
    module.requires_grad_(False)
    cls = type(module)
    if not isinstance(module, InferenceOnly):
        module.__class__ = type(cls.__name__, (InferenceOnly, cls),
                                dict(__module__=cls.__module__, __doc__=cls.__doc__,
                                     __qualname__=cls.__qualname__))
    return module
