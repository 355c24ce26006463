"""An offline CLIP BPE tokenizer built from open_clip's bundled vocabulary file.

Stable Diffusion 1.x/2.x use OpenAI's CLIP BPE tokenizer. Its vocabulary ships inside the
``open_clip_torch`` package as ``bpe_simple_vocab_16e6.txt.gz``; this module turns it into the
``vocab.json`` + ``merges.txt`` pair that :class:`transformers.CLIPTokenizer` reads, so tests and the
bundled world need no download. Ids equal open_clip's (and therefore OpenAI's).
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path

from ..errors import DiscoInspectError, missing_extra
from ..io import atomic_write_text

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408


def _bpe_path() -> Path:
    try:
        import open_clip
    except ImportError as e:  # pragma: no cover - open_clip is a core dependency
        raise missing_extra("open_clip_torch") from e
    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise DiscoInspectError(f"open_clip's BPE file is missing at `{path}`; reinstall `open_clip_torch`.")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte → printable-unicode table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=False))


def _vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    lines = gzip.open(_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    base = list(_bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    return {tok: i for i, tok in enumerate(vocab)}, merges


def write_clip_tokenizer_files(folder: str | Path) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` for the CLIP BPE tokenizer into ``folder`` (atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges()
    targets = {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
    }
    for name, text in targets.items():
        atomic_write_text(folder / name, text)
    return folder / "vocab.json", folder / "merges.txt"


def _cache_dir() -> Path:
    root = os.environ.get("DISCO_INSPECT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "disco-inspect"
    )
    return Path(root) / "clip-bpe-16e6"


@lru_cache(maxsize=1)
def _cached_files() -> tuple[str, str]:
    folder = _cache_dir()
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        write_clip_tokenizer_files(folder)
    return str(vocab), str(merges)


def clip_tokenizer(model_max_length: int = 77):
    """Return a :class:`transformers.CLIPTokenizer` equal to OpenAI CLIP's, built offline.

    >>> tok = clip_tokenizer()
    >>> tok("a photo of a cat").input_ids
    [49406, 320, 1125, 539, 320, 2368, 49407]
    """
    from transformers import CLIPTokenizer

    vocab, merges = _cached_files()
    # Positional paths: transformers 5 was seen to build a 3-token vocabulary from keyword paths.
    tok = CLIPTokenizer(vocab, merges, model_max_length=model_max_length)
    if len(tok) != CLIP_VOCAB_SIZE:
        raise DiscoInspectError(
            f"The offline CLIP tokenizer has {len(tok)} tokens instead of {CLIP_VOCAB_SIZE}; delete the cache "
            f"folder `{_cache_dir()}` and retry."
        )
    return tok
