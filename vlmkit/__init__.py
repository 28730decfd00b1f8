"""vlmkit: the shared logic behind the toolkit's flat entry scripts.

Every model in this toolkit is loaded from a local path. Importing the package switches the
Hugging Face hub to offline mode so that a typo in a path fails at once with a clear error instead
of silently trying (and, on air-gapped machines, hanging on) a download.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

__version__ = "0.1.0"
