"""The fusion network and the checks on its inputs, with small random weights (no trained models).

What a customer would notice: with text alone the fusion answers exactly as the text model does;
with a picture or speech it can answer differently; bad features are refused with a message
that says what was expected.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agent.errors import InvalidInput
from agent.messages import ImageAnalysis, OcrLine, Transcript
from models.fusion import FusionModel
from models.fusion_layers import FusionBatch, FusionConfig, FusionModule, pad_batch, pool_frames
from models.text_encoder import CosineHead, mean_pool

torch.set_num_threads(1)
SMALL = FusionConfig(text_dim=32, speech_dim=16, image_dim=24, n_heads=4, image_tokens=2, max_speech_tokens=50)
SIZES = {"intent": 5, "sentiment": 3, "emotion": 7}


def module(config: FusionConfig = SMALL) -> FusionModule:
    torch.manual_seed(0)
    m = FusionModule(config, SIZES).eval()
    with torch.no_grad():  # open the gate so that a modality visibly changes the answer
        for layer in m.layers:
            if layer.gate is not None:
                layer.gate.bias.fill_(2.0)
        if m.router is not None:  # every picture judged to matter (the router has its own tests)
            m.router["mlp"][-1].bias.fill_(5.0)
    return m


def batch(b: int = 3, *, speech: bool = False, image: bool = False, ocr: bool = False, config: FusionConfig = SMALL):
    g = torch.Generator().manual_seed(1)
    lengths = [4, 6, 2][:b] + [3] * max(0, b - 3)
    text = [torch.randn(n, config.text_dim, generator=g) for n in lengths]
    return pad_batch(
        text,
        speech=[torch.randn(5 + i, config.speech_dim, generator=g) for i in range(b)] if speech else None,
        image=[torch.randn(config.image_dim, generator=g) for _ in range(b)] if image else None,
        ocr=[torch.randn(7, config.text_dim, generator=g) for _ in range(b)] if ocr else None,
        config=config)


def test_text_alone_gives_exactly_the_text_heads_answer() -> None:
    m = module()
    text_only = batch()
    out = m(text_only)
    pooled = mean_pool(text_only.text, text_only.text_mask)
    for name, head in m.heads.items():
        torch.testing.assert_close(out.logits[name], head(pooled), rtol=0, atol=0)
    assert out.gate.abs().max() == 0 and not out.present.any()


def test_each_modality_changes_the_answer_and_attention_shares_add_up() -> None:
    m = module()
    base = m(batch()).logits["intent"]
    for kind in ("speech", "image", "ocr"):
        out = m(batch(**{kind: True}))
        assert not torch.allclose(out.logits["intent"], base), kind
        assert out.present.all() and (out.gate > 0).all() and (out.gate < 1).all()
        torch.testing.assert_close(out.attention.sum(1), torch.ones(3))
        index = {"speech": 1, "image": 2, "ocr": 3}[kind]
        assert (out.attention[:, index] > 0).all()


def test_a_missing_modality_in_one_row_leaves_that_row_text_only() -> None:
    m = module()
    mixed = pad_batch(batch().text.unbind(0), image=[torch.randn(24), None, torch.randn(24)], config=SMALL)
    mixed = FusionBatch(text=batch().text, text_mask=batch().text_mask, image=mixed.image, image_mask=mixed.image_mask)
    out = m(mixed)
    alone = m(batch())
    torch.testing.assert_close(out.logits["intent"][1], alone.logits["intent"][1], rtol=0, atol=0)
    assert out.present.tolist() == [True, False, True]


def test_the_gate_reads_the_transcripts_confidence_and_text_alone_stays_exact() -> None:
    from dataclasses import replace

    m = module(replace(SMALL, asr_confidence=True))
    with torch.no_grad():  # make the confidence columns matter visibly
        m.layers[0].gate_sentence.weight[:, -2:].fill_(3.0)
    heard = batch(speech=True)
    sure = m(replace(heard, asr_logprob=torch.tensor([-0.05, -0.05, -0.05])))
    unsure = m(replace(heard, asr_logprob=torch.tensor([-2.5, -2.5, -2.5])))
    assert (sure.gate > unsure.gate).all() and not torch.allclose(sure.logits["intent"], unsure.logits["intent"])
    typed = m(replace(heard, asr_logprob=torch.tensor([float("nan")] * 3)))  # NaN: typed text, no transcript
    torch.testing.assert_close(typed.logits["intent"], m(heard).logits["intent"], rtol=0, atol=0)
    text_only = batch()
    out = m(replace(text_only, asr_logprob=torch.tensor([-0.3, -1.0, -2.0])))  # a transcript alone: the text model
    pooled = mean_pool(text_only.text, text_only.text_mask)
    torch.testing.assert_close(out.logits["intent"], m.heads["intent"](pooled), rtol=0, atol=0)
    assert m.layers[0].gate_sentence.in_features == SMALL.text_dim + 4
    old = module(replace(SMALL, asr_confidence=False))  # the default, and models saved before the option
    assert old.layers[0].gate_sentence.in_features == SMALL.text_dim + 2
    assert old(replace(heard, asr_logprob=torch.tensor([-0.1, -1.0, -2.0]))).logits["intent"].shape == (3, 5)


def test_gate_off_and_turned_off_modalities() -> None:
    from dataclasses import replace

    ungated = module(replace(SMALL, gate=False))
    out = ungated(batch(image=True))
    assert torch.all(out.gate == 1.0)
    no_image = module(replace(SMALL, use_image=False))
    torch.testing.assert_close(no_image(batch(image=True)).logits["intent"], no_image(batch()).logits["intent"])


def test_a_picture_the_router_judges_irrelevant_is_left_out_entirely() -> None:
    """In use (eval mode) a picture scored under the threshold is not read, embedding and OCR:
    with nothing else beside the words the answer is the text model's exactly; speech stays."""
    m = module()
    with torch.no_grad():
        m.router["mlp"][-1].bias.fill_(-5.0)
    text_only = batch()
    pooled = mean_pool(text_only.text, text_only.text_mask)
    out = m(batch(image=True, ocr=True))
    torch.testing.assert_close(out.logits["intent"], m.heads["intent"](pooled), rtol=0, atol=0)
    assert not out.present.any() and not out.picture_used.any() and (torch.sigmoid(out.relevance) < 0.5).all()
    heard = m(batch(speech=True, image=True))  # the speech is still read, the picture not
    assert heard.present.all() and not heard.picture_used.any()
    torch.testing.assert_close(heard.logits["intent"], m(batch(speech=True)).logits["intent"], rtol=0, atol=1e-5)
    from dataclasses import replace

    alone = replace(batch(image=True), words=torch.tensor([True, False, True]))  # the 2nd picture came without words
    assert m(alone).picture_used.tolist() == [False, True, False]  # all there is: read whatever the router says
    with pytest.raises(ValueError, match=r"words: expected shape \(3,\) bool, got \(3,\) torch.int64"):
        m(replace(alone, words=torch.tensor([1, 0, 1])))
    m.routing = False  # measuring: the router scores, every picture is read
    assert m(batch(image=True)).picture_used.all()
    m.routing = True
    m.train()  # training reads every picture: the router learns beside the rest, not instead of it
    assert m(batch(image=True)).picture_used.all()


