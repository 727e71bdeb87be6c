from .deploy import compare_forms, convert_checkpoint, save_deploy_checkpoint
from .runner import build_runner, load_config, test, train

__all__ = ['compare_forms', 'convert_checkpoint', 'save_deploy_checkpoint', 'build_runner', 'load_config', 'test', 'train']
