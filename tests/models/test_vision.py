"""Image encoders: EfficientNet-Lite0 from the installed weights, and a ViT from a local folder
(a small one made and saved here, since no ViT weights ship in any package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from agent.config import VisionConfig
from agent.errors import ConfigError
from agent.interfaces import ImageEncoder
from modalities.image import image_from_pil, load_image
from models.vision import (
    EfficientNetLiteEncoder,
    ViTImageEncoder,
    imagenet_categories,
    load_image_encoder,
    to_tensor,
)

torch.set_num_threads(2)


def grace_hopper() -> Path:
    """A photograph that ships with matplotlib (a dependency): Grace Hopper in naval uniform."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"matplotlib's sample photograph is not installed at {path}")
    return path


def drawing(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", (160, 120), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        x, y = rng.integers(0, 140, 2)
        draw.ellipse(
            (int(x), int(y), int(x) + 30, int(y) + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3))
        )
    return picture


@pytest.fixture(scope="module")
def efficientnet() -> EfficientNetLiteEncoder:
    return EfficientNetLiteEncoder()


def test_imagenet_categories_come_without_download() -> None:
    names = imagenet_categories()
    assert len(names) == 1000 and names[916] == "web site"


@pytest.mark.slow
def test_efficientnet_embedding_is_1280_d_and_deterministic(efficientnet: EfficientNetLiteEncoder) -> None:
    assert isinstance(efficientnet, ImageEncoder)
    picture = image_from_pil(drawing(0))
    first, second = efficientnet.encode(picture), efficientnet.encode(picture)
    assert first.vector.shape == (1280,) and first.vector.dtype == np.float32
    assert np.isfinite(first.vector).all()
    np.testing.assert_array_equal(first.vector, second.vector)
    other = efficientnet.encode(image_from_pil(drawing(1))).vector
    cosine = float(first.vector @ other / np.linalg.norm(first.vector) / np.linalg.norm(other))
    assert cosine < 0.99  # different pictures, different embeddings
    probs = [p for _, p in first.labels]
    assert len(first.labels) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


@pytest.mark.slow
def test_efficientnet_names_a_photograph(efficientnet: EfficientNetLiteEncoder) -> None:
    picture = load_image(grace_hopper().read_bytes(), max_bytes=10_000_000, max_pixels=40_000_000)
    labels = [name for name, _ in efficientnet.encode(picture).labels[:3]]
    assert "military uniform" in labels


@pytest.mark.slow
def test_efficientnet_sees_a_web_page_in_a_shared_screenshot(
    efficientnet: EfficientNetLiteEncoder, shared_data: Path
) -> None:
    path = shared_data / "images" / "screenshots" / "customer_site.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    picture = load_image(path.read_bytes(), max_bytes=10_000_000, max_pixels=40_000_000)
    name, probability = efficientnet.encode(picture).labels[0]
    assert name == "web site" and probability > 0.5


def save_tiny_vit(folder: Path, *, classifier: bool) -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=3,
        id2label={0: "receipt-ish", 1: "card-ish", 2: "other-ish"},
        label2id={"receipt-ish": 0, "card-ish": 1, "other-ish": 2},
    )
    model = (ViTForImageClassification if classifier else ViTModel)(config).eval()
    model.save_pretrained(folder)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(folder)
    return model


@pytest.mark.slow
def test_vit_loads_the_weights_saved_in_a_local_folder(tmp_path: Path) -> None:
    model = save_tiny_vit(tmp_path, classifier=False)
    encoder = load_image_encoder(VisionConfig(encoder="vit", vit_path=tmp_path))
    assert isinstance(encoder, ViTImageEncoder) and isinstance(encoder, ImageEncoder)
    picture = drawing(3)
    embedding = encoder.encode(image_from_pil(picture))
    assert embedding.vector.shape == (32,) and embedding.labels == ()
    pixels = to_tensor(picture, size_px=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    with torch.no_grad():
        expected = model(pixel_values=pixels).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(embedding.vector, expected, rtol=1e-5, atol=1e-5)  # the saved weights
    np.testing.assert_array_equal(embedding.vector, encoder.encode(image_from_pil(picture)).vector)


@pytest.mark.slow
def test_vit_classifier_gives_its_own_labels(tmp_path: Path) -> None:
    save_tiny_vit(tmp_path, classifier=True)
    embedding = ViTImageEncoder(tmp_path).encode(image_from_pil(drawing(4)))
    assert embedding.vector.shape == (32,)
    assert {name for name, _ in embedding.labels} == {"receipt-ish", "card-ish", "other-ish"}


def test_encoder_config_errors_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vit_path is not set"):
        load_image_encoder(VisionConfig(encoder="vit"))
    with pytest.raises(ConfigError, match="expected 'efficientnet-lite0' or 'vit', got 'resnet'"):
        load_image_encoder(VisionConfig(encoder="resnet"))
    with pytest.raises(ConfigError, match="expected a folder saved with save_pretrained"):
        load_image_encoder(VisionConfig(encoder="vit", vit_path=tmp_path / "missing"))
