"""Concept scoring behind one small protocol: ``scorer.concepts`` and ``scorer.score(images) -> [N, K]``.

* the bundled world's oracle scorer lives with the world (:class:`disco_inspect.world.scorer.OracleScorer`).
* :class:`OpenClipScorer` — zero-shot presence of free-text concepts with an open_clip model whose weights
  the user has locally (nothing downloads): p(concept) = softmax over {"a photo of <concept>", neutral}.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from ..errors import DiscoInspectError, missing_extra

#: The open_clip architecture assumed for ``--clip-weights`` when none is named.
DEFAULT_CLIP_ARCH = "ViT-B-32"

#: The shipped concept bank for real pipelines (backgrounds and surfaces, scenes, co-occurring objects, people and
#: their attributes, text and watermarks, image style), each concept with its own phrasing and real contrasts.
DEFAULT_BANK_FILE = Path(__file__).with_name("concept_bank.txt")


@runtime_checkable
class ConceptScorer(Protocol):
    """Anything that scores named concepts on images in [0, 1]."""

    concepts: list[str]

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Concept presence in [0, 1], shape [N, K] for images [N, 3, H, W] in [0, 1]."""
        ...

    def intervention(self, concept: str, class_name: str) -> tuple[str, list[str]]:
        """A prompt that shows ``class_name`` with ``concept`` and contrasting prompts without it."""
        ...


