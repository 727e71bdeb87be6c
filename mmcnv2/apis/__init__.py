from ..checkpoint.files import save_deploy_checkpoint
from .deploy import compare_forms, convert_checkpoint
from .inputs import MissingInputsError, check_inputs
from .runner import (INPUT_ERRORS, build_runner, load_config, match_checkpoint_form,
                     set_model_form, test, train)

__all__ = [
    'compare_forms', 'convert_checkpoint', 'save_deploy_checkpoint', 'MissingInputsError',
    'check_inputs', 'INPUT_ERRORS', 'build_runner', 'load_config', 'match_checkpoint_form',
    'set_model_form', 'test', 'train'
]
