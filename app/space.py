"""The OFA MobileNetV3 search space (``ofa_mbv3_d234_e346_k357``): the one source of truth.

Everything that needs the shape of the space -- the supernet, the encoders of the
predictors, the latency tables, the UI -- reads it from here.

A subnet is a :class:`SubnetConfig`: a kernel size and an expand ratio for each of
the 20 elastic blocks, a depth for each of the 5 stages and an input resolution.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

KERNEL_CHOICES: tuple[int, ...] = (3, 5, 7)
EXPAND_CHOICES: tuple[int, ...] = (3, 4, 6)
DEPTH_CHOICES: tuple[int, ...] = (2, 3, 4)
RESOLUTION_CHOICES: tuple[int, ...] = tuple(range(128, 225, 4))
WIDTH_CHOICES: tuple[float, ...] = (1.0, 1.2)

NUM_STAGES = 5
MAX_DEPTH = max(DEPTH_CHOICES)
NUM_BLOCKS = NUM_STAGES * MAX_DEPTH
CHANNEL_DIVISIBLE = 8
SE_REDUCTION = 4


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage of MBConv blocks (before width scaling)."""

    base_width: int
    stride: int
    act: str  # "relu" or "h_swish"
    use_se: bool


STEM_BASE_WIDTH = 16  # 3x3 stride-2 conv, h-swish
FIRST_BLOCK_BASE_WIDTH = 16  # fixed MBConv, expand 1, kernel 3, relu, no SE
STAGES: tuple[StageSpec, ...] = (
    StageSpec(24, 2, "relu", False),
    StageSpec(40, 2, "relu", True),
    StageSpec(80, 2, "h_swish", False),
    StageSpec(112, 1, "h_swish", True),
    StageSpec(160, 2, "h_swish", True),
)
FINAL_EXPAND_BASE_WIDTH = 960
FEATURE_MIX_BASE_WIDTH = 1280


