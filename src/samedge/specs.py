"""Torch-free model specifications.

A :class:`ModelSpec` is the single source of truth about one model: where its official
checkpoint lives, how images are resized and normalised for it, the names and shapes of its
ONNX inputs and outputs, and how its decoder output is turned into masks. Every entry point
(predictor, CLI, exporter, benchmarks, evaluation, web UI) reads these fields instead of
testing model names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

ResizeRule = Literal["longest_side_pad", "stretch"]
Family = Literal["sam", "sam2", "mobile_sam", "efficientvit_sam", "efficientsam"]
#: How segment everything removes small disconnected regions and holes (see
#: :mod:`samedge.amg.regions`): ``"full_res"`` (SAM: on the final full-resolution masks,
#: then NMS again preferring unchanged masks) or ``"low_res"`` (SAM 2: fill them in the
#: 256 x 256 logits before upscaling).
SmallRegionRule = Literal["full_res", "low_res"]
#: How the low-res logits are interpolated to the original size: ``"bilinear"`` (SAM,
#: SAM 2) or ``"bicubic"`` (EfficientSAM's example: ``F.interpolate(..., mode="bicubic")``).
MaskUpscale = Literal["bilinear", "bicubic"]

# ONNX tensor names shared by every exported model. The runtime binds inputs by these names.
ENCODER_INPUT = "image"
IMAGE_EMBEDDINGS = "image_embeddings"
HIGH_RES_FEATS = ("high_res_feats_0", "high_res_feats_1")
POINT_COORDS = "point_coords"
POINT_LABELS = "point_labels"
MASK_INPUT = "mask_input"
HAS_MASK_INPUT = "has_mask_input"
LOW_RES_MASKS = "low_res_masks"
IOU_PREDICTIONS = "iou_predictions"
OBJECT_SCORE_LOGITS = "object_score_logits"
# The decoder's per-image context (see samedge.export.wrappers.DecoderContext).
CONTEXT = ("ctx_keys", "ctx_keys_pe", "ctx_k_t", "ctx_v")
CONTEXT_HIGH_RES = ("ctx_feat_s1", "ctx_feat_s0")

#: Outputs of the decoder head graph that the upscaler graph takes (see
#: samedge.export.wrappers.DecoderHead): the image side after the transformer, and the
#: hypernetworks' mask vectors.
HEAD_IMAGE_SIDE = "head_image_side"
HEAD_MASK_VECTORS = "head_mask_vectors"


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint: where to download it and how to recognise it.

    Attributes:
        url: the authors' download location.
        sha256: the file's sha256 where the authors (or a byte-identical source) publish
            one; ``None`` where nobody does: a download is then checked by its size only,
            and ``samedge models list`` says so.
        size_bytes: the file's size in bytes; ``None`` where neither the authors nor a
            source that can be named state it (with no sha256 either, a download is then
            only checked against the server's Content-Length, and the exporter's strict
            ``weights_only`` load is what recognises the file).
    """

    url: str
    sha256: str | None
    size_bytes: int | None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class AmgDefaults:
    """The defaults of a family's official automatic mask generator that may differ between
    families (``SamAutomaticMaskGenerator``, ``SAM2AutomaticMaskGenerator``).

    Settings every official generator defaults alike (crop layers, output mode, ...) live in
    :class:`samedge.amg.AmgSettings` only.

    Attributes:
        points_per_side: grid points per side of the whole-image crop.
        points_per_batch: point prompts per decoder call.
        pred_iou_thresh: keep masks whose predicted IoU is above this.
        stability_score_thresh: keep masks whose stability score is at least this.
        stability_score_offset: logit offset of the stability score.
        box_nms_thresh: box IoU above which a mask duplicates a better one in a crop.
        crop_nms_thresh: box IoU above which a mask duplicates one from a smaller crop.
        crop_overlap_ratio: overlap of neighbouring crops, as a fraction of the short side.
        generator: the official generator these defaults are from (``None``: the family
            publishes none, and SAM's ``SamAutomaticMaskGenerator`` defaults are used).
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    generator: str | None = "SamAutomaticMaskGenerator"


# ONNX tensor names of the video tracking graphs (see samedge.export.video).
MEMORY_FEATURES = "memory_features"
MEMORY_TPOS = "memory_tpos"
OBJ_PTRS = "obj_ptrs"
OBJ_PTR_TPOS = "obj_ptr_tpos"
CONDITIONED_EMBEDDINGS = "conditioned_embeddings"
PIX_FEAT = "pix_feat"
MASK_LOGITS = "mask_logits"
BINARIZE = "binarize"
MASK_PROMPT = "mask"
OBJ_PTR = "obj_ptr"


@dataclass(frozen=True)
class VideoSpec:
    """SAM 2's video tracker: its graphs' names and the official settings of its memory.

    Every setting below is the official model's (the Hydra config of the model, with the
    options ``build_sam2_video_predictor`` adds: ``binarize_mask_from_pts_for_mem_enc``,
    ``fill_hole_area``); the exporter checks them against the official
    ``SAM2VideoPredictor`` it builds, so a config that differs cannot be exported silently.

    Attributes:
        num_maskmem: memories per frame's attention: the conditioning frames' plus up to
            ``num_maskmem - 1`` recent other frames', each with its temporal encoding.
        max_obj_ptrs: object pointers per frame's attention (at most).
        mem_dim: channels of a memory token (a 256-channel pointer is 4 such tokens).
        memory_temporal_stride: ``memory_temporal_stride_for_eval`` (1: consecutive frames).
        max_cond_frames_in_attn: conditioning frames attended to (-1: all of them).
        add_tpos_enc_to_obj_ptrs, proj_tpos_enc_in_obj_ptrs, use_signed_tpos_enc_to_obj_ptrs,
        only_obj_ptrs_in_the_past_for_eval: how object pointers are encoded and chosen
            (SAM 2.1's values differ from SAM 2.0's).
        multimask_output_in_sam, multimask_output_for_tracking, multimask_min_pt_num,
        multimask_max_pt_num, use_multimask_token_for_obj_ptr: when the decoder's three
            masks are used and which token gives the object pointer.
        use_mask_input_as_output_without_sam: a mask prompt is the output as it is.
        binarize_mask_from_pts_for_mem_enc: prompted frames are memorised as hard masks.
        fill_hole_area: holes (background regions of the 256 x 256 mask) up to this many
            pixels are filled in each output (0: none).
        add_all_frames_to_correct_as_cond: a corrected frame becomes a conditioning frame.
        clear_non_cond_mem_around_input: a correction clears nearby memories.
        non_overlap_masks: objects' outputs are made disjoint.
    """

    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    mem_dim: int = 64
    memory_temporal_stride: int = 1
    max_cond_frames_in_attn: int = -1
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = True
    use_mask_input_as_output_without_sam: bool = True
    binarize_mask_from_pts_for_mem_enc: bool = True
    fill_hole_area: int = 8
    add_all_frames_to_correct_as_cond: bool = False
    clear_non_cond_mem_around_input: bool = False
    non_overlap_masks: bool = False

    #: File roles of the video graphs (beside the image graphs of the same folder).
    roles: tuple[str, ...] = (
        "memory_attention",
        "memory_encoder",
        "track_decoder",
        "track_decoder_mask",
        "mask_prompt",
    )

    def graph_io(self, spec: ModelSpec) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """``{role: (inputs, outputs)}`` of the video graphs of ``spec``'s export."""
        high_res = HIGH_RES_FEATS[: len(spec.high_res_shapes)]
        track_in = (PIX_FEAT, *high_res, POINT_COORDS, POINT_LABELS)
        track_out = (LOW_RES_MASKS, IOU_PREDICTIONS, OBJECT_SCORE_LOGITS, OBJ_PTRS)
        return {
            "memory_attention": (
                (IMAGE_EMBEDDINGS, MEMORY_FEATURES, MEMORY_TPOS, OBJ_PTRS, OBJ_PTR_TPOS),
                (CONDITIONED_EMBEDDINGS,),
            ),
            "memory_encoder": (
                (IMAGE_EMBEDDINGS, MASK_LOGITS, BINARIZE, OBJECT_SCORE_LOGITS),
                (MEMORY_FEATURES,),
            ),
            "track_decoder": (track_in, track_out),
            "track_decoder_mask": ((*track_in, MASK_INPUT, HAS_MASK_INPUT), track_out),
            "mask_prompt": ((IMAGE_EMBEDDINGS, MASK_PROMPT), (OBJ_PTR,)),
        }


