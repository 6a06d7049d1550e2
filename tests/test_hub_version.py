"""One version: ijepa_hub/version.py; the package, config.json and the packaging metadata read it."""
import pytest
from conftest import REPO_ROOT

import ijepa_hub
from ijepa_hub import version


def test_version_has_one_source(tiny_model, tmp_path):
    assert ijepa_hub.__version__ is version.__version__
    config = (ijepa_hub.save_pretrained(tiny_model, tmp_path / "v") / "config.json").read_text()
    assert f'"library_version": "{version.__version__}"' in config
    pyproject = pytest.importorskip("setuptools.config.pyprojecttoml")
    project = pyproject.read_configuration(REPO_ROOT / "pyproject.toml", expand=True)["project"]
    assert project["version"] == version.__version__ and "version" in project["dynamic"]
