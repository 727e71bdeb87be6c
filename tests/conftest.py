"""Fixtures of every test; helpers that tests import are in ``tests/utils.py``."""
import pytest
import torch

import mmcnv2  # noqa: F401  (registers everything)
# TODO(lead, after merging issue 17 part B): drop this line once tests/test_models and
# tests/test_ops import their helpers from tests.utils
from tests.utils import assert_params_match, randomize_bn, requires_ops  # noqa: F401


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