def load_concept_file(path: str | Path) -> tuple[list[str], dict[str, tuple[str, list[str]]]]:
    """Read a concept file: one concept per line; blank lines and ``#`` comments ignored.

    A line may also name its intervention prompts: ``concept | factor prompt | contrast; contrast``, with
    ``{class_name}`` in the prompts, e.g. ``a plate | a photo of a {class_name} on a plate | a photo of a
    {class_name} in the sea``. Returns the concepts and those interventions.
    """
    path = Path(path)
    if not path.is_file():
        raise DiscoInspectError(
            f"`concepts` file `{path}` does not exist; pass a text file with one concept per line."
        )
    concepts: list[str] = []
    interventions: dict[str, tuple[str, list[str]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = [x.strip() for x in line.split("#", 1)[0].split("|")]
        if not parts[0]:
            continue
        if len(parts) not in (1, 3) or (len(parts) == 3 and not (parts[1] and parts[2])):
            raise DiscoInspectError(
                f"`concepts` file `{path}` line {n} ({line.strip()!r}) is malformed; write "
                "'concept' or 'concept | factor prompt | contrast prompt; contrast prompt'."
            )
        concepts.append(parts[0])
        if len(parts) == 3:
            contrasts = [c.strip() for c in parts[2].split(";") if c.strip()]
            for prompt in [parts[1], *contrasts]:
                if "{class_name}" not in prompt:
                    raise DiscoInspectError(
                        f"`concepts` file `{path}` line {n}: prompt {prompt!r} needs "
                        "'{class_name}' where the class goes."
                    )
            interventions[parts[0]] = (parts[1], contrasts)
    if not concepts:
        raise DiscoInspectError(f"`concepts` file `{path}` holds no concepts; write one per line.")
    return list(dict.fromkeys(concepts)), interventions


def load_concepts(path: str | Path) -> list[str]:
    """The concepts of a concept file (see :func:`load_concept_file`)."""
    return load_concept_file(path)[0]


def _default_bank() -> tuple[tuple[str, ...], dict[str, tuple[str, list[str]]]]:
    concepts, interventions = load_concept_file(DEFAULT_BANK_FILE)
    return tuple(concepts), interventions


#: The default bank's concepts and their prompts (:data:`DEFAULT_BANK_FILE`).
DEFAULT_CONCEPTS, DEFAULT_INTERVENTIONS = _default_bank()


class OpenClipScorer:
    """Zero-shot concept presence with an open_clip model.

    Args:
        model: an ``open_clip`` CLIP model (``encode_image``/``encode_text``/``logit_scale``).
        tokenizer: the matching open_clip tokenizer.
        concepts: free-text concepts (default :data:`DEFAULT_CONCEPTS`).
        image_size, mean, std, interpolation: override the model's own preprocess config (open_clip's
            ``get_model_preprocess_cfg``: size, mean, std, interpolation, resize_mode), which is the default;
            applied with differentiable torch ops.
        template: how a concept becomes a caption; ``neutral`` is the caption it competes against.
        interventions: per concept, a factor prompt and contrast prompts with ``{class_name}``, on top of the
            shipped bank's (:data:`DEFAULT_BANK_FILE`); a concept in neither gets "a photo of a {class_name} with
            {concept}" vs "a photo of a {class_name}".
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        concepts: Sequence[str] | None = None,
        *,
        image_size: int | Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        interpolation: str | None = None,
        template: str = "a photo of {}",
        neutral: str = "a photo",
        batch_size: int = 32,
        interventions: dict[str, tuple[str, list[str]]] | None = None,
    ) -> None:
        self.model = model.eval()
        self.interventions = {**DEFAULT_INTERVENTIONS, **(interventions or {})}
        self.tokenizer = tokenizer
        self.concepts = list(concepts or DEFAULT_CONCEPTS)
        if not self.concepts:
            raise DiscoInspectError("`concepts` is empty; pass at least one concept.")
        self.batch_size = batch_size
        cfg = _open_clip_preprocess_cfg(
            model, size=image_size, mean=mean, std=std, interpolation=interpolation
        )
        self.preprocess_cfg: dict[str, Any] = cfg
        self.preprocessing = _preprocessing(cfg)
        self.mean = torch.tensor(self.preprocessing.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(self.preprocessing.std).view(1, 3, 1, 1)
        with torch.no_grad():
            text = tokenizer([template.format(c) for c in self.concepts] + [neutral])
            feats = F.normalize(model.encode_text(text).float(), dim=-1)
        self._concept_feats, self._neutral = feats[:-1], feats[-1]

    @classmethod
    def from_pretrained(
        cls, arch: str, weights: str | Path, concepts: Sequence[str] | None = None, **kwargs: Any
    ) -> OpenClipScorer:
        """Build from an open_clip architecture name and a LOCAL weights file (nothing is downloaded)."""
        try:
            import open_clip
        except ImportError as e:
            raise missing_extra("open_clip_torch") from e
        weights = Path(weights)
        if not weights.is_file():
            raise DiscoInspectError(
                f"open_clip weights `{weights}` do not exist; download them on a connected machine and pass the file "
                "(this tool never downloads)."
            )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(weights))
        except Exception as e:
            raise DiscoInspectError(f"Could not load open_clip `{arch}` from `{weights}`: {e}.") from e
        return cls(model, open_clip.get_tokenizer(arch), concepts, **kwargs)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, H, W] in [0, 1] -> the model's normalised input (differentiable)."""
        return self._prep(images)

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.preprocess_cfg["resize_mode"] == "squash":  # resize to the input size, aspect ratio not kept
            pre = self.preprocessing
            x = F.interpolate(
                x,
                size=pre.input_size,
                mode=pre.interpolation,
                **({} if pre.interpolation == "nearest" else {"align_corners": False, "antialias": True}),
            )
            return (x.clamp(0, 1) - self.mean) / self.std
        return self.preprocessing(x.clamp(0, 1))  # "shortest": shorter side -> size, centre crop, normalise

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """[N, K] = softmax(scale * [cos(img, concept), cos(img, neutral)])[0] per concept."""
        out = []
        scale = float(self.model.logit_scale.exp()) if hasattr(self.model, "logit_scale") else 100.0
        for i in range(0, len(images), self.batch_size):
            f = F.normalize(
                self.model.encode_image(self._prep(images[i : i + self.batch_size])).float(), dim=-1
            )
            s_c, s_n = f @ self._concept_feats.T, (f @ self._neutral)[:, None]
            out.append(torch.sigmoid(scale * (s_c - s_n)))  # 2-way softmax == sigmoid of the difference
        return torch.cat(out)

    def prompt_distance(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """1 - cos(image, prompt) in the CLIP space [N] (differentiable); added tokens (``<S>``) are left out."""
        words = [
            " ".join(w for w in p.split() if not (w.startswith("<") and w.endswith(">"))) for p in prompts
        ]
        with torch.no_grad():
            text = F.normalize(self.model.encode_text(self.tokenizer(words)).float(), dim=-1)
        img = F.normalize(self.model.encode_image(self._prep(images)).float(), dim=-1)
        return 1 - (img * text.to(img.device)).sum(-1)

    def intervention(self, concept: str, class_name: str) -> tuple[str, list[str]]:
        """The concept's prompts (the user's concept file, else the shipped bank); a concept in neither gets
        "a photo of a {class} with {concept}" vs "a photo of a {class}"."""
        factor, contrasts = self.interventions.get(
            concept, ("a photo of a {class_name} with " + concept, ["a photo of a {class_name}"])
        )
        return factor.replace("{class_name}", class_name), [
            c.replace("{class_name}", class_name) for c in contrasts
        ]


def _open_clip_preprocess_cfg(model: Any, **overrides: Any) -> dict[str, Any]:
    """open_clip's preprocess config of ``model`` (size, mean, std, interpolation, resize_mode) with overrides."""
    try:
        from open_clip import get_model_preprocess_cfg
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict
    except ImportError as e:
        raise missing_extra("open_clip_torch") from e
    try:
        own = dict(get_model_preprocess_cfg(model))
    except AttributeError:  # not an open_clip model: open_clip's defaults
        own = {}
    cfg = merge_preprocess_dict(merge_preprocess_dict(PreprocessCfg(), own), overrides)
    if cfg["resize_mode"] not in ("shortest", "squash"):
        raise DiscoInspectError(
            f"open_clip resize_mode {cfg['resize_mode']!r} is not supported by the concept scorer; set the model's "
            "preprocess cfg to 'shortest' or 'squash'."
        )
    return cfg


def _preprocessing(cfg: dict[str, Any]) -> Any:
    """The :class:`~disco_inspect.models.classifiers.Preprocessing` of an open_clip preprocess config."""
    from ..models.classifiers import Preprocessing

    size = cfg["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    return Preprocessing(
        input_size=size,
        interpolation=str(cfg["interpolation"]),
        crop_pct=1.0,
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
