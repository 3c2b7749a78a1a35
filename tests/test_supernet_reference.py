"""The supernet against the reference implementation (PyPI ``ofa``) as oracle.

Random reference weights (BN statistics randomised too) are saved in the official
checkpoint format, loaded with ``app.load_supernet``, and every extracted subnet must
match the reference's ``set_active_subnet`` + ``get_active_subnet`` output.
"""

from __future__ import annotations

import random

import pytest
import torch

import app
from app.space import RESOLUTION_CHOICES

N_RANDOM = 50


def _configs(width_mult: float) -> list[app.SubnetConfig]:
    rng = random.Random(int(width_mult * 10))
    cfgs = [app.SubnetConfig.largest(224), app.SubnetConfig.smallest(128), app.SubnetConfig.largest(128), app.SubnetConfig.smallest(224)]
    cfgs += [app.SubnetConfig.random(rng) for _ in range(N_RANDOM)]
    return cfgs


def _reference_subnet(ref, cfg):
    ref.set_active_subnet(ks=list(cfg.ks), e=list(cfg.e), d=list(cfg.d))
    return ref.get_active_subnet(preserve_weight=True).eval()


@pytest.fixture(scope="module")
def loaded(reference_pair):
    ref, path = reference_pair
    return ref, app.load_supernet(path)


def test_loaded_checkpoint_metadata(loaded):
    ref, net = loaded
    assert net.card.width_mult == (1.2 if ref.first_conv.conv.out_channels == 24 else 1.0)
    assert net.card.num_classes == 10
    assert not net.training
    assert all(not p.requires_grad for p in net.parameters())


@torch.no_grad()
def test_extracted_subnets_match_reference(loaded):
    ref, net = loaded
    worst = 0.0
    for i, cfg in enumerate(_configs(net.card.width_mult)):
        x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(i))
        expected = _reference_subnet(ref, cfg)(x)
        got = net.extract(cfg, calibrate=False)(x)
        worst = max(worst, (got - expected).abs().max().item())
        assert got.shape == expected.shape
    assert worst <= 1e-5, f"max abs difference {worst}"


@torch.no_grad()
def test_elastic_forward_matches_reference(loaded):
    ref, net = loaded
    for i, cfg in enumerate(_configs(net.card.width_mult)[:12]):
        x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(100 + i))
        ref.set_active_subnet(ks=list(cfg.ks), e=list(cfg.e), d=list(cfg.d))
        expected = ref(x)
        got = net(x, cfg)
        assert (got - expected).abs().max().item() <= 1e-5


def test_macs_and_params_match_reference(loaded):
    from ofa.utils.pytorch_utils import count_net_flops, count_parameters

    ref, net = loaded
    w = net.card.width_mult
    for cfg in _configs(w)[:20]:
        sub = _reference_subnet(ref, cfg)
        ref_macs = count_net_flops(sub, (1, 3, cfg.r, cfg.r))
        macs = app.count_macs(cfg, w, net.card.num_classes)
        # the reference accumulates in float32: compare to its precision
        assert macs == pytest.approx(ref_macs, rel=1e-6, abs=16)
        assert app.count_params(cfg, w, net.card.num_classes) == count_parameters(sub)
        # and the extracted module really has that many parameters
        assert sum(p.numel() for p in net.extract(cfg).parameters()) == count_parameters(sub)


def test_extraction_never_mutates_the_supernet(loaded):
    _, net = loaded
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for seed in range(3):
        cfg = app.SubnetConfig.random(seed)
        sub = net.extract(cfg, calibrate=torch.randn(4, 3, cfg.r, cfg.r))
        with torch.no_grad():
            for p in sub.parameters():
                p.add_(1.0)  # the subnet owns copies
        sub(torch.randn(1, 3, cfg.r, cfg.r))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("stage", [0, 1])
def test_sort_channels_matches_reference(stage, tmp_path):
    """Importance re-ordering before the elastic-width phases equals OFA's re_organize_middle_weights."""
    from tests.conftest import make_reference

    ref = make_reference(1.2, seed=3)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "ck.pth")
    net = app.load_supernet(tmp_path / "ck.pth")
    ref.re_organize_middle_weights(expand_ratio_stage=stage)
    net.sort_channels(expand_phase=stage)
    for cfg in (app.SubnetConfig.uniform(5, 4, 3, 160), app.SubnetConfig.uniform(3, 3, 2, 128)):
        x = torch.randn(2, 3, cfg.r, cfg.r)
        with torch.no_grad():
            expected = _reference_subnet(ref, cfg)(x)
            got = net.extract(cfg)(x)
        assert (got - expected).abs().max().item() <= 1e-5


def test_resolutions_cover_the_space():
    assert RESOLUTION_CHOICES[0] == 128 and RESOLUTION_CHOICES[-1] == 224
    assert len(RESOLUTION_CHOICES) == 25
