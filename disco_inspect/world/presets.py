"""Settings tuned for the bundled world (small images, few steps; a whole audit takes minutes on a CPU)."""

from __future__ import annotations

from ..config import DiscoConfig

#: Prompt templates for world audits (the world's captions are short; no "photo" style words are needed).
WORLD_TEMPLATES: tuple[str, ...] = ("a photo of a {token} {class_name}", "a {token} {class_name}")


def world_config(**overrides: object) -> DiscoConfig:
    """DisCo settings for the world: 10 images x 10 DDIM steps, CFG 4, gradients through all steps (cheap
    here), a fixed number of iterations (no early stop, so trajectories are comparable), and a pool of 40 seeds
    cycled through (with the paper's fixed 10 seeds the token fits those noises and does not generalise; the
    measurement is in docs/lab-notes.md). ``objective="auto"``: the log-odds
    margin when the classifier already recognises the class (baseline mean p >= 0.9), else cross-entropy."""
    base = DiscoConfig(
        n_images=10,
        num_inference_steps=10,
        guidance_scale=4.0,
        grad_steps=-1,
        lr=0.02,
        seed_pool=40,
        max_iters=50,
        patience=50,
        accuracy_threshold=1.0,
        templates=WORLD_TEMPLATES,
        image_save_size=None,
        objective="auto",
    )
    return base.replace(**overrides) if overrides else base


#: Editing defaults for the world (``disco-inspect edit`` on ``world``): prompts in the captions' style ("a circle"),
#: 20 DDIM steps at the world's CFG 4; no attention injection: the edit rows start from the image's inverted noise
#: with its tuned null embeddings, which keep the shape (measured on two tokens with the pipeline's own noise
#: schedule: any injection kept the 1-thread token's green rate under 0.5; docs/editing.md).
WORLD_EDIT: dict[str, object] = {
    "prompt": "a {class_name}",
    "num_inference_steps": 20,
    "guidance_scale": 4.0,
    "cross_replace": 0.0,
    "self_replace": 0.0,
}


def edit_defaults() -> dict[str, object]:
    """A copy of :data:`WORLD_EDIT` (what :func:`disco_inspect.defaults.edit_defaults` puts on top for the world)."""
    return dict(WORLD_EDIT)