@dataclass(frozen=True)
class ModelSpec:
    """Everything samedge needs to know about one model, without importing torch.

    Attributes:
        name: registry name, e.g. ``"sam_vit_b"``.
        family: ``"sam"`` (Segment Anything 1), ``"sam2"`` (SAM 2.x), ``"mobile_sam"``
            (MobileSAM: SAM's prompt encoder, mask decoder and preprocessing behind a
            TinyViT image encoder), ``"efficientvit_sam"`` (EfficientViT-SAM: the same
            behind an EfficientViT encoder, at 512 pixels for L0-L2) or ``"efficientsam"``
            (EfficientSAM: a ViT encoder; points only, at most 6, and its own decoder
            details, see :mod:`samedge.export.efficientsam`).
        title: human-readable name.
        checkpoint: official weights (URL, sha256, size).
        licence: licence of the weights and code (SPDX identifier).
        image_size: side of the square encoder input, in pixels.
        resize: ``"longest_side_pad"`` (SAM: longest side to ``image_size``, bilinear on
            uint8, then zero-padding of the normalised image at the bottom and right) or
            ``"stretch"`` (SAM 2: both sides to ``image_size``, antialiased bilinear on float).
        pixel_mean, pixel_std: per-channel RGB normalisation in [0, 1] units.
        embedding_shape: ``(C, H, W)`` of the image embedding.
        high_res_shapes: ``(C, H, W)`` of each extra high-resolution feature map (SAM 2).
        pad_point: when the decoder gets an extra "not a point" token: ``"no_box"`` (SAM: only
            when the prompt has no box) or ``"always"`` (SAM 2).
        box_first: box corners precede the points in the prompt sequence (SAM 2) or follow
            them (SAM).
        low_res_clamp: the official predictor clamps returned low-res logits to
            ``[-clamp, clamp]`` (SAM 2: 32); ``None`` leaves them as they are.
        stability_delta, stability_thresh: SAM 2's single-mask fallback: when the single-mask
            output's stability score at +-delta is below thresh, the best of the three
            multimask outputs is returned instead. ``None`` disables it (SAM).
        official_builder: how the exporter builds the model with the official package
            (SAM, MobileSAM: key of the package's ``sam_model_registry``; SAM 2: Hydra
            config name).
        reference_package: import name of the official PyTorch package
            (``"segment_anything"``, ``"sam2"``, ``"mobile_sam"``): what export,
            ``bench --compare-torch`` and
            ``eval --against torch`` need installed.
        prompt_frame: side of the square frame the decoder's prompts and low-res masks
            refer to, in pixels; ``None``: the encoder input's (``image_size``). Differs
            for models whose encoder runs at a smaller size than their prompt encoder
            (EfficientViT-SAM L0-L2: 512-pixel encoder input, SAM's 1024-pixel prompt
            frame): prompts are mapped to, and low-res masks upscaled through, this frame
            (see :attr:`prompt_size`).
        reference_source: where the official code comes from when no package publishes
            it (EfficientSAM: its repository at a commit); ``None`` where
            ``reference_package`` is installable with samedge's ``export`` extra. Set, the
            exporter builds the network in samedge's own code, and only the comparisons
            with the official code (tests, ``bench --compare-torch``) need it importable.
        mask_prompt: the decoder takes a mask prompt (a previous prediction's low-res
            logits). ``False`` (EfficientSAM): the export has no ``decoder_mask`` graph and
            ``predict(mask_input=...)`` raises :class:`samedge.errors.PromptError`.
        max_points: points (box corners included) the decoder sees per prompt set, where it
            takes a fixed number (EfficientSAM: 6, padded or cut inside the graph as the
            official model does); longer prompts raise :class:`samedge.errors.PromptError`
            instead of being cut. ``None``: any number.
        mask_upscale: see :data:`MaskUpscale`.
        resize_antialias: ``resize="stretch"`` filters antialiased (SAM 2's torchvision
            ``Resize``) or not (EfficientSAM: ``F.interpolate(..., mode="bilinear")``, which
            samples the 2 x 2 nearest pixels even when shrinking).
        amg: the official automatic mask generator's defaults.
        small_regions: how segment everything removes small regions (see
            :data:`SmallRegionRule`).
        encoder_gflops, decoder_gflops: measured cost of one encoder call and of one
            decoder call per prompt set (used for compute-floor figures).
        int8_ops: operator types static INT8 quantises by default (``samedge quantize
            --precision int8-static``; ``--int8-ops`` overrides): those holding the model's
            weight products. SAM's ViTs: ``("MatMul", "Gemm")`` (their convolutions cost
            fidelity for little time); EfficientViT-SAM writes its linear layers as 1 x 1
            convolutions, so ``Conv`` too.
        int8_ops_openvino: the encoder's default when it runs on OpenVINO (``--provider
            openvino``), where it differs; ``None``: :attr:`int8_ops`. (The decoders always
            run on ONNX Runtime, with :attr:`int8_ops`.)
            OpenVINO runs a quantised convolution with the element-wise work after it fused
            in, where ONNX Runtime leaves that work behind a dequantisation: MobileSAM's
            encoder with its convolutions in INT8 is 1.65x its fp32 on OpenVINO and 0.85x
            on ONNX Runtime (docs/precision.md).
        int8_attention_openvino: on OpenVINO, static INT8 quantises the encoder's attention
            too (its products of two activations, with symmetric int8 activations), which
            OpenVINO runs as one integer attention kernel on CPUs with VNNI or AMX (without
            them the default stays off; ``samedge quantize --[no-]int8-attention``
            overrides). On for the softmax-attention ViTs, measured
            on OpenVINO against fp32 (docs/precision.md): EfficientSAM-Ti 2.4-2.65x (1.15x with
            the linear layers alone), SAM 2.1 tiny 2.41x (1.51x), SAM ViT-B 2.84x (1.93x),
            each at mean IoU >= 0.986 against fp32. Off for MobileSAM (49-token windows with
            a position bias: mean IoU 0.78) and EfficientViT-SAM (ReLU linear attention:
            0.91), on random weights.
        video: the video tracker (SAM 2.1); ``None`` for models that cannot track, whose
            exports have no video graphs.
    """

    name: str
    family: Family
    title: str
    checkpoint: Checkpoint
    licence: str
    official_builder: str
    image_size: int = 1024
    resize: ResizeRule = "longest_side_pad"
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    embedding_shape: tuple[int, int, int] = (256, 64, 64)
    high_res_shapes: tuple[tuple[int, int, int], ...] = ()
    pad_point: Literal["no_box", "always"] = "no_box"
    box_first: bool = False
    low_res_clamp: float | None = None
    stability_delta: float | None = None
    stability_thresh: float | None = None
    mask_threshold: float = 0.0
    num_mask_tokens: int = 4
    has_object_score: bool = False
    encoder_gflops: float | None = None
    decoder_gflops: float | None = None
    reference_package: str = "segment_anything"
    prompt_frame: int | None = None
    reference_source: str | None = None
    mask_prompt: bool = True
    max_points: int | None = None
    mask_upscale: MaskUpscale = "bilinear"
    resize_antialias: bool = True
    amg: AmgDefaults = AmgDefaults()
    small_regions: SmallRegionRule = "full_res"
    int8_ops: tuple[str, ...] = ("MatMul", "Gemm")
    int8_ops_openvino: tuple[str, ...] | None = None
    int8_attention_openvino: bool = False
    video: VideoSpec | None = None

    def int8_ops_for(self, runtime: str) -> tuple[str, ...]:
        """Default static INT8 operators for the runtime that runs the encoder:
        ``"openvino"`` (OpenVINO's own runtime or ONNX Runtime's OpenVINO provider) or
        anything else (ONNX Runtime's kernels)."""
        if runtime == "openvino" and self.int8_ops_openvino is not None:
            return self.int8_ops_openvino
        return self.int8_ops

    def int8_attention_for(self, runtime: str) -> bool:
        """Whether static INT8 quantises the encoder's attention by default on ``runtime``
        (see :attr:`int8_attention_openvino`)."""
        return runtime == "openvino" and self.int8_attention_openvino

    @property
    def prompt_size(self) -> int:
        """Side of the square frame of prompt coordinates and low-res masks, in pixels:
        :attr:`prompt_frame` where set, else the encoder input's :attr:`image_size`."""
        return self.prompt_frame or self.image_size

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's square low-resolution mask logits (and of a mask prompt):
        4x the embedding grid, 256 for every registered model."""
        return 4 * self.embedding_shape[-1]

    def at_image_size(self, size: int) -> ModelSpec:
        """This SAM 2 model with its encoder input at ``size`` x ``size`` pixels (the official
        config's ``image_size``; Hiera interpolates its position embedding and the memory
        attention recomputes its RoPE tables for the smaller grid): the embedding grid is
        ``size / 16``, the high-res features and the low-res logits scale with it.

        The official weights are trained at 1024 pixels: a smaller input is faster
        (``samedge export --image-size``) at an accuracy cost samedge cannot measure without
        them; samedge's own tests use it for the same arithmetic at a fraction of the cost, on
        both sides of a parity comparison. An export records the size in its manifest
        (``extra.image_size``).

        Raises:
            ValueError: not a SAM 2 model, or ``size`` is not a positive multiple of 32.
        """
        if self.family != "sam2" or self.prompt_frame is not None:
            raise ValueError(f"{self.name}: only SAM 2 models take another input size")
        if size <= 0 or size % 32:
            raise ValueError(f"image size must be a positive multiple of 32, got {size}")
        if size == self.image_size:
            return self

        def scaled(shape: tuple[int, int, int]) -> tuple[int, int, int]:
            c, h, w = shape
            return (c, h * size // self.image_size, w * size // self.image_size)

        return replace(
            self,
            image_size=size,
            embedding_shape=scaled(self.embedding_shape),
            high_res_shapes=tuple(scaled(s) for s in self.high_res_shapes),
            encoder_gflops=None,
            decoder_gflops=None,
        )

    @property
    def encoder_inputs(self) -> tuple[str, ...]:
        return (ENCODER_INPUT,)

    @property
    def encoder_outputs(self) -> tuple[str, ...]:
        return (IMAGE_EMBEDDINGS, *HIGH_RES_FEATS[: len(self.high_res_shapes)])

    @property
    def context_inputs(self) -> tuple[str, ...]:
        """The context graph runs once per image on the encoder's outputs."""
        return self.encoder_outputs

    @property
    def context_outputs(self) -> tuple[str, ...]:
        return (*CONTEXT, *CONTEXT_HIGH_RES[: len(self.high_res_shapes)])

    @property
    def context_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of :attr:`context_outputs` (the SAM decoders' cross-attention has 8 heads
        over ``C / 2`` channels)."""
        c, h, w = self.embedding_shape
        hw, heads = h * w, 8
        d = c // 2 // heads
        shapes: tuple[tuple[int, ...], ...] = ((1, hw, c), (1, hw, c), (1, heads, d, hw))
        shapes += ((1, heads, hw, d),)
        if self.high_res_shapes:
            (c0, _, _), (c1, _, _) = self.high_res_shapes
            shapes += ((1, hw, 4, c1), (1, hw, 16, c0))
        return shapes

    @property
    def decoder_inputs(self) -> tuple[str, ...]:
        """Inputs of ``decoder.onnx``: context + point prompts (boxes are point pairs)."""
        return (*self.context_outputs, POINT_COORDS, POINT_LABELS)

    @property
    def mask_decoder_inputs(self) -> tuple[str, ...]:
        """Inputs of ``decoder_mask.onnx``: as the decoder's, plus a mask prompt."""
        return (*self.decoder_inputs, MASK_INPUT, HAS_MASK_INPUT)

    @property
    def decoder_outputs(self) -> tuple[str, ...]:
        outs = (LOW_RES_MASKS, IOU_PREDICTIONS)
        return (*outs, OBJECT_SCORE_LOGITS) if self.has_object_score else outs

    @property
    def head_inputs(self) -> tuple[str, ...]:
        """Inputs of ``decoder_head.onnx``: the decoder's, without SAM 2's high-res
        features (only the upscaling uses them)."""
        return (*CONTEXT, POINT_COORDS, POINT_LABELS)

    @property
    def head_outputs(self) -> tuple[str, ...]:
        """Outputs of ``decoder_head.onnx``: the scores, then what ``upscaler.onnx`` needs
        to draw the masks."""
        return (*self.decoder_outputs[1:], HEAD_IMAGE_SIDE, HEAD_MASK_VECTORS)

    @property
    def upscaler_inputs(self) -> tuple[str, ...]:
        """Inputs of ``upscaler.onnx``; its one output is ``low_res_masks``."""
        return (HEAD_IMAGE_SIDE, HEAD_MASK_VECTORS, *CONTEXT_HIGH_RES[: len(self.high_res_shapes)])
