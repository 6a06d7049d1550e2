"""The test session writes no cache outside its temporary folder (tests/conftest.py sets the variables)."""
from pathlib import Path

import huggingface_hub.constants
import torch
from conftest import CACHE_ROOT

from ijepa_hub.eval.cache import default_cache_dir


def test_every_cache_is_under_the_session_temp_folder():
    home_cache = Path("~/.cache").expanduser()
    for folder in (default_cache_dir(), Path(torch.hub.get_dir()), Path(huggingface_hub.constants.HF_HUB_CACHE)):
        assert folder.is_relative_to(CACHE_ROOT) and not folder.is_relative_to(home_cache), folder
