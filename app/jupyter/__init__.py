"""The OFA explorer inside Jupyter: the Streamlit app's knobs, numbers and classification as ipywidgets.

    from app.jupyter import Explorer
    ex = Explorer(hardware="note10", config="smallest")
    ex                                  # the whole explorer
    ex.controls, ex.tiles, ex.chart     # or its pieces, each a widget of its own
    ex.config, ex.subnet, ex.url()

The pieces also stand alone: ``Tiles(config, hardware)``, ``TradeoffChart(config, hardware)``. Every number comes
from the same functions as the app (:mod:`app.display`), so the notebook and the app cannot disagree.
Needs ipywidgets and anywidget (``pip install -r requirements-dev.txt``); vl-convert-python lets the chart draw offline.
"""

from __future__ import annotations

try:
    import anywidget  # noqa: F401  (altair's JupyterChart is an anywidget)
    import ipywidgets  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"app.jupyter needs ipywidgets>=8 and anywidget ({exc}); "
                      "install them with: pip install -r requirements-dev.txt") from None

from app.jupyter.explorer import Explorer
from app.display import AppLink, Tile, app_url, metric_tiles, parse_app_url, tradeoff_points
from app.jupyter.widgets import ClassifyPanel, ConfigControls, Tiles, TradeoffChart

__all__ = ["Explorer", "Tiles", "TradeoffChart", "ConfigControls", "ClassifyPanel", "Tile", "AppLink",
           "metric_tiles", "tradeoff_points", "app_url", "parse_app_url"]
