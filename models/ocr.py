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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agent.config import DEFAULT_CACHE_DIR
from agent.errors import DependencyUnavailable
from agent.messages import ImageInput, OcrLine
from models.ocr_graph import simplified_model

log = logging.getLogger(__name__)

DEFAULT_GRAPH_DIR = DEFAULT_CACHE_DIR / "ocr-graphs"


@dataclass(frozen=True, slots=True, kw_only=True)
class OcrSettings:
    max_side_px: int = 2000  # the image is downscaled so its longer side is at most this
    # the detector's input: longer side at most this. Lower is faster on large photos but misses
    # small print: 960 px read the shared receipt photos 20-25% faster with one date fewer (18/20
    # instead of 19/20 on receipts 020-039, benchmarks/explore_ocr_settings.py), so the default
    # detects at the recognition resolution
    det_limit_side_px: int = 2000
    use_angle_classifier: bool = False  # 180-degree text lines; off: uploads are upright
    min_confidence: float = 0.5  # lines recognised with less confidence are dropped
    threads: int = 2  # onnxruntime intra-op threads of the detector (and of recognition, shared)
    # text crops recognised per forward pass; a batch is padded to its widest crop, so smaller
    # batches waste less (4 was 10-25% faster than 8, 2 faster again with two workers)
    rec_batch: int = 2
    # recognition batches run on this many threads at once, each with ``threads // rec_workers``
    # onnxruntime threads: the recogniser gains nothing from a second intra-op thread (measured:
    # 48 x 320 crop 20 ms on one thread, no faster on two), so two batches side by side use 2
    # cores better (benchmarks/explore_ocr_settings.py, figures in benchmarks/README.md)
    rec_workers: int = 2
    # run exact simplifications of the ONNX graphs (models/ocr_graph.py: one HardSwish instead of
    # four element-wise operators, scalar affines folded into convolutions), cached under
    # ``graph_cache_dir`` (default ~/.cache/support-agent/ocr-graphs); about a fifth faster
    simplify_graphs: bool = True
    graph_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.rec_workers <= 16:
            raise ValueError(f"OcrSettings.rec_workers must be in [1, 16], got {self.rec_workers}")
        if not 1 <= self.rec_batch <= 64:
            raise ValueError(f"OcrSettings.rec_batch must be in [1, 64], got {self.rec_batch}")
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


# random inputs the simplified graphs are checked on (batch, channels, height, width)
_CHECK_SHAPES = {
    "det": [(1, 3, 320, 288)],
    "rec": [(1, 3, 48, 320), (2, 3, 48, 200)],
    "cls": [(1, 3, 48, 192)],
}


