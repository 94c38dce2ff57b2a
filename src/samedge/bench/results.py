"""Typed benchmark results, serialised to the ``samedge-bench/1`` JSON layout.

Every class has ``to_dict()`` (the JSON object written by ``samedge bench --json``, key for
key) and ``from_dict()`` (its inverse, so a saved result can be read back and re-rendered).
Figures derived from other fields (``peak_rss_mib``, the ratios' ``meaning``) are written by
``to_dict()`` and recomputed, not stored. See ``docs/benchmarks.md`` for the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

SCHEMA = "samedge-bench/1"

_R = TypeVar("_R", bound="_Record")


class _Record:
    """``to_dict`` / ``from_dict`` for a dataclass whose JSON object is its fields, in order."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[_R], data: Mapping[str, Any]) -> _R:
        """The inverse of :meth:`to_dict`.

        Raises:
            KeyError: a field is missing.
            ValueError: the values are inconsistent.
        """
        return cls(**{f.name: data[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class StageStats(_Record):
    """One stage's timing summary in ms, rounded to µs (the ``stages_ms`` entries).

    ``p90`` is the 90th percentile with linear interpolation (NumPy's default).
    """

    count: int
    min: float
    median: float
    mean: float
    p90: float
    max: float

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a stage summary needs at least one sample, got count {self.count}")
        if self.min > self.max:
            raise ValueError(f"stage summary min {self.min} exceeds max {self.max}")


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 3 decimals; ``None`` when either is missing or ``b`` is 0."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _stages_from(data: Mapping[str, Any]) -> dict[str, StageStats]:
    return {stage: StageStats.from_dict(s) for stage, s in data.items()}


def _stages_to(stages: Mapping[str, StageStats]) -> dict[str, dict[str, float | int]]:
    return {stage: s.to_dict() for stage, s in stages.items()}


@dataclass(frozen=True)
class SideResult:
    """One side's measurements (``sides.samedge``, ``sides.official``).

    ``details``: what the worker reported beyond the common fields (the official side's
    ``torch_threads`` and ``weights``), written between ``package`` and ``peak_rss_bytes``.
    """

    import_s: float
    load_s: float
    warmup_s: float
    rss_after_load_bytes: int | None
    providers: dict[str, str]
    package: str
    peak_rss_bytes: int
    stages_ms: dict[str, StageStats]
    per_repeat_median_ms: dict[str, list[float]]
    details: dict[str, Any] = field(default_factory=dict)

    #: What every worker reports after loading, in the JSON's order.
    WORKER_FIELDS: ClassVar[tuple[str, ...]] = (
        "import_s",
        "load_s",
        "warmup_s",
        "rss_after_load_bytes",
        "providers",
        "package",
    )
    _MEASURED: ClassVar[tuple[str, ...]] = (
        "peak_rss_bytes",
        "peak_rss_mib",
        "stages_ms",
        "per_repeat_median_ms",
    )

    @property
    def peak_rss_mib(self) -> float:
        return round(self.peak_rss_bytes / 2**20, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{key: getattr(self, key) for key in self.WORKER_FIELDS},
            **self.details,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_rss_mib": self.peak_rss_mib,
            "stages_ms": _stages_to(self.stages_ms),
            "per_repeat_median_ms": {s: list(v) for s, v in self.per_repeat_median_ms.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SideResult:
        known = set(cls.WORKER_FIELDS) | set(cls._MEASURED)
        return cls(
            **{key: data[key] for key in cls.WORKER_FIELDS},
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            stages_ms=_stages_from(data["stages_ms"]),
            per_repeat_median_ms={s: list(v) for s, v in data["per_repeat_median_ms"].items()},
            details={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Ratios:
    """samedge / official from the same run (``ratios``): below 1, samedge is faster or
    smaller."""

    stages_median: dict[str, float | None]
    stages_mean: dict[str, float | None]
    peak_rss: float | None
    load: float | None

    MEANING: ClassVar[str] = "samedge / official: below 1 means samedge is faster or smaller"

    @classmethod
    def between(cls, ours: SideResult, theirs: SideResult, stages: tuple[str, ...]) -> Ratios:
        return cls(
            stages_median={
                s: ratio(ours.stages_ms[s].median, theirs.stages_ms[s].median) for s in stages
            },
            stages_mean={
                s: ratio(ours.stages_ms[s].mean, theirs.stages_ms[s].mean) for s in stages
            },
            peak_rss=ratio(ours.peak_rss_bytes, theirs.peak_rss_bytes),
            load=ratio(ours.load_s, theirs.load_s),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages_median": dict(self.stages_median),
            "stages_mean": dict(self.stages_mean),
            "peak_rss": self.peak_rss,
            "load": self.load,
            "meaning": self.MEANING,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ratios:
        return cls(
            stages_median=dict(data["stages_median"]),
            stages_mean=dict(data["stages_mean"]),
            peak_rss=data["peak_rss"],
            load=data["load"],
        )


@dataclass(frozen=True)
class DecoderFlops(_Record):
    """The official decoder's arithmetic, counted in its own process
    (``compute.official_decoder``)."""

    decoder_gflop_per_prompt: float
    decoder_gflop_by_kind: dict[str, float]
    counted: str


@dataclass(frozen=True)
class Compute:
    """FLOP counts, the measured GEMM peak and the compute floors (``compute``).

    Every field is optional: ``--no-floors`` leaves only ``note``, a missing ``onnx`` package
    leaves the GEMM peak without FLOPs or floors. ``None`` and empty fields are not written.
    """

    note: str | None = None
    encoder_gflop: float | None = None
    decoder_gflop_per_prompt: float | None = None
    decoder_gflop_by_kind: dict[str, float] = field(default_factory=dict)
    counted: str | None = None
    official_decoder: DecoderFlops | None = None
    gemm_peak_gflops: float | None = None
    gemm_peak_samples_gflops: list[float] = field(default_factory=list)
    gemm_threads: int | None = None
    gemm: str | None = None
    #: Floors in ms by stage (``encoder``, ``decoder``, ``click``, ``official_decoder``).
    floor_ms: dict[str, float] = field(default_factory=dict)

    def floor(self, stage: str) -> float | None:
        return self.floor_ms.get(stage)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == {} or value == []:
                continue
            out[f.name] = value.to_dict() if isinstance(value, DecoderFlops) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Compute:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise KeyError(f"compute.{sorted(unknown)[0]}")
        values = dict(data)
        if "official_decoder" in values:
            values["official_decoder"] = DecoderFlops.from_dict(values["official_decoder"])
        return cls(**values)


@dataclass(frozen=True)
class ImportTimes(_Record):
    """Cold ``import samedge`` and ``import samedge`` + ``from_pretrained`` in fresh processes
    (``import``; the best of the samples is kept)."""

    cold_import_s: float
    cold_import_samples_s: list[float]
    import_and_load_s: float
    import_and_load_samples_s: list[float]

    NOTE: ClassVar[str] = "fresh process each; load includes sha256 verification of the model files"

    @classmethod
    def best_of(cls, cold: list[float], load: list[float]) -> ImportTimes:
        return cls(
            cold_import_s=round(min(cold), 4),
            cold_import_samples_s=[round(v, 4) for v in cold],
            import_and_load_s=round(min(load), 4),
            import_and_load_samples_s=[round(v, 4) for v in load],
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "note": self.NOTE}


@dataclass(frozen=True)
class PrecisionRow(_Record):
    """One model folder's row of the precision comparison (``precision``).

    ``speedup_median``: the first (baseline) model's median over this one's, per stage (above
    1: faster). ``quantization`` and ``fidelity``: records copied from the folder's manifest
    (``None`` for a folder without them, such as the fp32 export).
    """

    label: str
    model_folder: str
    precision: dict[str, str]
    quantization: dict[str, Any] | None
    fidelity: dict[str, Any] | None
    providers: dict[str, str]
    load_s: float
    peak_rss_mib: float
    stages_ms: dict[str, StageStats]
    speedup_median: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "stages_ms": _stages_to(self.stages_ms)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrecisionRow:
        return replace(super().from_dict(data), stages_ms=_stages_from(data["stages_ms"]))


@dataclass(frozen=True)
class RunSetup(_Record):
    """What ran (``config``): model, precisions, weights, provider, threads, images with
    their sizes, runs, repeats, prompts, seed and the order of the alternation."""

    model: str
    model_folder: str
    precision: dict[str, str]
    weights: dict[str, Any]
    provider_requested: str
    provider_settings: dict[str, Any]
    threads: int
    runs: int
    repeats: int
    prompts_per_image: int
    seed: int
    compare_torch: bool
    #: ``{"model_folder", "precision"}`` of each other precision (``--model`` after the first).
    variants: list[dict[str, Any]]
    #: ``{"name", "path", "height", "width"}`` of each image.
    images: list[dict[str, Any]]
    prompt_kinds: list[str]
    order: str
    #: Side of the encoder's square input in pixels (``ModelSpec.image_size``: another than
    #: the registry's for ``samedge export --image-size``); ``None`` in files from before it,
    #: which is written back as no key.
    image_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data["image_size"] is None:
            del data["image_size"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSetup:
        return super().from_dict({"image_size": None, **data})


#: The figures computed for every run (``figures``): ratios and times that targets are
#: stated against; ``None`` where the run did not measure what a figure needs.
FIGURES = {
    "encoder_vs_official_set_image": "samedge encoder median / official set_image median",
    "encoder_vs_floor": "samedge encoder median / the encoder's compute floor",
    "click_vs_official": "samedge click median / official click median",
    "click_vs_floor": "samedge click median / samedge's decoder graph's compute floor",
    "click_vs_official_decoder_floor": "samedge click median / the official decoder's "
    "compute floor (its FLOPs counted in the official process)",
    "peak_rss_vs_official": "samedge peak RSS / official peak RSS",
    "import_and_load_s": "import samedge + Predictor.from_pretrained in a fresh process, s",
}


def measure_figures(
    ours: SideResult, official: SideResult | None, compute: Compute, imports: ImportTimes
) -> dict[str, float | None]:
    """The :data:`FIGURES` of a run, in that order."""
    encoder, click = ours.stages_ms["encoder"].median, ours.stages_ms["click"].median
    values = {
        "encoder_vs_official_set_image": ratio(
            encoder, official.stages_ms["set_image"].median if official else None
        ),
        "encoder_vs_floor": ratio(encoder, compute.floor("encoder")),
        "click_vs_official": ratio(click, official.stages_ms["click"].median if official else None),
        "click_vs_floor": ratio(click, compute.floor("click")),
        "click_vs_official_decoder_floor": ratio(click, compute.floor("official_decoder")),
        "peak_rss_vs_official": ratio(
            ours.peak_rss_bytes, official.peak_rss_bytes if official else None
        ),
        "import_and_load_s": imports.import_and_load_s,
    }
    return {name: values[name] for name in FIGURES}


@dataclass(frozen=True)
class TargetCheck:
    """One figure against its limit from a targets file (``met``: ``value <= limit``, ``None``
    when the figure was not measured)."""

    value: float | None
    limit: float
    met: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "limit": self.limit, "met": self.met}


@dataclass(frozen=True)
class GroupCheck:
    """A group of figures of which any one within its limit is enough (``met``: ``None``
    when none is met and some were not measured)."""

    met: bool | None
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "rule": self.rule}


def _check_from(data: Mapping[str, Any]) -> TargetCheck | GroupCheck:
    if "limit" in data:
        return TargetCheck(value=data["value"], limit=data["limit"], met=data["met"])
    return GroupCheck(met=data["met"], rule=data["rule"])


@dataclass(frozen=True)
class BenchResult:
    """A whole ``samedge bench`` run, as written by ``--json``.

    ``imports`` is the JSON's ``import``. ``ratios`` is ``None`` without ``--compare-torch``
    (written as ``{}``). ``targets`` stays empty unless a targets file was checked
    (``samedge bench --targets FILE``); ``figures`` are always computed.
    """

    created: str
    samedge_version: str
    command: str
    config: RunSetup
    #: Machine and library facts from :func:`samedge.bench.sysinfo.system_info`, with the
    #: load averages and the providers used added by the run.
    system: dict[str, Any]
    compute: Compute
    imports: ImportTimes
    sides: dict[str, SideResult]
    ratios: Ratios | None
    precision: list[PrecisionRow]
    figures: dict[str, float | None]
    targets: dict[str, TargetCheck | GroupCheck] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def ours(self) -> SideResult:
        return self.sides["samedge"]

    @property
    def official(self) -> SideResult | None:
        return self.sides.get("official")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "created": self.created,
            "samedge_version": self.samedge_version,
            "command": self.command,
            "config": self.config.to_dict(),
            "system": self.system,
            "compute": self.compute.to_dict(),
            "import": self.imports.to_dict(),
            "sides": {name: side.to_dict() for name, side in self.sides.items()},
            "ratios": self.ratios.to_dict() if self.ratios else {},
            "precision": [row.to_dict() for row in self.precision],
            "figures": dict(self.figures),
            "targets": {name: check.to_dict() for name, check in self.targets.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchResult:
        """Read a result written by :meth:`to_dict` (``samedge bench --json``).

        Results written before ``figures`` existed read with the values of their
        ``targets`` entries as figures.

        Raises:
            ValueError: not a ``samedge-bench/1`` result, or a field is missing or malformed;
                the message names the field.
        """
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result")
        try:
            targets = {name: _check_from(t) for name, t in data["targets"].items()}
            figures = data.get("figures")
            if figures is None:
                figures = {
                    name: t.value for name, t in targets.items() if isinstance(t, TargetCheck)
                }
            return cls(
                created=data["created"],
                samedge_version=data["samedge_version"],
                command=data["command"],
                config=RunSetup.from_dict(data["config"]),
                system=dict(data["system"]),
                compute=Compute.from_dict(data["compute"]),
                imports=ImportTimes.from_dict(data["import"]),
                sides={name: SideResult.from_dict(s) for name, s in data["sides"].items()},
                ratios=Ratios.from_dict(data["ratios"]) if data["ratios"] else None,
                precision=[PrecisionRow.from_dict(row) for row in data["precision"]],
                figures=dict(figures),
                targets=targets,
            )
        except KeyError as exc:
            raise ValueError(f"{SCHEMA} result without field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed {SCHEMA} result: {exc}") from None
