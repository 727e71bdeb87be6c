from ..models.forms import CheckpointFormError, CheckpointMismatchError
from .files import (CheckpointNotFoundError, CheckpointReadError, OutputExistsError,
                    check_state_dict_fits, load_state_dict_strict, read_checkpoint,
                    save_checkpoint_file)
from .official import OfficialCheckpointError, import_official

__all__ = [
    'CheckpointFormError', 'CheckpointMismatchError', 'CheckpointNotFoundError',
    'CheckpointReadError', 'OutputExistsError', 'check_state_dict_fits', 'load_state_dict_strict',
    'read_checkpoint', 'save_checkpoint_file', 'OfficialCheckpointError', 'import_official'
]
