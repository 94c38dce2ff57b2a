"""Registry of the auxiliary models the gaze pipeline uses, and where to find them.

Each entry records the upstream download location, the sha256 of the file, its licence and
its input/output contract. :func:`resolve_aux_model` finds a file in this order:

1. an explicit path given by the user (the file, a folder that holds it, or an Open Model
   Zoo download tree ``<folder>/<name>/FP16/<name>.xml``);
2. the cache ``$SAMEDGE_HOME/gaze/<file>`` (filled by :func:`fetch_aux_model`).

Nothing else is searched: the test data under ``../shared/models`` is not a runtime location,
tests pass those paths explicitly.

Two checks, for two different questions:

* **Downloads** (:func:`fetch_aux_model`) must match the sha256 (and size) of the upstream
  file byte for byte: that is what proves the bytes came from where the registry says.
* **A file the user supplies** (or puts in the cache by hand) is used as given — a
  re-export, a quantised or an older build of the same network is a legitimate choice — but
  its inputs and outputs must match the registry's :class:`IOSignature` when it is loaded
  (:func:`check_io`), so a wrong file fails with one line instead of a shape error deep in a
  stage.

Where the copy the project tests with is not byte-identical to the upstream file, the entry
records both hashes (``AuxFile.tested_sha256``) and its note says where each comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArtifactError, ModelNotFoundError
from ..hub import samedge_home

if TYPE_CHECKING:
    from .backend import Network

OMZ = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1"


@dataclass(frozen=True)
class AuxFile:
    """One file of an auxiliary model.

    Attributes:
        filename: its name in the cache.
        url: the upstream download location.
        sha256: of the file at ``url``; a download must match it.
        size: bytes of the file at ``url``, or ``None`` when not recorded.
        tested_sha256: sha256 of the copy the project's tests use when that copy is not the
            upstream file (see the model's note); empty when they are the same bytes.
    """

    filename: str
    url: str
    sha256: str
    size: int | None = None
    tested_sha256: str = ""


Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class IOSignature:
    """The inputs and outputs a file must have to stand in for a registry model.

    Each entry is ``(name, shape)``. A name is given where the stage code binds that tensor
    by name; ``None`` means the stage takes it by position, so any name will do. In a shape,
    ``None`` is any size, and a dynamic dimension in the file matches any expected size.
    """

    inputs: tuple[tuple[str | None, Shape], ...]
    outputs: tuple[tuple[str | None, Shape], ...]

    def mismatch(
        self, inputs: dict[str, tuple[Any, ...]], outputs: dict[str, tuple[Any, ...]]
    ) -> str:
        """What differs between this signature and a file's ``inputs`` / ``outputs`` (name to
        shape, in the file's order); ``""`` when the file matches."""
        for kind, expected, actual in (
            ("input", self.inputs, inputs),
            ("output", self.outputs, outputs),
        ):
            if len(actual) != len(expected):
                return f"{len(actual)} {kind}(s), expected {len(expected)}"
            names = list(actual)
            for position, (name, shape) in enumerate(expected):
                key = names[position] if name is None else name
                if key not in actual:
                    return f"no {kind} named '{name}' (it has {', '.join(names)})"
                found = tuple(actual[key])
                if not _shape_matches(shape, found):
                    return f"{kind} '{key}' has shape {_show(found)}, expected {_show(shape)}"
        return ""


def _shape_matches(expected: Shape, found: tuple[Any, ...]) -> bool:
    if len(expected) != len(found):
        return False
    return all(
        e is None or not isinstance(f, int) or f < 0 or f == e
        for e, f in zip(expected, found, strict=True)
    )


def _show(shape: tuple[Any, ...]) -> str:
    return "x".join("?" if d is None or not isinstance(d, int) or d < 0 else str(d) for d in shape)


@dataclass(frozen=True)
class AuxModel:
    """An auxiliary (non-SAM) model: face detector, gaze network, object detector.

    Attributes:
        name: registry name, e.g. ``"yunet"``.
        stage: ``face``, ``gaze``, ``detect`` or ``depth``.
        files: the files to download; the first is the one to load (``.onnx`` or ``.xml``).
        licence: SPDX identifier of the upstream licence.
        runtime: ``onnx`` (ONNX Runtime or OpenVINO) or ``openvino`` (IR, OpenVINO only).
        io: the input/output contract in words.
        signature: the same contract as :func:`check_io` verifies it.
        note: caveats about the upstream location and the hashes.
    """

    name: str
    stage: str
    files: tuple[AuxFile, ...]
    licence: str
    runtime: str
    io: str
    signature: IOSignature
    note: str = ""

    @property
    def filename(self) -> str:
        return self.files[0].filename


def _omz(name: str, xml_sha: str, bin_sha: str) -> tuple[AuxFile, ...]:
    base = f"{OMZ}/{name}/FP16/{name}"
    return (
        AuxFile(f"{name}.xml", f"{base}.xml", xml_sha),
        AuxFile(f"{name}.bin", f"{base}.bin", bin_sha),
    )


_OMZ_NOTE = (
    "Open Model Zoo FP16 IR; URL follows the OMZ storage layout (2023.0 release). The sha256 "
    "is that of the copy the project tested; older OMZ releases serve the same network but "
    "possibly different bytes."
)

AUX_MODELS: dict[str, AuxModel] = {
    m.name: m
    for m in (
        AuxModel(
            name="yunet",
            stage="face",
            files=(
                AuxFile(
                    "yunet_n_640_640.onnx",
                    "https://github.com/ShiqiYu/libfacedetection.train/raw/master/onnx/"
                    "yunet_n_640_640.onnx",
                    "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31",
                ),
            ),
            licence="Apache-2.0",
            runtime="onnx",
            io="input 1x3x640x640 BGR 0-255 -> cls/obj/bbox/kps_{8,16,32} per stride",
            signature=IOSignature(
                inputs=(("input", (1, 3, None, None)),),
                outputs=tuple(
                    (f"{head}_{stride}", (1, None, width))
                    for head, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
                    for stride in (8, 16, 32)
                ),
            ),
            note="File path confirmed in ShiqiYu/libfacedetection.train (onnx/); the branch "
            "name in the URL (master) was not confirmed.",
        ),
        AuxModel(
            name="ultraface",
            stage="face",
            files=(
                AuxFile(
                    "version-RFB-320.onnx",
                    "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"
                    "raw/master/models/onnx/version-RFB-320.onnx",
                    "34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",
                ),
            ),
            licence="MIT",
            runtime="onnx",
            io="input 1x3x240x320 RGB (x-127)/128 -> scores 1x4420x2, boxes 1x4420x4 "
            "(normalised xyxy)",
            signature=IOSignature(
                inputs=((None, (1, 3, None, None)),),
                outputs=(("scores", (1, None, 2)), ("boxes", (1, None, 4))),
            ),
        ),
        AuxModel(
            name="landmarks-regression-retail-0009",
            stage="gaze",
            files=_omz(
                "landmarks-regression-retail-0009",
                "66697184c9f2ecc9bf75f0dce8c62a20efbfc41b696178ac95268ba7e610f118",
                "973b13e64b3576f754a690266b069438b531bc657233d09d7b382ca36e6cf1e4",
            ),
            licence="Apache-2.0",
            runtime="openvino",
            io="1x3x48x48 BGR face crop -> 1x10x1x1 five (x, y) landmarks in [0, 1]",
            signature=IOSignature(
                inputs=((None, (1, 3, 48, 48)),), outputs=((None, (1, 10, 1, 1)),)
            ),
            note=_OMZ_NOTE,
        ),
        AuxModel(
            name="head-pose-estimation-adas-0001",
            stage="gaze",
            files=_omz(
                "head-pose-estimation-adas-0001",
                "2f0f880b8623efcafd573181ce26dcbf561c9d3f16bfe02678f385071918a09a",
                "3616849b370b235e54b88798c053fc482cd5665faa569ee0c0d6435405d476be",
            ),
            licence="Apache-2.0",
            runtime="openvino",
            io="data 1x3x60x60 BGR face crop -> angle_y_fc, angle_p_fc, angle_r_fc (degrees)",
            signature=IOSignature(
                inputs=((None, (1, 3, 60, 60)),),
                outputs=tuple((n, (1, 1)) for n in ("angle_p_fc", "angle_r_fc", "angle_y_fc")),
            ),
            note=_OMZ_NOTE,
        ),
        AuxModel(
            name="gaze-estimation-adas-0002",
            stage="gaze",
            files=_omz(
                "gaze-estimation-adas-0002",
                "5d8b6ee437e2bf578a59c23b5cde6919482147678137b69d0ebce0df99a8ff37",
                "d525d095e8ba70dca20ca46d37ac586afc9f8808bbede3d380fdb7d030c16c7b",
            ),
            licence="Apache-2.0",
            runtime="openvino",
            io="left_eye_image, right_eye_image 1x3x60x60 BGR, head_pose_angles 1x3 "
            "(yaw, pitch, roll) -> gaze_vector 1x3 (not normalised)",
            signature=IOSignature(
                inputs=(
                    ("left_eye_image", (1, 3, 60, 60)),
                    ("right_eye_image", (1, 3, 60, 60)),
                    ("head_pose_angles", (1, 3)),
                ),
                outputs=((None, (1, 3)),),
            ),
            note=_OMZ_NOTE,
        ),
        AuxModel(
            name="yolox_nano",
            stage="detect",
            files=(
                AuxFile(
                    "yolox_nano.onnx",
                    "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"
                    "yolox_nano.onnx",
                    "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",
                    size=3_659_407,
                    tested_sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
                ),
            ),
            licence="Apache-2.0",
            runtime="onnx",
            io="images 1x3x416x416 BGR 0-255, letterbox pad 114 -> output 1x3549x85 "
            "(grid-relative xywh, objectness, 80 class scores)",
            # Any input name and size (YOLOX-Tiny/S exports work too); 85 = 4 box + 1 objectness
            # + the 80 COCO classes the detector names.
            signature=IOSignature(
                inputs=((None, (1, 3, None, None)),), outputs=((None, (1, None, 85)),)
            ),
            note="sha256 and size are those of the 0.1.1rc0 release asset as recorded, with "
            "the same 64 hex digits and 3659407 bytes, by several independent public projects "
            "that pin this URL (the project could not download it itself). The copy the tests "
            "use (3660092 bytes, tested_sha256) is a re-export of the same network with the "
            "same I/O: it is accepted as a file you pass, not as a download.",
        ),
    )
}


#: The ``samedge gaze`` / ``samedge web`` option that passes a stage's model file instead.
STAGE_OPTIONS = {
    "face": "--face-model",
    "gaze": "--gaze-models",
    "detect": "--detector",
    "depth": "--depth",
}


def aux_cache_dir() -> Path:
    """``$SAMEDGE_HOME/gaze``: where downloaded auxiliary models live."""
    return samedge_home() / "gaze"


def get_aux_model(name: str) -> AuxModel:
    try:
        return AUX_MODELS[name]
    except KeyError:
        known = ", ".join(AUX_MODELS)
        raise ModelNotFoundError(f"unknown auxiliary model '{name}': known are {known}") from None


def resolve_aux_model(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """The file to load for auxiliary model ``name`` (``.onnx`` or IR ``.xml``).

    An explicit file is not compared with the registry's sha256 (it may be a re-export or
    another build of the network); :func:`check_io` verifies its contract once it is loaded.

    Args:
        name: registry name (see :data:`AUX_MODELS`).
        path: an explicit file, or a folder holding the registry file name.

    Raises:
        ModelNotFoundError: neither the explicit path nor the cache has the file; the
            message names the download command and URL.
    """
    model = get_aux_model(name)
    if path is not None:
        given = Path(path).expanduser()
        if given.is_dir():
            # A folder holding the file, or an Open Model Zoo tree (<name>/FP16/<file>).
            candidates = [given / model.filename, given / name / "FP16" / model.filename]
            given = next((c for c in candidates if c.is_file()), candidates[0])
        if not given.is_file():
            raise ModelNotFoundError(f"{name}: {given} is not a file")
        return given
    cached = aux_cache_dir() / model.filename
    if cached.is_file():
        return cached
    raise ModelNotFoundError(
        f"{name} is not in {aux_cache_dir()}: run 'samedge gaze --fetch-models' (downloads "
        f"{model.files[0].url}) or pass its file with {STAGE_OPTIONS[model.stage]} PATH"
    )


def check_io(name: str, network: Network) -> None:
    """Raise unless ``network``'s inputs and outputs match ``name``'s :class:`IOSignature`.

    Raises:
        ArtifactError: one line naming the file, what differs and the expected contract.
    """
    model = get_aux_model(name)
    problem = model.signature.mismatch(network.inputs, network.output_shapes)
    if problem:
        raise ArtifactError(
            f"{network.path.name} is not a {name} model: {problem} ({name}: {model.io})"
        )


def fetch_aux_model(name: str, progress: bool = True, mirror: str | None = None) -> Path:
    """Download every file of ``name`` into :func:`aux_cache_dir`, verifying sha256 and size.

    A file already in the cache with the upstream sha256 is kept; any other is replaced.

    Args:
        mirror: download ``<mirror>/<file name>`` instead of the upstream URL; the bytes must
            still be the upstream file's.

    Raises:
        DownloadError, ChecksumError: see :func:`samedge.hub.download` (nothing is left
            under the final name).
    """
    from ..hub import download, verify_file

    model = get_aux_model(name)

    def offline_hint(url: str, dest: Path) -> str:
        return (
            f"if this machine is offline, download {url} elsewhere and copy it to "
            f"{dest.parent}, or pass the file to samedge gaze with "
            f"{STAGE_OPTIONS[model.stage]} PATH (face detector: --face-model, gaze models: "
            f"--gaze-models, object detector: --detector)"
        )

    for item in model.files:
        dest = aux_cache_dir() / item.filename
        if dest.is_file() and verify_file(dest, item.sha256):
            continue
        url = item.url if mirror is None else f"{mirror.rstrip('/')}/{item.filename}"
        download(url, dest, item.sha256, item.size, progress=progress, offline_hint=offline_hint)
    return aux_cache_dir() / model.filename