def _stop_spinning(engine: object, threads: int, rec_threads: int, graph_dir: Path | None = None) -> None:
    """Rebuild RapidOCR's onnxruntime sessions with busy-waiting threads off.

    onnxruntime's worker threads spin while waiting for work; on a machine whose cores are
    shared this burns the CPU other work needs (measured on 2 busy cores: a receipt took 10.0 s
    with spinning, 6.4 s without). RapidOCR 1.4.4 does not expose the option, so the sessions
    are recreated; if its internals differ, the library's sessions are kept. With ``graph_dir``
    the sessions load the simplified graphs (``models.ocr_graph``) cached there.
    """
    from onnxruntime import GraphOptimizationLevel, InferenceSession, SessionOptions

    for holder, n_threads, part in (
        (getattr(getattr(engine, "text_det", None), "infer", None), threads, "det"),
        (getattr(getattr(engine, "text_rec", None), "session", None), rec_threads, "rec"),
        (getattr(getattr(engine, "text_cls", None), "infer", None), threads, "cls"),
    ):
        session = getattr(holder, "session", None)
        path = getattr(session, "_model_path", None)
        if not isinstance(path, str):
            log.debug("ocr: RapidOCR internals changed; onnxruntime spinning left on")
            continue
        options = SessionOptions()
        options.intra_op_num_threads = max(1, n_threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if graph_dir is not None:
            path = simplified_model(path, graph_dir, _CHECK_SHAPES[part])
        holder.session = InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def _limit_detector_input(engine: object, limit_side_px: int) -> None:
    """Make RapidOCR's detector honour ``limit_side_px`` for the image's longer side.

    RapidOCR 1.4.4 ignores the configured limit when the limit type is "max": it picks 960, 1500
    or 2000 px from the image's own size, so a 623 x 1255 receipt photo was detected at full size
    (0.49 s instead of 0.15 s here). Boxes are mapped back to the image given, so recognition
    still reads crops of the full-resolution image. The replacement also normalises in float32
    (the library promotes the whole picture to float64 first). If the internals differ, the
    library's behaviour is kept and a debug line says so.
    """
    detector = getattr(engine, "text_det", None)
    try:
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess
    except ImportError:  # pragma: no cover - other RapidOCR layouts
        log.debug("ocr: RapidOCR internals changed; detector input size left to the library")
        return
    if detector is None or not callable(getattr(detector, "get_preprocess", None)):
        log.debug("ocr: RapidOCR internals changed; detector input size left to the library")
        return

    class _Preprocess(DetPreProcess):
        def normalize(self, img: np.ndarray) -> np.ndarray:
            mean = np.asarray(self.mean, dtype=np.float32)
            std = np.asarray(self.std, dtype=np.float32)
            return (img.astype(np.float32) * np.float32(self.scale) - mean) / std

    mean, std = getattr(detector, "mean", None), getattr(detector, "std", None)
    preprocess = _Preprocess(limit_side_px, "max", mean, std)
    detector.get_preprocess = lambda _max_side: preprocess


class _ParallelRecognizer:
    """RapidOCR's text recogniser with its batches spread over several threads.

    The crops are ordered by width (as RapidOCR does, so a batch pads little), cut into batches
    of ``rec_batch_num`` and dealt to the workers in turn, so each worker gets a similar mix of
    narrow and wide batches; onnxruntime releases the GIL while it runs. Results come back in
    the order of the crops given, as from the wrapped recogniser.
    """

    def __init__(self, inner: Any, pool: ThreadPoolExecutor, workers: int) -> None:
        self._inner = inner
        self._pool = pool
        self._workers = workers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, img_list: Any, return_word_box: bool = False) -> tuple[list, float]:
        if isinstance(img_list, np.ndarray):
            img_list = [img_list]
        batch = max(1, int(self._inner.rec_batch_num))
        if len(img_list) <= batch:
            return self._inner(img_list, return_word_box)
        order = sorted(range(len(img_list)), key=lambda i: img_list[i].shape[1] / float(img_list[i].shape[0]))
        batches = [order[start:start + batch] for start in range(0, len(order), batch)]
        shares = [
            [i for b in batches[w::self._workers] for i in b] for w in range(self._workers)
        ]
        shares = [share for share in shares if share]
        futures = [
            self._pool.submit(self._inner, [img_list[i] for i in share], return_word_box) for share in shares
        ]
        results: list = [("", 0.0)] * len(img_list)
        elapsed = 0.0
        for share, future in zip(shares, futures):
            part, seconds = future.result()
            elapsed = max(elapsed, seconds)
            for i, one in zip(share, part):
                results[i] = one
        return results, elapsed


class RapidOcrRecognizer:
    """``TextRecognizer`` backed by RapidOCR's PP-OCRv4 ONNX models (shipped in the wheel)."""

    def __init__(self, settings: OcrSettings | None = None) -> None:
        self.settings = settings or OcrSettings()
        graph_dir = None
        if self.settings.simplify_graphs:
            graph_dir = self.settings.graph_cache_dir or DEFAULT_GRAPH_DIR
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
        _stop_spinning(self._engine, s.threads, max(1, s.threads // s.rec_workers), graph_dir)
        _limit_detector_input(self._engine, s.det_limit_side_px)
        self._pool = None
        if s.rec_workers > 1:
            self._pool = ThreadPoolExecutor(max_workers=s.rec_workers, thread_name_prefix="ocr-rec")
            self._engine.text_rec = _ParallelRecognizer(self._engine.text_rec, self._pool, s.rec_workers)

    def close(self) -> None:
        """Stop the recognition threads (they also stop with the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

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
