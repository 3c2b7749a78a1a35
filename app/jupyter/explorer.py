"""The explorer in a notebook: the Streamlit app's Explore page (and its Classify panel) as ipywidgets.

    from app.jupyter import Explorer
    ex = Explorer(hardware="note10", config="smallest")
    ex                      # hardware, presets, sliders, tiles with sources, trade-off chart, classify panel
    ex.config, ex.subnet    # the current SubnetConfig, and its extracted subnet with re-estimated BN statistics
    ex.url()                # the same view in the app: http://localhost:8501/explore?cfg=…&hw=note10
    ex.load_url(link)       # and back

A control change costs a vectorised prediction (no torch). Extraction and BN re-estimation of the shown subnet run in
a background thread after a short pause (as the app prefetches them), classification when asked; the kernel stays free.
"""

from __future__ import annotations

import html
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import ipywidgets as widgets

from app import display as shared
from app.jupyter.background import Lane
from app.jupyter.widgets import ClassifyPanel, ConfigControls, Tiles, TradeoffChart, default_card, message_html, png_bytes
from app.presets import resolve
from app.space import SubnetConfig

PREFETCH_DELAY = 0.5  # s without a change before the shown subnet's BN statistics are re-estimated
CLASSIFY_DELAY = 0.8  # s without a change before an automatic re-classification
SUBNETS_KEPT = 4  # extracted subnets kept per explorer (LRU), as the app keeps a few per session


