"""``python -m ijepa_hub.train`` and ``torchrun -m ijepa_hub.train``."""
from .cli import main

raise SystemExit(main())
