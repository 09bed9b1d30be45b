"""The OCR graph simplifications are exact: a small graph with every pattern gives the same
outputs with fewer operators, a rewrite that does not agree is refused, and the real PP-OCRv4
graphs are simplified once and cached."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models import ocr_graph
from models.ocr_graph import simplified_model, simplify_graph


def scalar(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array([value], np.float32)))


def pattern_model(seed: int = 0) -> onnx.ModelProto:
    """Conv -> scale -> shift -> hard-swish -> scale -> shift -> 1x1 Conv -> hard-swish ->
    scale -> shift -> padded 3x3 Conv: every rewrite, and one place where it must not fire."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "bias1"),
        numpy_helper.from_array(rng.normal(size=(6, 8, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "bias2"),
        numpy_helper.from_array(rng.normal(size=(4, 6, 3, 3)).astype(np.float32), "w3"),
    ]
    nodes = [scalar("three", 3.0), scalar("zero", 0.0), scalar("six", 6.0)]
    for i, (a, b) in enumerate([(1.3, -0.2), (0.7, 0.4), (1.1, 0.25)]):
        nodes += [scalar(f"a{i}", a), scalar(f"b{i}", b)]

    def hardswish(x: str, out: str) -> list[onnx.NodeProto]:
        return [helper.make_node("Add", [x, "three"], [f"{out}_p3"]),
                helper.make_node("Clip", [f"{out}_p3", "zero", "six"], [f"{out}_c"]),
                helper.make_node("Mul", [x, f"{out}_c"], [f"{out}_m"]),
                helper.make_node("Div", [f"{out}_m", "six"], [out])]

    nodes += [
        helper.make_node("Conv", ["x", "w1", "bias1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["a0", "c1"], ["s1"]),  # folded into the conv before it
        helper.make_node("Add", ["s1", "b0"], ["t1"]),
        *hardswish("t1", "h1"),
        helper.make_node("Mul", ["a1", "h1"], ["s2"]),  # folded into the 1x1 conv after it
        helper.make_node("Add", ["s2", "b1"], ["t2"]),
        helper.make_node("Conv", ["t2", "w2", "bias2"], ["c2"]),
        *hardswish("c2", "h2"),
        helper.make_node("Mul", ["h2", "a2"], ["s3"]),  # kept: the conv after it is padded
        helper.make_node("Add", ["s3", "b2"], ["t3"]),
        helper.make_node("Conv", ["t3", "w3"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "patterns",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, None, None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_every_rewrite_is_exact_and_removes_operators() -> None:
    original = pattern_model()
    simplified, counts = simplify_graph(pattern_model())
    assert dict(counts) == {"hardswish": 2, "conv_scale": 1, "conv_shift": 1, "affine_into_conv": 1,
                            "kept_before_padded_conv": 1}
    ops = [n.op_type for n in simplified.graph.node]
    assert ops.count("HardSwish") == 2 and "Clip" not in ops and "Div" not in ops
    assert ops.count("Mul") == 1 and ops.count("Add") == 1  # the affine before the padded conv stays
    x = np.random.default_rng(1).uniform(-2, 2, size=(2, 3, 9, 13)).astype(np.float32)
    np.testing.assert_allclose(run(simplified, x), run(original, x), atol=1e-4, rtol=1e-4)
    used = {i for n in simplified.graph.node for i in n.input}
    assert {t.name for t in simplified.graph.initializer} <= used  # the replaced weights are gone


def test_a_rewrite_that_disagrees_is_refused_and_the_original_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "patterns.onnx"
    onnx.save(pattern_model(), str(source))
    real = ocr_graph.simplify_graph

    def broken(model: onnx.ModelProto) -> tuple[onnx.ModelProto, object]:
        model, counts = real(model)
        for tensor in model.graph.initializer:
            if tensor.name.endswith("_affine_w"):
                tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 2, tensor.name))
        return model, counts

    monkeypatch.setattr(ocr_graph, "simplify_graph", broken)
    with caplog.at_level(logging.WARNING, logger="models.ocr_graph"):
        chosen = simplified_model(source, tmp_path / "cache", [(1, 3, 8, 8)])
    assert chosen == str(source)
    assert "differs from the original" in caplog.text
    assert not list((tmp_path / "cache").glob("*"))  # neither a result nor a partial file left


def test_an_unreadable_model_keeps_the_original(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "junk.onnx"
    source.write_bytes(b"this is not an onnx model")
    with caplog.at_level(logging.WARNING, logger="models.ocr_graph"):
        assert simplified_model(source, tmp_path / "cache", [(1, 3, 8, 8)]) == str(source)
    assert "could not simplify junk.onnx" in caplog.text


def test_the_ppocr_recogniser_is_simplified_once_and_cached(tmp_path: Path) -> None:
    import rapidocr_onnxruntime

    source = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    if not source.is_file():
        pytest.skip(f"RapidOCR's recogniser not found at {source}")
    first = simplified_model(source, tmp_path, [(1, 3, 48, 160)])
    assert first != str(source) and Path(first).parent == tmp_path
    stamp = Path(first).stat().st_mtime_ns
    assert simplified_model(source, tmp_path, [(1, 3, 48, 160)]) == first
    assert Path(first).stat().st_mtime_ns == stamp  # read from the cache, not rebuilt
    ops = [n.op_type for n in onnx.load(first).graph.node]
    assert ops.count("HardSwish") >= 20 and "Clip" not in ops
