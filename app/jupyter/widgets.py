"""The explorer's pieces as ipywidgets a teacher can compose: the metric tiles, the trade-off chart and the controls.

Each piece is a widget (display it, or put it in a box) with an ``update``/``show`` method; none of them loads the
supernet or runs torch: a slider move costs a vectorised prediction (~1 ms) and, for the chart, a new spec.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import altair as alt
import ipywidgets as widgets

from app import display as shared
from app.predictors import hardware_targets
from app.presets import presets, resolve
from app.space import (
    DEPTH_CHOICES,
    EXPAND_CHOICES,
    KERNEL_CHOICES,
    MAX_DEPTH,
    NUM_STAGES,
    RESOLUTION_CHOICES,
    SubnetConfig,
)
from app.ui.charts import tradeoff_chart

TILE_KEYS = ("accuracy", "imagenet", "latency", "energy", "macs", "params")  # CSS classes ofa-tile-<key>
WIDE = {"description_width": "initial"}
LABELS = {"description_width": "170px"}  # the sliders' descriptions, aligned
CHART_WIDTH = 640  # px; Vega-Lite's "container" width measures 0 inside a notebook output
_OFFLINE: list[bool] = []  # whether JupyterChart's JavaScript is bundled locally (decided once per process)


def message_html(text: str) -> str:
    """A one-line message (an error the user can fix) as HTML; empty text clears it."""
    if not text:
        return ""
    return f'<div class="ofa-message" style="color:#a94442;background:#f2dede;padding:4px 8px;border-radius:4px">{html.escape(text)}</div>'


def default_card():
    """The bundled supernet's card, read from its JSON (no weights, no torch work)."""
    from app.predictors.hardware import bundled_card

    return bundled_card()


# ----------------------------------------------------------------------------------------------- tiles
def tile_html(tile: shared.Tile) -> str:
    """One tile: title, value and source, with the long help as its tooltip."""
    return (f'<div title="{html.escape(tile.help)}" style="padding:6px 10px;border:1px solid #ddd;border-radius:6px">'
            f'<div style="font-size:0.85em;color:#555">{html.escape(tile.title)}</div>'
            f'<div class="ofa-tile-value" style="font-size:1.6em;font-weight:600;line-height:1.3">{html.escape(tile.text)}</div>'
            f'<div style="font-size:0.8em;color:#777">{html.escape(tile.source)}</div></div>')


class Tiles(widgets.VBox):
    """The six metric tiles of a config on a hardware target, each with its source, as the app's Explore page shows.

    ``Tiles("smallest", "note10")``; ``update(cfg, hw)`` redraws; ``records`` holds the tiles as data."""

    def __init__(self, config=shared.DEFAULT_CONFIG, hardware: str = shared.DEFAULT_HARDWARE, card=None):
        self.card = card if card is not None else default_card()
        self.cells = [widgets.HTML(layout=widgets.Layout(width="auto")) for _ in TILE_KEYS]
        for key, cell in zip(TILE_KEYS, self.cells):
            cell.add_class("ofa-tile")
            cell.add_class(f"ofa-tile-{key}")
        self.note = widgets.HTML()
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(grid_template_columns="repeat(3, minmax(0, 1fr))",
                                                                  grid_gap="6px", width="100%"))
        super().__init__([grid, self.note])
        self.records: list[shared.Tile] = []
        self.update(resolve(config), hardware)

    def update(self, cfg: SubnetConfig, hardware: str) -> None:
        """Show ``cfg`` on ``hardware`` (``ValueError`` for an unknown target; the tiles keep their last values)."""
        records, note = shared.metric_tiles(cfg, hardware, self.card)
        self.records = records
        for cell, tile in zip(self.cells, records):
            cell.value = tile_html(tile)
        self.note.value = f'<div style="font-size:0.85em;color:#666">Latency: {html.escape(note)}.</div>' if note else ""

    def values(self) -> dict[str, str]:
        """Tile title -> its text, e.g. ``{"Latency": "92.4 ms", ...}``."""
        return {t.title: t.text for t in self.records}


