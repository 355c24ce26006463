"""A content fingerprint of a classifier, so a run folder is reused only for the same model (not the same path)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def classifier_fingerprint(classifier: Any) -> str:
    """SHA-256 over the wrapped module's weights (names, dtypes, shapes, bytes), its preprocessing and labels.

    Two files with the same weights give the same fingerprint wherever they live; a file overwritten with other
    weights gives another. Costs one pass over the weights (~0.1 s per 100 MB).
    """
    h = hashlib.sha256()
    module = getattr(classifier, "module", classifier)
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{list(tensor.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    extra = {
        "preprocessing": classifier.preprocessing.to_dict() if hasattr(classifier, "preprocessing") else None,
        "labels": list(getattr(classifier, "label_names", [])),
    }
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()
