"""SubnetConfig: validation, normalisation, round trips, constructors."""

from __future__ import annotations

import json
import math

import pytest

from app.space import NUM_BLOCKS, SubnetConfig

LARGEST = SubnetConfig.largest()


def ofa_dict(**over):
    d = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [224]}
    d.update(over)
    return d


@pytest.mark.parametrize(
    "bad, field",
    [
        (ofa_dict(ks=[7] * 19), "ks"),
        (ofa_dict(e=[6] * 21), "e"),
        (ofa_dict(d=[4] * 4), "d"),
        (ofa_dict(ks=[4] + [7] * 19), "ks[0]"),
        (ofa_dict(e=[6] * 19 + [5]), "e[19]"),
        (ofa_dict(d=[1, 4, 4, 4, 4]), "d[0]"),
        (ofa_dict(r=130), "r"),
        (ofa_dict(r=300), "r"),
        (ofa_dict(r=[224, 160]), "r"),
        (ofa_dict(r="224"), "r"),
        (ofa_dict(ks="7" * 20), "ks"),
        (ofa_dict(e=[float("nan")] * 20), "e[0]"),
        (ofa_dict(d=[True] * 5), "d[0]"),
        (ofa_dict(r=float("inf")), "r"),
        ({"ks": [7] * 20, "e": [6] * 20}, "missing"),
        (ofa_dict(extra=1), "unknown"),
        ([1, 2, 3], "config"),
    ],
)
def test_bad_configs_name_the_field(bad, field):
    with pytest.raises(ValueError) as exc:
        SubnetConfig.from_dict(bad) if isinstance(bad, dict) else SubnetConfig.parse(bad)
    assert field in str(exc.value)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match=r"\[3, 5, 7\]"):
        SubnetConfig.from_dict(ofa_dict(ks=[4] * 20))


def test_dict_round_trip_and_r_forms():
    cfg = SubnetConfig.random(7)
    assert SubnetConfig.from_dict(cfg.to_dict()) == cfg
    assert SubnetConfig.from_dict(ofa_dict(r=160)) == SubnetConfig.from_dict(ofa_dict(r=[160]))
    assert SubnetConfig.from_dict({k: v for k, v in ofa_dict().items() if k != "r"}).r == 224
    assert SubnetConfig.parse(json.dumps(cfg.to_dict())) == cfg


def test_compact_round_trip_is_url_safe():
    for seed in range(50):
        cfg = SubnetConfig.random(seed)
        s = cfg.to_compact()
        assert all(c.isalnum() or c == "-" for c in s)
        assert SubnetConfig.from_compact(s) == cfg
        assert SubnetConfig.parse(s) == cfg


@pytest.mark.parametrize("text", ["", "r224", "r224-d44444-k" + "7" * 20 + "-e" + "6" * 19, "r130-d44444-k" + "7" * 20 + "-e" + "6" * 20,
                                  "r224-d24444-k" + "7" * 20 + "-e" + "x" * 20, "{not json", "null"])
def test_bad_compact_strings(text):
    with pytest.raises(ValueError):
        SubnetConfig.parse(text)


def test_skipped_blocks_normalise_equal():
    a = SubnetConfig.from_dict(ofa_dict(d=[2] * 5))
    ks = [7] * 20
    ks[3] = 3  # block 3 is skipped at depth 2
    b = SubnetConfig.from_dict(ofa_dict(d=[2] * 5, ks=ks))
    assert a == b and hash(a) == hash(b)
    assert a.to_compact().count("x") == 2 * 10
    assert a != LARGEST


def test_constructors():
    assert SubnetConfig.largest().d == (4,) * 5 and set(SubnetConfig.largest().ks) == {7}
    s = SubnetConfig.smallest()
    assert s.r == 128 and set(s.d) == {2} and set(s.e) == {3}
    u = SubnetConfig.uniform(5, 4, 3, 192)
    assert u.active_blocks() == [i for i in range(NUM_BLOCKS) if i % 4 < 3]
    p = SubnetConfig.per_stage([3, 5, 7, 3, 5], [3, 4, 6, 3, 4], [2, 3, 4, 2, 3], 160)
    assert p.ks[4:8] == (5, 5, 5, 3) and p.d == (2, 3, 4, 2, 3)
    assert SubnetConfig.random(3) == SubnetConfig.random(3)
    assert len({SubnetConfig.random(i) for i in range(20)}) == 20


def test_block_specs_shapes():
    specs = SubnetConfig.largest(224).block_specs(1.2)
    assert len(specs) == 20
    assert specs[0].in_channels == 24 and specs[0].out_channels == 32 and specs[0].stride == 2
    assert specs[-1].out_channels == 192 and specs[-1].out_size == 7
    assert specs[0].mid_channels == 144  # 24 * 6
    assert not specs[0].residual and specs[1].residual
    assert math.isclose(specs[0].in_size, 112)
