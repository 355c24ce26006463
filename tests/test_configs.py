"""One config pattern: DiscoConfig, AuditSettings, EditSettings and WorldTrainConfig validate on creation, round-trip
through to_dict/from_dict, refuse unknown keys by name, and replace() validates the copy."""

import pytest

from disco_inspect import AuditSettings, DiscoConfig, DiscoInspectError
from disco_inspect.editor import EditSettings
from disco_inspect.world.train import WorldTrainConfig

BAD = {
    DiscoConfig: {"n_images": 0},
    AuditSettings: {"alpha": 2.0},
    EditSettings: {"method": "magic"},
    WorldTrainConfig: {"unet_steps": 0},
}


@pytest.mark.parametrize("cls", list(BAD))
def test_the_config_pattern(cls, tmp_path):
    cfg = cls()
    assert cls.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DiscoInspectError, match="nonsense"):
        cls.from_dict({**cfg.to_dict(), "nonsense": 1})
    ((name, value),) = BAD[cls].items()
    with pytest.raises(DiscoInspectError, match=name):
        cfg.replace(**{name: value})
    with pytest.raises(DiscoInspectError, match=name):
        cls(**{name: value})
    cfg.save(tmp_path / "c.json")
    assert cls.load(tmp_path / "c.json") == cfg


def test_save_is_atomic_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    """A write that fails halfway (a full disk) keeps the old file whole and leaves no partial file behind."""
    import builtins
    import io

    path = tmp_path / "c.json"
    DiscoConfig().save(path)
    before = path.read_text()
    real_open = io.open

    class _HalfWrite:
        def __init__(self, f):
            self._f = f

        def write(self, text):
            self._f.write(text[: len(text) // 2])
            self._f.flush()
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def __getattr__(self, name):
            return getattr(self._f, name)

    def _open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _HalfWrite(f) if "w" in mode and str(tmp_path) in str(file) else f

    monkeypatch.setattr(io, "open", _open)
    monkeypatch.setattr(builtins, "open", _open)
    with pytest.raises(OSError, match="No space"):
        DiscoConfig(n_images=3).save(path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]