# ----------------------------------------------------------------------------------------------- chart
def chart_cache_dir() -> Path:
    """Where the bundled chart JavaScript is kept between kernels: $XDG_CACHE_HOME/ofa-explorer (default ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ofa-explorer"


def _offline_charts() -> bool:
    """Bundle JupyterChart's JavaScript locally (vl-convert), so charts draw without internet, as
    ``alt.JupyterChart.enable_offline()`` does; the bundle (~2 s of work) is cached on disk per version of altair and
    vl-convert. Without vl-convert-python the JavaScript is loaded from a CDN (the browser then needs internet)."""
    if _OFFLINE:
        return _OFFLINE[0]
    try:
        import vl_convert as vlc
        from altair.utils._importers import vl_version_for_vl_convert
    except ImportError:
        _OFFLINE.append(False)
        return False
    path = chart_cache_dir() / f"jupyterchart-altair{alt.__version__}-vlconvert{vlc.__version__}-{vl_version_for_vl_convert()}.js"
    try:
        alt.JupyterChart._esm = path.read_text("utf-8")
        alt.JupyterChart._is_offline = True
    except OSError:
        alt.JupyterChart.enable_offline()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(alt.JupyterChart._esm, "utf-8")
            tmp.replace(path)  # atomic: a kernel starting meanwhile reads the old state or the whole file
        except OSError:
            pass  # a read-only home: bundle again next time
    _OFFLINE.append(True)
    return True


def picked_config(vl_selections: dict) -> str | None:
    """The compact config of the point clicked on the chart, from JupyterChart's raw selection state (None if none)."""
    from altair.utils.selection import PointSelection

    state = (vl_selections or {}).get("pick")
    if not state:
        return None
    points = PointSelection.from_vega("pick", signal=state.get("value"), store=state.get("store", [])).value
    return points[0].get("cfg") if points else None


class TradeoffChart(widgets.VBox):
    """The app's trade-off chart (Altair, via ``alt.JupyterChart``): sampled subnets, OFA's specialised ones, the Pareto
    front and the current subnet, accuracy against latency on one hardware target. Clicking a point calls the
    ``on_pick`` callbacks with its config (the Explorer loads it)."""

    def __init__(self, config=shared.DEFAULT_CONFIG, hardware: str = shared.DEFAULT_HARDWARE, card=None,
                 axis: str = shared.ACCURACY_AXES[0]):
        self.card = card if card is not None else default_card()
        self.offline = _offline_charts()
        self.axis = widgets.Dropdown(options=list(shared.ACCURACY_AXES), value=axis, description="Accuracy axis",
                                     style=WIDE, layout=widgets.Layout(width="max-content"))
        self.note = widgets.HTML()
        self.points: shared.TradeoffPoints | None = None
        self._cfg, self._hw = resolve(config), hardware
        self.chart = alt.JupyterChart(self._build(), embed_options={"actions": False, "renderer": "svg"})
        self.chart.add_class("ofa-tradeoff")
        self.chart.observe(self._on_selection, names=["_vl_selections"])
        self._pick_callbacks: list[Callable[[SubnetConfig], None]] = []
        self.axis.observe(lambda _: self.update(self._cfg, self._hw), names="value")
        caption = widgets.HTML(
            '<div style="font-size:0.85em;color:#666">Click a point to load that subnet. Grey: random subnets of the space '
            "(predicted); orange: OFA's published specialised subnets; cross: the current subnet. Dark step line: the "
            "Pareto front of the plotted points, the best accuracy reachable at each latency or less.</div>")
        super().__init__([self.axis, self.chart, self.note, caption])

    def _build(self) -> alt.TopLevelMixin:
        self.points = shared.tradeoff_points(self._cfg, self._hw, self.card, self.axis.value)
        notes = [self.points.note] if self.points.note else []
        if not (self.points.frame["group"] == "current subnet").any():
            notes.append(f"The current subnet has no latency on {self._hw} at {self._cfg.r} px.")
        self.note.value = "".join(f'<div style="font-size:0.85em;color:#666">{html.escape(n)}</div>' for n in notes)
        p = self.points
        return tradeoff_chart(p.frame, "x", "y", p.x_title, p.y_title).properties(width=CHART_WIDTH)

    def update(self, cfg: SubnetConfig, hardware: str) -> None:
        """Redraw for ``cfg`` on ``hardware`` (``ValueError`` for an unknown target; the chart stays as it was)."""
        old = (self._cfg, self._hw)
        self._cfg, self._hw = cfg, hardware
        try:
            spec = self._build()
        except ValueError:
            self._cfg, self._hw = old
            raise
        self.chart.chart = spec

    def on_pick(self, callback: Callable[[SubnetConfig], None]) -> None:
        """Call ``callback(config)`` when a point of the chart is clicked."""
        self._pick_callbacks.append(callback)

    def _on_selection(self, change: dict) -> None:
        compact = picked_config(change["new"])
        if compact and compact != self._cfg.to_compact():
            cfg = SubnetConfig.from_compact(compact)
            for callback in self._pick_callbacks:
                callback(cfg)


