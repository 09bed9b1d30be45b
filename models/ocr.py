"""OCR: PP-OCRv4 text detection and recognition (``rapidocr-onnxruntime``, ONNX, CPU).

``RapidOcrRecognizer.read(image)`` returns the text lines with their boxes (pixels of the image
as given, clockwise from top-left) and recognition confidences, top to bottom. The defaults are
tuned for speed on 2 CPU cores while keeping receipt totals readable (see
``benchmarks/bench_image.py``): the text detector sees the image with its longer side at most
``det_limit_side_px`` (the library's default upscales the *shorter* side to 736 px, which makes
tall receipts slow), the angle classifier is off (uploads are upright after EXIF orientation),
and recognition reads crops of the image downscaled to at most ``max_side_px``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

from agent.errors import DependencyUnavailable
from agent.messages import ImageInput, OcrLine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class OcrSettings:
    max_side_px: int = 2000  # the image is downscaled so its longer side is at most this
    det_limit_side_px: int = 960  # the detector's input: longer side at most this
    use_angle_classifier: bool = False  # 180-degree text lines; off: uploads are upright
    min_confidence: float = 0.5  # lines recognised with less confidence are dropped
    threads: int = 2  # onnxruntime intra-op threads per model
    # text crops recognised per forward pass; a batch is padded to its widest crop, so smaller
    # batches waste less: 4 was 10-25% faster than 8 on receipts, error screens and letters with
    # the same fields read (benchmarks/explore_ocr_settings.py, figures in benchmarks/README.md)
    rec_batch: int = 4

    def __post_init__(self) -> None:
        if not 320 <= self.det_limit_side_px <= 4000:
            raise ValueError(
                f"OcrSettings.det_limit_side_px must be in [320, 4000], got {self.det_limit_side_px}"
            )
        if self.max_side_px < self.det_limit_side_px:
            raise ValueError(
                f"OcrSettings.max_side_px ({self.max_side_px}) must be >= det_limit_side_px "
                f"({self.det_limit_side_px})"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"OcrSettings.min_confidence must be in [0, 1], got {self.min_confidence}")


def _stop_spinning(engine: object, threads: int) -> None:
    """Rebuild RapidOCR's onnxruntime sessions with busy-waiting threads off.

    onnxruntime's worker threads spin while waiting for work; on a machine whose cores are
    shared this burns the CPU other work needs (measured on 2 busy cores: a receipt took 10.0 s
    with spinning, 6.4 s without). RapidOCR 1.4.4 does not expose the option, so the sessions
    are recreated; if its internals differ, the library's sessions are kept.
    """
    from onnxruntime import GraphOptimizationLevel, InferenceSession, SessionOptions

    for holder in (
        getattr(getattr(engine, "text_det", None), "infer", None),
        getattr(getattr(engine, "text_rec", None), "session", None),
        getattr(getattr(engine, "text_cls", None), "infer", None),
    ):
        session = getattr(holder, "session", None)
        path = getattr(session, "_model_path", None)
        if not isinstance(path, str):
            log.debug("ocr: RapidOCR internals changed; onnxruntime spinning left on")
            continue
        options = SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        holder.session = InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


class RapidOcrRecognizer:
    """``TextRecognizer`` backed by RapidOCR's PP-OCRv4 ONNX models (shipped in the wheel)."""

    def __init__(self, settings: OcrSettings | None = None) -> None:
        self.settings = settings or OcrSettings()
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # pragma: no cover - a dependency of the project
            raise DependencyUnavailable(
                "OCR needs rapidocr-onnxruntime; install the project's dependencies"
            ) from e
        s = self.settings
        self._engine = RapidOCR(
            text_score=s.min_confidence,
            max_side_len=s.max_side_px,
            det_limit_type="max",
            det_limit_side_len=s.det_limit_side_px,
            rec_batch_num=s.rec_batch,
            intra_op_num_threads=s.threads,
            inter_op_num_threads=1,
        )
        _stop_spinning(self._engine, s.threads)

    def read(self, image: ImageInput) -> tuple[OcrLine, ...]:
        """Text lines in ``image``, top to bottom, left to right."""
        return self.read_pil(image.rgb)

    def read_pil(self, rgb: Image.Image) -> tuple[OcrLine, ...]:
        """As ``read``, for an RGB PIL image (rendered training images, benchmarks)."""
        scale = min(1.0, self.settings.max_side_px / max(rgb.size))
        if scale < 1.0:
            size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
            rgb = rgb.resize(size, Image.BILINEAR)
        bgr = np.ascontiguousarray(np.asarray(rgb.convert("RGB"))[:, :, ::-1])
        try:
            result, _elapsed = self._engine(bgr, use_cls=self.settings.use_angle_classifier)
        except Exception as e:  # RapidOCR wraps every onnxruntime failure in a bare Exception subclass
            raise DependencyUnavailable(
                f"OCR failed on a {rgb.size[0]}x{rgb.size[1]} image: {type(e).__name__}"
            ) from e
        lines = []
        for box, text, confidence in result or ():
            points = tuple((float(x) / scale, float(y) / scale) for x, y in box)
            lines.append(OcrLine(text=str(text), confidence=float(confidence), box=points))
        log.debug("ocr: %d lines from a %dx%d image", len(lines), *rgb.size)
        return tuple(lines)
