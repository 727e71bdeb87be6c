"""The version of mmcnv2, written in this one place.

``setup.py`` reads this file without importing the package (importing it needs
torch and the OpenMMLab stack); ``mmcnv2.__version__`` re-exports it.
"""
__version__ = '0.1.0'
