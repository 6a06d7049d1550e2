"""torch.hub entrypoints for ijepa_hub: ``torch.hub.load("OWNER/ijepa_hub", "ijepa_vith14")``.

Generated from the registry (``ijepa_hub/registry.py``); see ``ijepa_hub.hub.torchhub``.
"""
dependencies = ["torch", "timm", "huggingface_hub", "safetensors", "PIL", "numpy", "yaml"]

from ijepa_hub.hub.torchhub import entrypoints as _entrypoints  # noqa: E402

globals().update(_entrypoints())
