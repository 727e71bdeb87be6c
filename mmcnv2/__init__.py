"""mmcnv2: CondenseNetV2 and SFR-ShuffleNetV2 for MMDetection and MMPretrain.

Importing the package registers every model, hook and dataset in the
``mmcnv2`` scope and in the mmpretrain / mmdet registries, registers the
model zoo's classifiers with mmpretrain's ``ModelHub`` (``mmpretrain.list_models``,
``get_model``), and allows the exact globals that mmengine runner checkpoints
contain for ``torch.load(weights_only=True)``.
"""
from .checkpoint.safe_globals import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .model_zoo import register_model_hub  # noqa: E402
from .version import __version__  # noqa: E402,F401

register_model_hub()
