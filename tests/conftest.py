"""Shared fixtures: reference OFA supernets (the test oracle) and the project's loaded copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from app.allocator import keep_freed_memory

keep_freed_memory()
torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def make_reference(width_mult: float, n_classes: int = 10, seed: int = 0):
    """The reference ``ofa`` OFAMobileNetV3 with random weights and random BN statistics."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(seed)
    ref = OFAMobileNetV3(
        n_classes=n_classes, dropout_rate=0, width_mult=width_mult,
        ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
    )
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # kernel-transform matrices away from identity
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return ref.eval()


@pytest.fixture(scope="session", params=[1.0, 1.2], ids=["w1.0", "w1.2"])
def reference_pair(request, tmp_path_factory):
    """(reference OFAMobileNetV3, path of its official-format checkpoint)."""
    ref = make_reference(request.param)
    path = tmp_path_factory.mktemp("ofa") / f"ofa_mbv3_d234_e346_k357_w{request.param}"
    torch.save({"state_dict": ref.state_dict()}, path)
    return ref, path


# ---------------------------------------------------------------- no silent skips in CI
NO_SKIPS = os.environ.get("OFA_EXPLORER_NO_SKIPS") == "1"  # set by .ci/run: a skip there hides a failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ``OFA_EXPLORER_NO_SKIPS=1`` every skipped test is reported as failed, with its skip reason."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where skips are not allowed (OFA_EXPLORER_NO_SKIPS=1): {reason}"


def shared_path(*parts: str) -> Path:
    """A path under ``../shared`` (data and reference measurements); skips when it is missing
    (which fails under ``OFA_EXPLORER_NO_SKIPS=1``, as in CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's ../shared folder)")
    return path


def imagenette_like(root: Path, train: int, val: int) -> Path:
    """An Imagenette-shaped folder (``train/<wnid>/``, ``val/<wnid>/``) of real images: the bundled measurement set,
    ``train`` and then ``val`` images of each class."""
    import shutil

    by_class: dict[str, list[Path]] = {}
    for p in sorted((ROOT / "assets" / "measure").glob("*.jpg")):
        by_class.setdefault(p.name.split("_")[0], []).append(p)
    for wnid, files in by_class.items():
        for split, chosen in (("train", files[:train]), ("val", files[train : train + val])):
            (root / split / wnid).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / split / wnid / f.name)
    return root


def app_page(name: str, timeout: int = 180, **query):
    """An AppTest of ``pages/<name>.py`` with the given URL query parameters."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=timeout)
    for k, v in query.items():
        at.query_params[k] = v
    return at


# ---------------------------------------------------------------- a Redis server (the replicas' shared room store)
@pytest.fixture(scope="session")
def redis_url():
    """A Redis server on loopback (Debian's redis-server, as ``make serve`` starts it), for the whole session."""
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("needs Debian's redis-server (make test installs it)")
    from app.ui.replicas import redis_server

    with redis_server() as url:
        yield url
