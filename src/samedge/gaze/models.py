"""Registry of the auxiliary models the gaze pipeline uses, and where to find them.

Each entry records the upstream download location, the sha256 of the file, its licence and
its input/output contract. :func:`resolve_aux_model` finds a file in this order:

1. an explicit path given by the user (the file, a folder that holds it, or an Open Model
   Zoo download tree ``<folder>/<name>/FP16/<name>.xml``);
2. the cache ``$SAMEDGE_HOME/gaze/<file>`` (filled by :func:`fetch_aux_model`).

Nothing else is searched: the test data under ``../shared/models`` is not a runtime location,
tests pass those paths explicitly.

The sha256 values are those of the copies the project verified (``sha256sum``); the notes
say where the upstream file was not confirmed byte-for-byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError
from ..hub import samedge_home

OMZ = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1"


@dataclass(frozen=True)
class AuxFile:
    """One file of an auxiliary model."""

    filename: str
    url: str
    sha256: str


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
        note: caveats about the upstream location.
    """

    name: str
    stage: str
    files: tuple[AuxFile, ...]
    licence: str
    runtime: str
    io: str
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
                    "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
                ),
            ),
            licence="Apache-2.0",
            runtime="onnx",
            io="images 1x3x416x416 BGR 0-255, letterbox pad 114 -> output 1x3549x85 "
            "(grid-relative xywh, objectness, 80 class scores)",
            note="The release asset's URL is confirmed, but third-party records give it "
            "3659407 bytes and sha256 c789161e...; the tested copy (3660092 bytes, the sha256 "
            "here) is a re-export with the same I/O, so a download from this URL fails the "
            "checksum until the value is updated from the release file.",
        ),
    )
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
        f"{model.files[0].url}) or pass its file path"
    )


def fetch_aux_model(name: str, progress: bool = True) -> Path:
    """Download every file of ``name`` into :func:`aux_cache_dir`, verifying sha256."""
    from ..hub import download, verify_file

    model = get_aux_model(name)
    for item in model.files:
        dest = aux_cache_dir() / item.filename
        if dest.is_file() and verify_file(dest, item.sha256):
            continue
        download(item.url, dest, item.sha256, progress=progress)
    return aux_cache_dir() / model.filename