def test_the_router_reads_the_words_and_the_picture_and_only_rows_with_a_picture() -> None:
    m = module()
    mixed = pad_batch(batch().text.unbind(0), image=[torch.randn(24), None, torch.randn(24)], config=SMALL)
    out = m(FusionBatch(text=batch().text, text_mask=batch().text_mask, image=mixed.image, image_mask=mixed.image_mask))
    assert out.picture_used.tolist() == [True, False, True] and out.relevance[1] == 0
    other_words = batch()
    other_words = FusionBatch(text=other_words.text + 1.0, text_mask=other_words.text_mask, image=mixed.image,
                              image_mask=mixed.image_mask)
    assert not torch.allclose(m(other_words).relevance[[0, 2]], out.relevance[[0, 2]])
    with pytest.raises(ValueError, match=r"router_threshold must be in \(0, 1\), got 1.5"):
        FusionConfig(router_threshold=1.5)
    from dataclasses import replace

    assert module(replace(SMALL, picture_router=False)).router is None  # models saved before the router
    assert module(replace(SMALL, picture_router=False))(batch(image=True)).picture_used.all()


def test_copy_heads_takes_the_text_models_classes() -> None:
    m = module()
    text_heads = torch.nn.ModuleDict({name: CosineHead(32, n) for name, n in SIZES.items()})
    m.copy_heads(text_heads)
    torch.testing.assert_close(m.heads["intent"].weight, text_heads["intent"].weight)
    with pytest.raises(ValueError, match="head 'intent'"):
        m.copy_heads(torch.nn.ModuleDict({"intent": CosineHead(32, 9)}))