# ----------------------------------------------------------------------------------------------- controls
def most_common(values: Sequence[int]) -> int:
    """The most frequent value (the first seen among equals), as the app's global sliders show a mixed config."""
    return Counter(values).most_common(1)[0][0]


def active_values(cfg: SubnetConfig, values: Sequence[int]) -> list[int]:
    """The values of the blocks depth keeps."""
    return [v for v, a in zip(values, cfg.active_mask()) if a]


def with_global(cfg: SubnetConfig, dim: str, value: int) -> SubnetConfig:
    """``cfg`` with one global slider moved: ``dim`` (d, e, ks or r) set to ``value`` for every stage / block."""
    if dim == "d":
        return cfg.replace(d=(value,) * NUM_STAGES)
    if dim in ("ks", "e"):
        return cfg.replace(**{dim: (value,) * len(cfg.ks)})
    return cfg.replace(r=value)


def with_stages(cfg: SubnetConfig, depths: Sequence[int], kernels: Sequence[int], expands: Sequence[int]) -> SubnetConfig:
    """``cfg`` with one depth, kernel and expand ratio per stage (the per-stage editor)."""
    ks = tuple(k for k in kernels for _ in range(MAX_DEPTH))
    e = tuple(x for x in expands for _ in range(MAX_DEPTH))
    return cfg.replace(ks=ks, e=e, d=tuple(depths))


def hardware_options() -> list[tuple[str, str]]:
    """(label · kind, name) of every hardware target, for the picker."""
    return [(f"{t.label} · {t.kind}", t.name) for t in hardware_targets()]


