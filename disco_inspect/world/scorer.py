"""The world's oracle as a concept scorer (:class:`~disco_inspect.analysis.concepts.ConceptScorer` protocol): one
concept per factor value ("background=green"), scored by the oracle's softmax; interventions are world captions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DiscoInspectError


class OracleScorer:
    """The world's oracle as a concept scorer: concept ``"factor=value"`` scored by the oracle's softmax."""

    def __init__(self, oracle: Any = None, factors: Sequence[str] | None = None) -> None:
        from .oracle import load_oracle
        from .scenes import FACTOR_VALUES, FACTORS

        self.oracle = oracle if oracle is not None else load_oracle()
        self.factors = list(factors or [f for f in FACTORS if f != "shape"])
        unknown = [f for f in self.factors if f not in FACTOR_VALUES]
        if unknown:
            raise DiscoInspectError(f"`factors` {unknown} are unknown; use some of {list(FACTORS)}.")
        self.concepts = [f"{f}={v}" for f in self.factors for v in FACTOR_VALUES[f]]

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """[N, K] probabilities, columns in :attr:`concepts` order."""
        probs = self.oracle.probabilities(images.float().cpu())
        return torch.cat([probs[f] for f in self.factors], dim=1)

    def presence(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Which images show each concept (``present``, ``absent``: boolean [N, K]) by the oracle's reading: a value
        is present when the oracle reads it for its factor (the factor's most probable value), absent otherwise."""
        from .scenes import FACTOR_VALUES

        scores = torch.as_tensor(scores)
        present = torch.zeros(scores.shape, dtype=torch.bool)
        col = 0
        for f in self.factors:
            k = len(FACTOR_VALUES[f])
            read = scores[:, col : col + k].argmax(1)
            present[:, col : col + k] = F.one_hot(read, k).bool()
            col += k
        return (
            present,
            ~present,
            "the value the world's oracle reads for the factor (present) vs any other value",
        )

    def prompt_distance(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """How far each image is from its prompt [N] (differentiable): the mean over the factors the prompt names
        of ``-log p_oracle(value)``. Added tokens (``<S>``) and a leading "a photo of" are ignored; a prompt that
        names no factor contributes 0."""
        from .scenes import FACTOR_VALUES, parse_caption

        self.oracle.eval()
        logits = self.oracle(images.float())
        out = []
        for i, prompt in enumerate(prompts):
            words = [w for w in prompt.strip().split() if not (w.startswith("<") and w.endswith(">"))]
            text = " ".join(words)
            text = re.sub(r"^an? (photo|picture|image) of ", "", text, flags=re.IGNORECASE)
            try:
                named = parse_caption(text.lower())
            except DiscoInspectError:
                named = {}
            terms = [-F.log_softmax(logits[f][i], -1)[FACTOR_VALUES[f].index(v)] for f, v in named.items()]
            out.append(torch.stack(terms).mean() if terms else logits["shape"][i].sum() * 0)
        return torch.stack(out)

    def intervention(self, concept: str, class_name: str) -> tuple[str, list[str]]:
        """World captions: ``"a circle on a green background"`` vs the same with every other value."""
        from .scenes import FACTOR_VALUES, SHAPES, caption_for

        if concept not in self.concepts:
            raise DiscoInspectError(f"Unknown concept {concept!r}; this scorer knows {self.concepts}.")
        factor, value = concept.split("=", 1)
        shape = class_name.strip().lower()

        def caption(v: str) -> str:
            fixed = {factor: v}
            if shape in SHAPES:
                return caption_for({"shape": shape, **fixed})
            return caption_for(fixed).replace("shape", class_name, 1)  # a non-world label: say it as the noun

        return caption(value), [caption(v) for v in FACTOR_VALUES[factor] if v != value]
