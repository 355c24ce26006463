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
