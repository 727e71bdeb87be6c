"""Fixtures of every test; helpers that tests import are in ``tests/utils.py``."""
import pytest
import torch

import mmcnv2  # noqa: F401  (registers everything)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