class Explorer:
    """Hardware picker, presets, the four global sliders (or per-stage editors), the metric tiles with their sources,
    the trade-off chart and a classify panel, on the same functions as the Streamlit app.

    ``hardware``: a target name (:func:`app.hardware_targets`); ``config``: a preset name, a compact string, JSON, a
    dict or a :class:`~app.space.SubnetConfig` (default: the largest subnet, as the app); ``supernet``: an
    :class:`~app.supernet.OFASupernet` (default: the bundled one, loaded on first use); ``prefetch``: re-estimate the
    shown subnet's BN statistics in the background; ``chart``: include the trade-off chart. Values that are not
    understood leave a one-line message in :attr:`message` and the defaults in place, never an exception."""

    def __init__(self, hardware: str = shared.DEFAULT_HARDWARE, config: Any = None, *, supernet=None,
                 prefetch: bool = True, chart: bool = True, base_url: str = shared.APP_URL):
        self._net = supernet
        self._net_lock = threading.Lock()
        self.card = supernet.card if supernet is not None else default_card()
        if self.card is None:  # no bundled card (weights missing): the loader says what it falls back to
            self.card = self._supernet().card
        self.base_url = base_url
        self.prefetch = prefetch
        self._cfg, self._hw, self._mode = shared.DEFAULT_CONFIG, shared.DEFAULT_HARDWARE, "quick"
        self._subnets: OrderedDict[str, Any] = OrderedDict()
        self._subnets_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ofa-explorer")
        self.prefetch_lane = Lane(self._executor)
        self.classify_lane = Lane(self._executor)
        self._change_callbacks: list[Callable[["Explorer"], None]] = []
        self.last_message = ""

        messages = []
        for make_link in (lambda: shared.AppLink(hardware=hardware),
                          lambda: shared.read_config_text(config) if isinstance(config, str) else shared.AppLink(config=config)):
            try:
                link = self._resolved(make_link())
            except ValueError as exc:
                messages.append(str(exc))
                continue
            self._cfg, self._hw, self._mode = link.config or self._cfg, link.hardware or self._hw, link.mode or self._mode

        self.controls = ConfigControls()
        self.tiles = Tiles(self._cfg, self._hw, self.card)
        self.chart = TradeoffChart(self._cfg, self._hw, self.card) if chart else None
        self.classify_panel = ClassifyPanel()
        self.message = widgets.HTML()
        self.header = widgets.HTML()
        self.controls.on_request(self._on_request)
        self.controls.on_message(self._say)
        if self.chart is not None:
            self.chart.on_pick(lambda cfg: self.set_config(cfg))
        self.classify_panel.button.on_click(lambda _: self.classify_async())
        parts = [self.controls, self.message, self.header, self.tiles]
        if self.chart is not None:
            parts.append(self.chart)
        parts.append(widgets.VBox([widgets.HTML("<b>Classify with this subnet</b>"), self.classify_panel]))
        self.widget = widgets.VBox(parts, layout=widgets.Layout(width="100%"))
        self._show(changed_config=True)
        self._say(" ".join(messages))

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "Explorer":
        """An explorer showing an app link's subnet and hardware (``…/explore?cfg=…&hw=…``)."""
        ex = cls(**kwargs)
        ex.load_url(url)
        return ex

    # ------------------------------------------------------------------------------------------ state
    @property
    def config(self) -> SubnetConfig:
        """The subnet shown (set it with a preset name, compact string, JSON, dict or SubnetConfig)."""
        return self._cfg

    @config.setter
    def config(self, value: Any) -> None:
        self.set_config(value)

    @property
    def hardware(self) -> str:
        """The hardware target shown."""
        return self._hw

    @hardware.setter
    def hardware(self, name: str) -> None:
        self.set_hardware(name)

    @property
    def mode(self) -> str:
        """The editor shown: "quick" (global sliders) or "stage" (per stage)."""
        return self._mode

    def set_config(self, value: Any) -> bool:
        """Show ``value``'s subnet; False (and a one-line message) if it is not a valid config."""
        return self._try(lambda: shared.AppLink(config=value))

    def set_hardware(self, name: str) -> bool:
        """Show hardware target ``name``; False (and a one-line message) if there is no such target."""
        return self._try(lambda: shared.AppLink(hardware=name))

    def set_mode(self, mode: str) -> bool:
        """Show the "quick" or the "stage" editor."""
        return self._try(lambda: shared.AppLink(mode=mode))

    def load_url(self, url: str) -> bool:
        """Apply an app link (or a preset name, compact config or JSON); False and a one-line message if it is not
        understood (the explorer then keeps what it shows)."""
        return self._try(lambda: shared.read_config_text(url))

    def url(self, base: str | None = None) -> str:
        """The Streamlit app's link to this view (its Explore page at ``base``, default :attr:`base_url`)."""
        return shared.app_url(self._cfg, self._hw, base or self.base_url, self._mode)

    def on_change(self, callback: Callable[["Explorer"], None]) -> None:
        """Call ``callback(explorer)`` after every change of config, hardware or mode."""
        self._change_callbacks.append(callback)

    # ------------------------------------------------------------------------------------------ applying changes
    def _try(self, make_link: Callable[[], shared.AppLink]) -> bool:
        try:
            self._apply(self._resolved(make_link()))
        except ValueError as exc:
            self._say(str(exc))
            return False
        self._say("")
        return True

    def _on_request(self, link: shared.AppLink) -> None:
        try:
            self._apply(self._resolved(link))
        except ValueError as exc:
            self._say(str(exc))
            self._show(changed_config=False)  # the widgets go back to what is shown
            return
        self._say("")

    @staticmethod
    def _resolved(link: shared.AppLink) -> shared.AppLink:
        """``link`` with its config parsed and its hardware and mode checked (``ValueError`` with a one-line message)."""
        cfg = None if link.config is None else resolve(link.config)
        hw = None if link.hardware is None else shared.check_hardware(link.hardware)
        if link.mode is not None and link.mode not in ConfigControls.MODE_LABELS:
            if link.mode not in shared.MODES:
                raise ValueError(f"mode: must be one of {', '.join(ConfigControls.MODE_LABELS)}; got {link.mode!r}")
            return shared.AppLink(cfg, hw, None)  # the app's per-block editor: the notebook shows the subnet as it is
        return shared.AppLink(cfg, hw, link.mode)

    def _apply(self, link: shared.AppLink) -> None:
        cfg = link.config or self._cfg
        changed = cfg != self._cfg
        self._cfg, self._hw, self._mode = cfg, link.hardware or self._hw, link.mode or self._mode
        self._show(changed_config=changed)
        for callback in self._change_callbacks:
            callback(self)

    def _show(self, changed_config: bool) -> None:
        """Every widget to the current state; background work for a new config."""
        self.controls.show(self._cfg, self._hw, self._mode)
        self.tiles.update(self._cfg, self._hw)
        if self.chart is not None:
            self.chart.update(self._cfg, self._hw)
        link = html.escape(self.url())
        self.header.value = (f'<div><b>Subnet</b> <code class="ofa-compact">{self._cfg.to_compact()}</code> · '
                             f'<a href="{link}" target="_blank">open in the app</a></div>')
        if changed_config:
            self._after_config_change()

    def _say(self, text: str) -> None:
        self.last_message = text
        self.message.value = message_html(text)

    # ------------------------------------------------------------------------------------------ the subnet
    def _supernet(self):
        """The supernet, loaded on first use (the bundled one unless one was given)."""
        with self._net_lock:
            if self._net is None:
                from app.weights import load_supernet

                self._net = load_supernet()
            return self._net

    def _calibrated(self, cfg: SubnetConfig) -> tuple[Any, float]:
        """(the extracted subnet of ``cfg`` with re-estimated BN statistics, seconds spent now: 0 when kept)."""
        key = cfg.to_compact()
        with self._subnets_lock:
            if key in self._subnets:
                self._subnets.move_to_end(key)
                return self._subnets[key], 0.0
        t = time.perf_counter()
        sub = self._supernet().extract(cfg, calibrate=True)
        seconds = time.perf_counter() - t
        with self._subnets_lock:
            self._subnets[key] = sub
            while len(self._subnets) > SUBNETS_KEPT:
                self._subnets.popitem(last=False)
        return sub, seconds

    def _is_kept(self, cfg: SubnetConfig) -> bool:
        with self._subnets_lock:
            return cfg.to_compact() in self._subnets

    @property
    def subnet(self):
        """The current config's subnet: a static eval-mode ``nn.Module`` with re-estimated BN statistics (extracted on
        the background thread if it is not ready yet; this waits for it, about a second)."""
        cfg = self._cfg
        return self._executor.submit(self._calibrated, cfg).result()[0]

    @property
    def supernet(self):
        """The supernet the subnets come from (loaded on first use)."""
        return self._supernet()

    def _after_config_change(self) -> None:
        if self.prefetch:
            cfg = self._cfg
            self.prefetch_lane.submit(lambda: self._prefetch(cfg), PREFETCH_DELAY)
        if self.classify_panel.auto.value:
            self.classify_async(delay=CLASSIFY_DELAY)

    def _prefetch(self, cfg: SubnetConfig) -> None:
        panel = self.classify_panel
        if self._is_kept(cfg):
            return
        panel.show_progress(0.3, f"Extracting {cfg.to_compact()} and re-estimating its BN statistics (background)…")
        _, seconds = self._calibrated(cfg)
        if cfg == self._cfg:
            panel.show_done(f"Subnet ready: extracted and BN statistics re-estimated in {seconds:.1f} s.")

    # ------------------------------------------------------------------------------------------ classification
    def classify_async(self, image: Any = None, delay: float = 0.0) -> Future:
        """Classify ``image`` (a PIL image, a path or bytes; default: the panel's choice) with the current subnet on the
        background thread, showing progress and the answer in the panel. The future resolves to the
        :class:`~app.classify.Classification` (None if superseded by a newer request)."""
        cfg = self._cfg
        try:
            source = self.classify_panel.source() if image is None else image
        except ValueError as exc:
            self.classify_panel.show_error(str(exc))
            done: Future = Future()
            done.set_exception(exc)
            return done
        return self.classify_lane.submit(lambda: self._classify(cfg, source), delay)

    def classify(self, image: Any = None, timeout: float | None = 300) -> Any:
        """:meth:`classify_async` and wait for the answer (``ValueError`` for an image that cannot be read)."""
        return self.classify_async(image).result(timeout)

    def _classify(self, cfg: SubnetConfig, source: Any):
        from PIL import Image

        from app.classify import classify
        from app.data import load_image
        from app.saliency import overlay

        panel = self.classify_panel
        try:
            image = source if isinstance(source, Image.Image) else load_image(source)
            if not self._is_kept(cfg):
                panel.show_progress(0.2, f"Extracting {cfg.to_compact()} and re-estimating its BN statistics…")
            sub, _ = self._calibrated(cfg)
            panel.show_progress(0.7, "Classifying…")
            result = classify(sub, image, self._supernet().card, explain=True)
            cam = png_bytes(overlay(image, result.saliency.heatmap, result.resolution), 160) if result.saliency else None
        except ValueError as exc:  # an unreadable image: the library's one-line message
            panel.show_error(str(exc))
            raise
        except Exception as exc:  # anything else still ends as one line in the panel, not a traceback
            panel.show_error(f"{type(exc).__name__}: {exc}".splitlines()[0])
            raise
        panel.show_result(result, self.card.num_classes, cam)
        panel.show_done(f"Classified with {cfg.to_compact()}.")
        return result

    # ------------------------------------------------------------------------------------------ housekeeping
    def wait(self, timeout: float | None = 300) -> None:
        """Wait for the background work requested so far (prefetch and classification), e.g. before timing."""
        for lane in (self.prefetch_lane, self.classify_lane):
            future = lane.latest()
            if future is not None:
                try:
                    future.result(timeout)
                except Exception:  # noqa: BLE001 - its message is already shown in the panel
                    pass

    def close(self) -> None:
        """Stop the background thread (after the job in progress) and close the widgets."""
        self.prefetch_lane.cancel()
        self.classify_lane.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)