class ConfigControls(widgets.VBox):
    """Hardware picker, presets, the editor mode (the four global sliders, or depth / kernel / expand per stage) and a
    box to paste an app link or a config. It holds no state of its own: ``show(cfg, hw, mode)`` sets the widgets,
    and each user edit calls the ``on_request`` callbacks with an :class:`~app.display.AppLink` (or a message)."""

    MODE_LABELS = {"quick": "Quick (global sliders)", "stage": "Per stage"}

    def __init__(self):
        self._syncing = False
        self._callbacks: list[Callable[[shared.AppLink], None]] = []
        self._message_callbacks: list[Callable[[str], None]] = []
        self._cfg = shared.DEFAULT_CONFIG
        self.hardware = widgets.Dropdown(options=hardware_options(), description="Hardware target", style=WIDE,
                                         layout=widgets.Layout(width="auto"))
        self.preset = widgets.Dropdown(options=["—", *presets()], value="—", description="Presets", style=WIDE)
        self.mode = widgets.ToggleButtons(options=[(label, key) for key, label in self.MODE_LABELS.items()], value="quick",
                                          style={"button_width": "auto"})
        slider = dict(style=LABELS, continuous_update=True, layout=widgets.Layout(width="95%"))
        self.depth = widgets.SelectionSlider(options=DEPTH_CHOICES, description="Depth (blocks per stage)", **slider)
        self.expand = widgets.SelectionSlider(options=EXPAND_CHOICES, description="Width (expand ratio)", **slider)
        self.kernel = widgets.SelectionSlider(options=KERNEL_CHOICES, description="Kernel size", **slider)
        self.resolution = widgets.SelectionSlider(options=RESOLUTION_CHOICES, description="Input resolution (px)", **slider)
        for name, w in (("depth", self.depth), ("expand", self.expand), ("kernel", self.kernel), ("resolution", self.resolution)):
            w.add_class(f"ofa-slider-{name}")
        self.mixed = widgets.HTML()
        self.stage_depth = [widgets.Dropdown(options=DEPTH_CHOICES, description="depth", layout=widgets.Layout(width="auto")) for _ in range(NUM_STAGES)]
        self.stage_kernel = [widgets.Dropdown(options=KERNEL_CHOICES, description="kernel", layout=widgets.Layout(width="auto")) for _ in range(NUM_STAGES)]
        self.stage_expand = [widgets.Dropdown(options=EXPAND_CHOICES, description="expand", layout=widgets.Layout(width="auto")) for _ in range(NUM_STAGES)]
        self.quick_box = widgets.VBox([self.depth, self.expand, self.kernel, self.mixed])
        self.stage_box = widgets.HBox([
            widgets.VBox([widgets.HTML(f"<b>Stage {s + 1}</b>"), self.stage_depth[s], self.stage_kernel[s], self.stage_expand[s]])
            for s in range(NUM_STAGES)])
        self.link = widgets.Text(placeholder="an app link (…?cfg=…&hw=…), a preset name, a compact config or JSON",
                                 description="Load", style=WIDE, layout=widgets.Layout(width="70%"))
        self.load = widgets.Button(description="Load", tooltip="Load the link or config typed on the left")
        self._wire()
        super().__init__([widgets.HBox([self.hardware, self.preset]), self.mode, self.resolution, self.quick_box,
                          self.stage_box, widgets.HBox([self.link, self.load])])
        self.show(self._cfg, self.hardware.value, "quick")

    # ----- user edits -> requests
    def on_request(self, callback: Callable[[shared.AppLink], None]) -> None:
        """Call ``callback(AppLink)`` for every edit (a new config, hardware or mode)."""
        self._callbacks.append(callback)

    def on_message(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(text)`` when an edit cannot be applied (a one-line message)."""
        self._message_callbacks.append(callback)

    def _request(self, link: shared.AppLink) -> None:
        if not self._syncing:
            for callback in self._callbacks:
                callback(link)

    def _fail(self, text: str) -> None:
        for callback in self._message_callbacks:
            callback(text)

    def _wire(self) -> None:
        for dim, w in (("d", self.depth), ("e", self.expand), ("ks", self.kernel), ("r", self.resolution)):
            w.observe(lambda ch, dim=dim: self._request(shared.AppLink(config=with_global(self._cfg, dim, ch["new"]))), names="value")
        for w in (*self.stage_depth, *self.stage_kernel, *self.stage_expand):
            w.observe(lambda _: self._request(shared.AppLink(config=with_stages(
                self._cfg, [d.value for d in self.stage_depth], [k.value for k in self.stage_kernel],
                [e.value for e in self.stage_expand]))), names="value")
        self.hardware.observe(lambda ch: self._request(shared.AppLink(hardware=ch["new"])), names="value")
        self.mode.observe(lambda ch: self._request(shared.AppLink(mode=ch["new"])), names="value")
        self.preset.observe(self._on_preset, names="value")
        self.load.on_click(lambda _: self.load_text(self.link.value))

    def _on_preset(self, change: dict) -> None:
        if self._syncing or change["new"] == "—":
            return
        self._request(shared.AppLink(config=presets()[change["new"]].config))
        self._syncing = True
        try:
            self.preset.value = "—"
        finally:
            self._syncing = False

    def load_text(self, text: str) -> bool:
        """Apply a pasted app link, preset name, compact config or JSON; a one-line message if it is not understood."""
        try:
            link = shared.read_config_text(text)
        except ValueError as exc:
            self._fail(str(exc))
            return False
        self._request(link)
        return True

    # ----- state -> widgets
    def show(self, cfg: SubnetConfig, hardware: str, mode: str) -> None:
        """Set every widget to ``cfg`` on ``hardware`` in editor ``mode`` (no requests are sent)."""
        self._cfg = cfg
        self._syncing = True
        try:
            if hardware not in [name for _, name in self.hardware.options]:  # a target added since (calibrate-hardware)
                self.hardware.options = hardware_options()
            self.hardware.value = hardware
            self.mode.value = mode if mode in self.MODE_LABELS else "quick"
            self.depth.value = most_common(cfg.d)
            self.kernel.value = most_common(active_values(cfg, cfg.ks))
            self.expand.value = most_common(active_values(cfg, cfg.e))
            self.resolution.value = cfg.r
            for s in range(NUM_STAGES):
                blocks = range(s * MAX_DEPTH, s * MAX_DEPTH + cfg.d[s])
                self.stage_depth[s].value = cfg.d[s]
                self.stage_kernel[s].value = most_common([cfg.ks[i] for i in blocks])
                self.stage_expand[s].value = most_common([cfg.e[i] for i in blocks])
        finally:
            self._syncing = False
        uniform = len(set(cfg.d)) == 1 and len(set(active_values(cfg, cfg.ks))) == 1 and len(set(active_values(cfg, cfg.e))) == 1
        self.mixed.value = ("" if uniform else '<div style="font-size:0.85em;color:#666">The current subnet mixes values '
                            "across blocks; the sliders show the most common value, and moving one sets it for every block.</div>")
        self.quick_box.layout.display = "" if self.mode.value == "quick" else "none"
        self.stage_box.layout.display = "" if self.mode.value == "stage" else "none"


# ----------------------------------------------------------------------------------------------- classify panel
def sample_images() -> list:
    """The bundled sample images (``assets/samples``), sorted by name."""
    from app.paths import ASSETS

    return sorted(p for p in (ASSETS / "samples").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def topk_html(labels: Sequence[str], probabilities: Sequence[float], demoted: bool) -> str:
    """The top-k answer as a small table of bars (grey when the image is not one of the classes)."""
    colour = "#b0b7bf" if demoted else "#c0392b"
    rows = "".join(
        f'<tr><td style="padding-right:8px">{html.escape(label)}</td><td style="width:220px">'
        f'<div style="background:{colour};height:12px;width:{max(p, 0.0) * 100:.1f}%"></div></td>'
        f'<td style="text-align:right;padding-left:6px">{p:.1%}</td></tr>'
        for label, p in zip(labels, probabilities))
    return f'<table class="ofa-topk" style="border-collapse:collapse">{rows}</table>'


class ClassifyPanel(widgets.VBox):
    """Pick a bundled sample or upload a photo, press Classify: a progress bar while the subnet is extracted, its BN
    statistics re-estimated and the image classified (in the background), then the top-5, whether the image is one of
    the supernet's classes, and the Grad-CAM map. The :class:`~app.jupyter.Explorer` runs the work."""

    UPLOAD = "upload:"  # prefix of the image choices that are uploaded files

    def __init__(self):
        samples = sample_images()
        self._uploads: dict[str, bytes] = {}
        self.image = widgets.Dropdown(options=[(p.name, str(p)) for p in samples], description="Image", style=WIDE)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.button = widgets.Button(description="Classify", button_style="primary", icon="search")
        self.auto = widgets.Checkbox(value=False, description="Classify again when the subnet changes", indent=False)
        self.status = widgets.HTML()
        self.status.add_class("ofa-status")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(visibility="hidden"))
        self.result = widgets.HTML()
        self.result.add_class("ofa-result")
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="160px"))
        self.cam = widgets.Image(format="png", layout=widgets.Layout(width="160px"))
        self.upload.observe(self._on_upload, names="value")
        self.image.observe(lambda _: self._show_preview(), names="value")
        super().__init__([
            widgets.HBox([self.image, self.upload, self.button]), self.auto, widgets.HBox([self.progress, self.status]),
            widgets.HBox([self.preview, self.cam, self.result]),
        ])
        self._show_preview()

    def _on_upload(self, change: dict) -> None:
        for item in change["new"] or ():
            key = f"{self.UPLOAD}{item['name']}"
            self._uploads[key] = bytes(item["content"])
            options = [o for o in self.image.options if o[1] != key]
            self.image.options = [(f"uploaded: {item['name']}", key), *options]
            self.image.value = key

    def source(self):
        """The chosen image: the bytes of an uploaded file or the path of a sample."""
        value = self.image.value
        if value is None:
            raise ValueError("image: choose a sample or upload a photo first")
        return self._uploads[value] if value.startswith(self.UPLOAD) else value

    def _show_preview(self) -> None:
        from app.data import load_image

        try:
            self.preview.value = png_bytes(load_image(self.source()), 160)
        except ValueError as exc:
            self.show_error(str(exc))

    def show_progress(self, fraction: float, text: str) -> None:
        """Show work in progress (``fraction`` of it done) with a one-line description."""
        self.progress.value = fraction
        self.progress.bar_style = "info"
        self.progress.layout.visibility = "visible"
        self.status.value = html.escape(text)

    def show_done(self, text: str) -> None:
        """Hide the progress bar and leave ``text`` as the status."""
        self.progress.layout.visibility = "hidden"
        self.status.value = html.escape(text)

    def show_error(self, text: str) -> None:
        """A one-line message where the result would be."""
        self.progress.layout.visibility = "hidden"
        self.status.value = ""
        self.result.value = message_html(text)

    def show_result(self, result, num_classes: int, cam_png: bytes | None) -> None:
        """The answer of :func:`app.classify.classify` (and its Grad-CAM overlay as PNG bytes)."""
        demoted = result.open_world is not None and not result.open_world.in_classes
        verdict = f"<div>{html.escape(result.open_world.message(num_classes))}</div>" if result.open_world else ""
        self.result.value = (f'<div class="ofa-headline" style="font-size:1.2em;font-weight:600">'
                             f"{html.escape(result.headline(num_classes))}</div>{verdict}"
                             f"{topk_html(result.labels, result.probabilities, demoted)}"
                             f'<div style="font-size:0.85em;color:#666">{result.resolution} px, '
                             f"{result.seconds * 1000:.0f} ms (preprocessing, forward, open-world decision)</div>")
        self.cam.value = cam_png or b""


def png_bytes(image, side: int | None = None) -> bytes:
    """A PIL image as PNG bytes (scaled so its longer side is ``side``, if given)."""
    import io

    img = image.convert("RGB")
    if side is not None:
        img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
