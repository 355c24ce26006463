"""Turn classifier logits into per-image records (target probability, prediction, top-5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def image_records(
    logits: torch.Tensor,
    target: int,
    label_names: Sequence[str],
    seeds: Sequence[int],
    prompts: Sequence[str],
    k: int = 5,
) -> list[dict[str, Any]]:
    """One JSON-friendly dict per image: seed, prompt, target_prob, pred, top-k [(index, name, prob)]."""
    probs = logits.detach().float().softmax(-1).cpu()
    k = min(k, probs.shape[1])
    top_p, top_i = probs.topk(k, dim=-1)
    out = []
    for j in range(probs.shape[0]):
        out.append(
            {
                "seed": int(seeds[j]),
                "prompt": prompts[j],
                "target_prob": float(probs[j, target]),
                "pred": int(top_i[j, 0]),
                "topk": [
                    [int(i), label_names[int(i)], float(p)] for p, i in zip(top_p[j], top_i[j], strict=False)
                ],
            }
        )
    return out


def accuracy_summary(records: Sequence[dict[str, Any]], target: int) -> dict[str, float]:
    """Batch accuracy, top-5 accuracy and mean target probability."""
    n = max(1, len(records))
    return {
        "accuracy": sum(r["pred"] == target for r in records) / n,
        "top5_accuracy": sum(any(t[0] == target for t in r["topk"][:5]) for r in records) / n,
        "target_prob_mean": sum(r["target_prob"] for r in records) / n,
    }


@torch.no_grad()
def target_probabilities(
    classifier: Any, images: torch.Tensor, target: int, batch_size: int = 64
) -> torch.Tensor:
    """Softmax probability of ``target`` for each image [N] (float32, CPU), in batches without gradients."""
    out = [
        classifier(images[i : i + batch_size]).float().softmax(-1)[:, target]
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).cpu()


@torch.no_grad()
def target_log_odds(classifier: Any, images: torch.Tensor, target: int, batch_size: int = 64) -> torch.Tensor:
    """Log-odds of ``target`` for each image [N] (float64, CPU): ``log p / (1 - p)``, computed from the logits as
    the target logit minus the log-sum-exp of the others, so it stays exact where ``p`` rounds to 1 (a classifier
    that already recognises the class: 0.999 and 0.99999 differ by 4.6 in log-odds, not at all in float32 p)."""
    out = []
    for i in range(0, len(images), batch_size):
        logits = classifier(images[i : i + batch_size]).double()
        others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1)
        out.append(logits[:, target] - others.logsumexp(-1))
    return torch.cat(out).cpu()
