import os

import pytest
import torch
from hypothesis import settings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The suite draws the same hypothesis examples on every run, so a failure in CI reproduces on any
# machine; HYPOTHESIS_PROFILE=explore draws new ones (and more of them) to look for failures.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
