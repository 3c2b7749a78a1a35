"""The OFA MobileNetV3 elastic supernet and pure subnet extraction.

``OFASupernet.extract(cfg)`` returns a new static :class:`~app.nn.static.MobileNetV3Subnet`
holding copies of the active weights; the supernet itself is never modified, so one
loaded supernet serves every session of the app.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.nn.elastic import ConvBN, ElasticMBConv, FixedMBConv, _bn_slice, _cl
from app.nn.static import ConvBNAct, MobileNetV3Subnet, make_bn, make_conv
from app.space import (
    EXPAND_CHOICES,
    MAX_DEPTH,
    NUM_STAGES,
    STAGES,
    SubnetConfig,
    Widths,
    middle_channels,
)

from app.card import IMAGENET_MEAN, IMAGENET_STD, SupernetCard  # noqa: F401  (the supernet carries a card)


class OFASupernet(nn.Module):
    """OFA's ``ofa_mbv3_d234_e346_k357_w{1.0,1.2}`` elastic MobileNetV3.

    ``forward(x, cfg)`` runs the elastic network for ``cfg`` (largest when omitted),
    for training. ``extract(cfg)`` returns a standalone static subnet for inference.
    """

    def __init__(self, card: SupernetCard, dropout: float = 0.1) -> None:
        super().__init__()
        self.card = card
        w = Widths.of(card.width_mult)
        self.widths = w
        self.dropout = dropout
        self.stem = ConvBN(3, w.stem, 3)
        self.first_block = FixedMBConv(w.stem, w.first_block)
        blocks = []
        in_ch = w.first_block
        for stage, spec in enumerate(STAGES):
            out_ch = w.stages[stage]
            for j in range(MAX_DEPTH):
                stride = spec.stride if j == 0 else 1
                max_mid = middle_channels(in_ch, max(EXPAND_CHOICES))
                blocks.append(ElasticMBConv(in_ch, out_ch, max_mid, stride, spec.act, spec.use_se))
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = ConvBN(in_ch, w.final_expand)
        self.feature_mix = nn.Module()
        self.feature_mix.conv = nn.Conv2d(w.final_expand, w.feature_mix, 1, bias=False)
        self.classifier = nn.Linear(w.feature_mix, card.num_classes)

    # ------------------------------------------------------------------ training
    def forward(self, x: Tensor, cfg: SubnetConfig | None = None) -> Tensor:
        """Elastic forward of subnet ``cfg`` (the resolution is the input's)."""
        return self.classify(self.features(x, cfg))

    def classify(self, features: Tensor) -> Tensor:
        """The head on :meth:`features`: dropout (training only), then the linear classifier."""
        if self.dropout > 0 and self.training:
            features = F.dropout(features, self.dropout, training=True)
        return self.classifier(features)

    def features(self, x: Tensor, cfg: SubnetConfig | None = None) -> Tensor:
        """Subnet ``cfg``'s pooled feature vector (``widths.feature_mix`` wide), the classifier's input."""
        cfg = cfg or SubnetConfig.largest()
        x = F.hardswish(self.stem.bn(F.conv2d(x, self.stem.conv.weight, None, 2, 1)))
        x = self.first_block(x)
        for stage in range(NUM_STAGES):
            for j in range(cfg.d[stage]):
                i = stage * MAX_DEPTH + j
                block = self.blocks[i]
                x = block(x, cfg.ks[i], middle_channels(x.size(1), cfg.e[i]))
        x = F.hardswish(self.final_expand.bn(self.final_expand.conv(x)))
        x = x.mean((2, 3), keepdim=True)
        x = F.hardswish(self.feature_mix.conv(x))
        return torch.flatten(x, 1)

    def sort_channels(self, expand_phase: int = 0) -> None:
        """Importance-sort the hidden channels of every block (before an elastic-width phase).

        ``expand_phase`` = number of narrower expand ratios already trained (OFA's
        ``expand_ratio_stage``); their channel sets are kept. Mutates: training only.
        """
        ratios = sorted(EXPAND_CHOICES, reverse=True)
        for block in self.blocks:
            widths = tuple(middle_channels(block.in_ch, r) for r in ratios)
            block.sort_channels(widths, expand_phase)

    # ---------------------------------------------------------------- extraction
    @torch.no_grad()
    def extract(
        self,
        cfg: SubnetConfig | dict | str,
        calibrate: bool | Tensor | Iterable[Tensor] = False,
    ) -> MobileNetV3Subnet:
        """A static eval-mode subnet holding copies of the active weights of ``cfg``.

        ``calibrate``: ``False`` keeps the supernet's (sliced) BN statistics, as OFA's
        ``get_active_subnet``; ``True`` re-estimates them on the bundled calibration
        images (fast path, see :mod:`app.calibrate`); a tensor or an iterable of image
        batches re-estimates them on those images (OFA's ``set_running_statistics``).
        """
        cfg = SubnetConfig.parse(cfg)
        stem = ConvBNAct(
            make_conv(_cl(self.stem.conv.weight), stride=2),
            make_bn(_bn_slice(self.stem.bn, self.widths.stem)),
            "h_swish",
        )
        first = self.first_block.extract()
        blocks = []
        in_ch = self.widths.first_block
        for stage in range(NUM_STAGES):
            for j in range(cfg.d[stage]):
                i = stage * MAX_DEPTH + j
                blocks.append(self.blocks[i].extract(in_ch, cfg.ks[i], middle_channels(in_ch, cfg.e[i])))
                in_ch = self.blocks[i].out_ch
        final_expand = ConvBNAct(
            make_conv(_cl(self.final_expand.conv.weight)),
            make_bn(_bn_slice(self.final_expand.bn, self.widths.final_expand)),
            "h_swish",
        )
        feature_mix = ConvBNAct(make_conv(_cl(self.feature_mix.conv.weight)), None, "h_swish")
        classifier = nn.Linear(self.widths.feature_mix, self.card.num_classes, device="meta")
        classifier.weight = nn.Parameter(self.classifier.weight.detach().clone(), requires_grad=False)
        classifier.bias = nn.Parameter(self.classifier.bias.detach().clone(), requires_grad=False)
        subnet = MobileNetV3Subnet(stem, first, blocks, final_expand, feature_mix, classifier, cfg).eval()
        if calibrate is not False:
            from app import calibrate as calib

            if calibrate is True:
                from app.open_world import remember_calibration_features

                features: list[Tensor] = []
                calib.recalibrate_fast(subnet, self.card, features_out=features)
                if features:  # the open-world reference of this subnet, from the same forward pass
                    remember_calibration_features(subnet, self.card, features[0])
            else:
                calib.recalibrate_bn(subnet, [calibrate] if isinstance(calibrate, Tensor) else calibrate)
        return subnet

    def extra_repr(self) -> str:
        return f"width_mult={self.card.width_mult}, classes={self.card.num_classes}, name={self.card.name!r}"