@pytest.mark.parametrize("change, message", [
    (lambda b: FusionBatch(text=b.text.double(), text_mask=b.text_mask), "text: expected dtype float32, got torch.float64"),
    (lambda b: FusionBatch(text=b.text[..., :8], text_mask=b.text_mask), r"text: expected shape \(B, n, 32\)"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask[:, :2]), "text_mask: expected shape"),
    (lambda b: FusionBatch(text=b.text, text_mask=torch.zeros_like(b.text_mask)), "a real token in every row"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, image=torch.randn(3, 24)), "expected both or neither"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, image=torch.randn(3, 25),
                           image_mask=torch.ones(3, dtype=torch.bool)), r"image: expected shape \(B, 24\)"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, speech=torch.full((3, 4, 16), float("nan")),
                           speech_mask=torch.ones(3, 4, dtype=torch.bool)), "speech: expected finite values"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, speech=torch.randn(3, 51, 16),
                           speech_mask=torch.ones(3, 51, dtype=torch.bool)), "at most 50 pooled frames"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, asr_logprob=torch.zeros(2)),
     r"asr_logprob: expected shape \(3,\) float32, got \(2,\)"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, asr_logprob=torch.tensor([-0.2, 0.5, float("nan")])),
     "asr_logprob: expected finite log-probabilities <= 0"),
    (lambda b: FusionBatch(text=b.text, text_mask=b.text_mask, asr_logprob=torch.tensor([-0.2, -float("inf"), -1.0])),
     "asr_logprob: expected finite log-probabilities <= 0"),
])
def test_bad_tensors_are_refused_with_what_was_expected(change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        module()(change(batch()))


def test_pool_frames_averages_groups_of_four() -> None:
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    pooled = pool_frames(x)
    assert pooled.shape == (3, 2) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[0], x[:4].mean(0))
    np.testing.assert_allclose(pooled[2], np.stack([x[8], x[9], x[9], x[9]]).mean(0))  # last frame repeated


# --- FusionModel.turn: the runtime's values -> checked inputs ---------------------------------


@pytest.fixture
def fusion() -> FusionModel:
    fake_text = SimpleNamespace(intent_classes=("a", "b", "c", "d", "oos"), temperatures={}, max_seq_len=64)
    meta = {"intent_classes": list(fake_text.intent_classes), "temperature": 1.0}
    return FusionModel(fake_text, module(), meta)  # type: ignore[arg-type]


def transcript(features: object) -> Transcript:
    return Transcript(text="my card", language="en", avg_logprob=-0.2, no_speech_prob=0.01, duration_s=1.0,
                      features=features)  # type: ignore[arg-type]


def analysis(embedding: object, ocr: str = "Transfer failed") -> ImageAnalysis:
    return ImageAnalysis(sha256="0" * 64, kind="screenshot", kind_confidence=0.9, embedding=embedding,  # type: ignore[arg-type]
                         ocr_lines=(OcrLine(text=ocr, confidence=0.9, box=((0, 0), (1, 0), (1, 1), (0, 1))),))


def test_turn_pools_speech_and_keeps_image_and_ocr(fusion: FusionModel) -> None:
    turn = fusion.turn(text=" what is this? ", transcript=transcript(np.ones((9, 16), np.float16)),
                       image=analysis(np.ones(24, np.float32)))
    assert turn.text == "what is this?" and turn.speech.shape == (3, 16) and turn.speech.dtype == np.float32
    assert turn.image.shape == (24,) and turn.ocr_text == "Transfer failed"
    assert turn.asr_logprob == pytest.approx(-0.2)  # the transcript's confidence goes with it
    assert fusion.turn(text="typed", image=analysis(np.ones(24, np.float32))).asr_logprob is None


def test_documented_fallbacks(fusion: FusionModel) -> None:
    no_features = fusion.turn(text="my card", transcript=transcript(None))
    assert no_features.speech is None  # a transcript without features: the words only
    no_embedding = fusion.turn(text="", image=analysis(None))
    assert no_embedding.image is None and no_embedding.ocr_text  # a picture with no text, no embedding: OCR
    alone = fusion.turn(text="", image=analysis(np.zeros(24, np.float32), ocr=""))
    assert alone.text == "" and alone.image is not None  # a picture with no text is read as it is


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "hi", "transcript": transcript(np.ones((9, 16), np.float64))}, "expected dtype float32 or float16, got float64"),
    ({"text": "hi", "transcript": transcript(np.ones((9, 15), np.float32))}, r"expected shape \(n, 16\), got \(9, 15\)"),
    ({"text": "hi", "transcript": transcript(np.ones(16, np.float32))}, r"expected shape \(n, 16\), got \(16,\)"),
    ({"text": "hi", "transcript": transcript(np.ones((1501, 16), np.float32))}, "expected 1 to 1500 rows, got 1501"),
    ({"text": "hi", "transcript": transcript(np.full((4, 16), np.nan, np.float32))}, "expected finite values"),
    ({"text": "hi", "transcript": transcript([[0.0] * 16])}, "expected a numpy array, got list"),
    ({"text": "hi", "image": analysis(np.ones(1280, np.float32))}, r"image embedding: expected shape \(24\)"),
    ({"text": "hi", "image": "picture.png"}, "expected an ImageAnalysis, got str"),
    ({"text": 7}, "fusion text: expected a string, got int"),
    ({"text": "hi", "transcript": Transcript(text="hi", language="en", avg_logprob=float("nan"), no_speech_prob=0.0,
                                             duration_s=1.0)}, "expected a finite avg_logprob, got NaN"),
    ({"text": "  "}, "expected text, a transcript with features or an image; got none of them"),
])
def test_bad_inputs_get_clear_errors(fusion: FusionModel, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        fusion.turn(**kwargs)
