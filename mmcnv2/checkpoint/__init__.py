from .official import OfficialCheckpointError, import_official

__all__ = ['OfficialCheckpointError', 'import_official']