def make_divisible(v: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never dropping more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


@dataclass(frozen=True)
class Widths:
    """Channel counts of a supernet of a given width multiplier."""

    width_mult: float
    stem: int
    first_block: int
    stages: tuple[int, ...]
    final_expand: int
    feature_mix: int

    @classmethod
    def of(cls, width_mult: float) -> "Widths":
        return cls(
            width_mult=width_mult,
            stem=make_divisible(STEM_BASE_WIDTH * width_mult),
            first_block=make_divisible(FIRST_BLOCK_BASE_WIDTH * width_mult),
            stages=tuple(make_divisible(s.base_width * width_mult) for s in STAGES),
            final_expand=make_divisible(FINAL_EXPAND_BASE_WIDTH * width_mult),
            feature_mix=make_divisible(FEATURE_MIX_BASE_WIDTH * width_mult),
        )


def middle_channels(in_channels: int, expand_ratio: int) -> int:
    """Hidden width of an MBConv block with ``in_channels`` inputs at ``expand_ratio``."""
    return make_divisible(round(in_channels * expand_ratio))


def se_channels(channels: int) -> int:
    """Hidden width of the squeeze-excite module on ``channels`` channels."""
    return make_divisible(channels // SE_REDUCTION)


@dataclass(frozen=True)
class BlockSpec:
    """Static description of one active elastic block inside a subnet."""

    index: int  # 0..19 in the supernet
    stage: int  # 0..4
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    expand: int
    stride: int
    act: str
    use_se: bool
    in_size: int  # input feature-map side
    out_size: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def _conv_out(size: int, stride: int) -> int:
    # "same" padding for odd kernels: out = ceil(in / stride)
    return (size - 1) // stride + 1


def _fail(field_name: str, allowed: str, got: Any) -> ValueError:
    return ValueError(f"{field_name}: {allowed}; got {got!r}")


def _as_int(field_name: str, allowed: Sequence[int], value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field_name, f"must be one of {list(allowed)}", value)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise _fail(field_name, f"must be one of {list(allowed)}", value)
        value = int(value)
    if value not in allowed:
        raise _fail(field_name, f"must be one of {list(allowed)}", value)
    return int(value)


def _as_list(field_name: str, length: int, allowed: Sequence[int], value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(field_name, f"must be a list of {length} values from {list(allowed)}", value)
    if len(value) != length:
        raise ValueError(
            f"{field_name}: must have {length} values from {list(allowed)}; got {len(value)}"
        )
    return tuple(_as_int(f"{field_name}[{i}]", allowed, v) for i, v in enumerate(value))


_COMPACT = re.compile(r"^r(\d{3})-d([234]{5})-k([357x]{20})-e([346x]{20})$")


@dataclass(frozen=True, eq=True)
class SubnetConfig:
    """A subnet of the OFA-MBv3 space: ks (20), e (20), d (5) and resolution r.

    Construction validates and normalises: kernel and expand values of blocks that
    depth skips are set to the smallest choice, so two configs describing the same
    network compare equal.
    """

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int = 224
    _norm: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = _as_list("d", NUM_STAGES, DEPTH_CHOICES, self.d)
        ks = _as_list("ks", NUM_BLOCKS, KERNEL_CHOICES, self.ks)
        e = _as_list("e", NUM_BLOCKS, EXPAND_CHOICES, self.e)
        r = _as_int("r", RESOLUTION_CHOICES, self.r)
        ks_l, e_l = list(ks), list(e)
        for stage, depth in enumerate(d):
            for j in range(depth, MAX_DEPTH):
                ks_l[stage * MAX_DEPTH + j] = KERNEL_CHOICES[0]
                e_l[stage * MAX_DEPTH + j] = EXPAND_CHOICES[0]
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "ks", tuple(ks_l))
        object.__setattr__(self, "e", tuple(e_l))
        object.__setattr__(self, "r", r)

    # ----- constructors -------------------------------------------------
    @classmethod
    def largest(cls, r: int = 224) -> "SubnetConfig":
        return cls.uniform(max(KERNEL_CHOICES), max(EXPAND_CHOICES), max(DEPTH_CHOICES), r)

    @classmethod
    def smallest(cls, r: int = 128) -> "SubnetConfig":
        return cls.uniform(min(KERNEL_CHOICES), min(EXPAND_CHOICES), min(DEPTH_CHOICES), r)

    @classmethod
    def uniform(cls, ks: int, e: int, d: int, r: int = 224) -> "SubnetConfig":
        """One kernel size, expand ratio and depth for every block and stage."""
        return cls((ks,) * NUM_BLOCKS, (e,) * NUM_BLOCKS, (d,) * NUM_STAGES, r)

    @classmethod
    def per_stage(
        cls, ks: Sequence[int], e: Sequence[int], d: Sequence[int], r: int = 224
    ) -> "SubnetConfig":
        """One kernel size, expand ratio and depth per stage (5 values each)."""
        ks_t = _as_list("ks", NUM_STAGES, KERNEL_CHOICES, ks)
        e_t = _as_list("e", NUM_STAGES, EXPAND_CHOICES, e)
        return cls(
            tuple(k for k in ks_t for _ in range(MAX_DEPTH)),
            tuple(x for x in e_t for _ in range(MAX_DEPTH)),
            tuple(d),
            r,
        )

    @classmethod
    def random(cls, seed: int | random.Random | None = None, r: int | None = None) -> "SubnetConfig":
        """A uniformly sampled config (reproducible for a given seed)."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return cls(
            tuple(rng.choice(KERNEL_CHOICES) for _ in range(NUM_BLOCKS)),
            tuple(rng.choice(EXPAND_CHOICES) for _ in range(NUM_BLOCKS)),
            tuple(rng.choice(DEPTH_CHOICES) for _ in range(NUM_STAGES)),
            r if r is not None else rng.choice(RESOLUTION_CHOICES),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SubnetConfig":
        """From OFA's dict form ``{"ks": [...], "e": [...], "d": [...], "r": [224]}``.

        ``r`` may be an int or a one-element list; it defaults to 224 when absent.
        ``"wid"`` (present in some OFA dicts, always ``None`` for MBv3) is ignored.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"config: must be a JSON object with keys ks, e, d, r; got {type(data).__name__}")
        missing = [k for k in ("ks", "e", "d") if k not in data]
        if missing:
            raise ValueError(f"config: missing key(s) {', '.join(missing)} (need ks, e, d and optionally r)")
        unknown = set(data) - {"ks", "e", "d", "r", "wid", "image_size"}
        if unknown:
            raise ValueError(f"config: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        r = data.get("r", data.get("image_size", 224))
        if isinstance(r, Sequence) and not isinstance(r, (str, bytes)):
            if len(r) != 1:
                raise _fail("r", "must be an int or a one-element list", r)
            r = r[0]
        return cls(data["ks"], data["e"], data["d"], r)

    @classmethod
    def from_compact(cls, text: str) -> "SubnetConfig":
        """From the URL-safe form produced by :meth:`to_compact`."""
        if not isinstance(text, str):
            raise ValueError(f"config string: must be text; got {type(text).__name__}")
        m = _COMPACT.match(text.strip())
        if not m:
            raise ValueError(
                "config string: expected 'r<res>-d<5 digits 2-4>-k<20 of 3/5/7/x>-e<20 of 3/4/6/x>', "
                f"e.g. {cls.largest().to_compact()!r}; got {text[:80]!r}"
            )
        r, d, ks, e = m.groups()
        d_t = tuple(int(c) for c in d)
        for name, s in (("k", ks), ("e", e)):
            for i, c in enumerate(s):
                active = i % MAX_DEPTH < d_t[i // MAX_DEPTH]
                if active and c == "x":
                    raise ValueError(f"config string: {name}[{i}] is 'x' but block {i} is active")
        def val(c: str, fallback: int) -> int:
            return fallback if c == "x" else int(c)
        return cls(
            tuple(val(c, KERNEL_CHOICES[0]) for c in ks),
            tuple(val(c, EXPAND_CHOICES[0]) for c in e),
            d_t,
            int(r),
        )

    @classmethod
    def parse(cls, value: Any) -> "SubnetConfig":
        """From a SubnetConfig, a dict, JSON text or the compact string."""
        if isinstance(value, SubnetConfig):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"config: invalid JSON ({exc.msg} at char {exc.pos})") from None
                return cls.from_dict(data)
            return cls.from_compact(text)
        raise ValueError(f"config: expected a dict, JSON text or compact string; got {type(value).__name__}")

    # ----- forms --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """OFA's dict form (``r`` as a one-element list, as OFA writes it)."""
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": [self.r]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_compact(self) -> str:
        """URL-safe string, e.g. ``r224-d44444-k777...-e666...``; skipped blocks are 'x'."""
        active = self.active_mask()
        k = "".join(str(v) if a else "x" for v, a in zip(self.ks, active))
        e = "".join(str(v) if a else "x" for v, a in zip(self.e, active))
        return f"r{self.r}-d{''.join(map(str, self.d))}-k{k}-e{e}"

    def __str__(self) -> str:
        return self.to_compact()

    def replace(self, **changes: Any) -> "SubnetConfig":
        data = {"ks": self.ks, "e": self.e, "d": self.d, "r": self.r}
        data.update(changes)
        return SubnetConfig(data["ks"], data["e"], data["d"], data["r"])

    # ----- structure ----------------------------------------------------
    def active_mask(self) -> tuple[bool, ...]:
        """For each of the 20 blocks, whether depth keeps it."""
        return tuple(i % MAX_DEPTH < self.d[i // MAX_DEPTH] for i in range(NUM_BLOCKS))

    def active_blocks(self) -> list[int]:
        return [i for i, a in enumerate(self.active_mask()) if a]

    def block_specs(self, width_mult: float = 1.2) -> list[BlockSpec]:
        """Shapes of every active elastic block at this config's resolution."""
        w = Widths.of(width_mult)
        size = _conv_out(self.r, 2)  # stem; the first block has stride 1
        in_ch = w.first_block
        specs: list[BlockSpec] = []
        for stage, spec in enumerate(STAGES):
            for j in range(self.d[stage]):
                i = stage * MAX_DEPTH + j
                stride = spec.stride if j == 0 else 1
                out_size = _conv_out(size, stride)
                specs.append(
                    BlockSpec(
                        index=i,
                        stage=stage,
                        in_channels=in_ch,
                        mid_channels=middle_channels(in_ch, self.e[i]),
                        out_channels=w.stages[stage],
                        kernel=self.ks[i],
                        expand=self.e[i],
                        stride=stride,
                        act=spec.act,
                        use_se=spec.use_se,
                        in_size=size,
                        out_size=out_size,
                    )
                )
                size = out_size
                in_ch = w.stages[stage]
        return specs


def all_configs_count() -> int:
    """Number of distinct networks (resolution excluded), counting skipped blocks once."""
    per_block = len(KERNEL_CHOICES) * len(EXPAND_CHOICES)
    per_stage = sum(per_block**d for d in DEPTH_CHOICES)
    return per_stage**NUM_STAGES


def iter_stage_values(values: Iterable[int]) -> list[list[int]]:
    """Split 20 per-block values into 5 lists of 4."""
    v = list(values)
    return [v[s * MAX_DEPTH : (s + 1) * MAX_DEPTH] for s in range(NUM_STAGES)]
