"""Exact simplifications of RapidOCR's PP-OCRv4 ONNX graphs that onnxruntime does not make itself.

The graphs come from Paddle2ONNX and spell out what could be single operators, which costs the
recogniser about a fifth of its time on CPU (profiled on a 48 x 320 crop: a third of the time in
element-wise Mul/Add/Clip/Div and in layout reorders around them):

- hard-swish written as ``x * clip(x + 3, 0, 6) / 6`` becomes one ``HardSwish`` (opset 14);
- a convolution followed by a scalar scale and shift (the "learnable affine" of PP-LCNet blocks)
  has them folded into its weights and bias;
- a scalar scale and shift *before* a convolution without padding is folded into that
  convolution (``W' = a W``, ``b' = b + c * sum(W)``); before a padded convolution it is kept, since
  the padding zeros would not be shifted.

Every rewrite is algebraically exact; ``simplified_model`` checks the rewritten graph against the
original on random inputs (max |difference| below ``1e-3``) and keeps the original if it does not
agree, or if ``onnx`` is missing. Results are cached by the source model's hash, so the work (a
few seconds) is done once per machine. Measured: ``python benchmarks/explore_ocr_settings.py``,
figures in ``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH_VERSION = 1  # bump when the rewrites change: cached graphs are rebuilt
MAX_ABS_DIFFERENCE = 1e-3


def _scalar(values: dict[str, np.ndarray], name: str, expected: float | None = None) -> float | None:
    v = values.get(name)
    if v is None or v.size != 1:
        return None
    f = float(v.reshape(-1)[0])
    return f if expected is None or f == expected else None


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def simplify_graph(model: Any) -> tuple[Any, Counter]:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place as described above; returns it and
    how many of each rewrite were made."""
    from onnx import helper, numpy_helper, version_converter

    if max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0) < 14:
        model = version_converter.convert_version(model, 14)
    graph = model.graph
    values: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for tensor in graph.initializer:
        values[tensor.name] = numpy_helper.to_array(tensor)
    outputs = {o.name for o in graph.output}
    counts: Counter = Counter()

    def consumers() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                found[name].append(node)
        return found

    def only(found: dict[str, list[Any]], name: str, op_type: str) -> Any | None:
        nodes = found.get(name, [])
        if len(nodes) == 1 and nodes[0].op_type == op_type and name not in outputs:
            return nodes[0]
        return None

    def add_tensor(name: str, array: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
        values[name] = array
        return name

    def key(node: Any) -> tuple[str, tuple[str, ...]]:  # output names are unique in a graph
        return node.op_type, tuple(node.output)

    def drop(removed: set[tuple[str, tuple[str, ...]]]) -> None:
        kept = [n for n in graph.node if key(n) not in removed]
        del graph.node[:]
        graph.node.extend(kept)

    def conv_weights(conv: Any) -> tuple[np.ndarray, np.ndarray] | None:
        weight = values.get(conv.input[1])
        if weight is None or weight.ndim != 4:
            return None
        bias = values.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias
        return weight.astype(np.float32), bias.astype(np.float32)

    def set_conv(conv: Any, weight: np.ndarray, bias: np.ndarray, tag: str) -> None:
        conv.input[1] = add_tensor(f"{conv.name or conv.output[0]}_{tag}_w", weight)
        bias_name = add_tensor(f"{conv.name or conv.output[0]}_{tag}_b", bias)
        if len(conv.input) > 2:
            conv.input[2] = bias_name
        else:
            conv.input.append(bias_name)

    # 1. x * clip(x + 3, 0, 6) / 6  ->  HardSwish(x)
    found, removed = consumers(), set()
    for add in list(graph.node):
        if add.op_type != "Add" or len(add.input) != 2 or _scalar(values, add.input[1], 3.0) is None:
            continue
        x = add.input[0]
        clip = only(found, add.output[0], "Clip")
        if clip is None or len(clip.input) < 3:
            continue
        if _scalar(values, clip.input[1], 0.0) is None or _scalar(values, clip.input[2], 6.0) is None:
            continue
        mul = only(found, clip.output[0], "Mul")
        if mul is None or x not in mul.input:
            continue
        div = only(found, mul.output[0], "Div")
        if div is None or _scalar(values, div.input[1], 6.0) is None:
            continue
        position = list(graph.node).index(div)
        graph.node.insert(position, helper.make_node("HardSwish", [x], [div.output[0]]))
        removed |= {key(add), key(clip), key(mul), key(div)}
        counts["hardswish"] += 1
    drop(removed)

    # 2. Conv -> Mul(scalar) [-> Add(scalar)]  ->  Conv with scaled weights and shifted bias
    found, removed = consumers(), set()
    for conv in list(graph.node):
        if conv.op_type != "Conv" or (params := conv_weights(conv)) is None:
            continue
        mul = only(found, conv.output[0], "Mul")
        if mul is None:
            continue
        others = [i for i in mul.input if i != conv.output[0]]
        if len(others) != 1 or (scale := _scalar(values, others[0])) is None:
            continue
        weight, bias = params[0] * scale, params[1] * scale
        last = mul
        add = only(found, mul.output[0], "Add")
        if add is not None:
            shifts = [i for i in add.input if i != mul.output[0]]
            if len(shifts) == 1 and (shift := _scalar(values, shifts[0])) is not None:
                bias = bias + shift
                last = add
                removed.add(key(add))
                counts["conv_shift"] += 1
        set_conv(conv, weight, bias, "affine")
        conv.output[0] = last.output[0]
        removed.add(key(mul))
        counts["conv_scale"] += 1
    drop(removed)

    # 3. Mul(scalar) -> Add(scalar) -> Conv without padding  ->  Conv with folded weights and bias
    found, removed = consumers(), set()
    for mul in list(graph.node):
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        sources = [i for i in mul.input if _scalar(values, i) is None]
        if len(sources) != 1:
            continue
        scale = _scalar(values, next(i for i in mul.input if i != sources[0]))
        add = only(found, mul.output[0], "Add")
        if scale is None or add is None:
            continue
        shifts = [i for i in add.input if i != mul.output[0]]
        if len(shifts) != 1 or (shift := _scalar(values, shifts[0])) is None:
            continue
        conv = only(found, add.output[0], "Conv")
        if conv is None or (params := conv_weights(conv)) is None:
            continue
        if any(_attribute(conv, "pads", [0, 0, 0, 0])) or _attribute(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            counts["kept_before_padded_conv"] += 1
            continue
        weight, bias = params
        bias = bias + shift * weight.reshape(weight.shape[0], -1).sum(axis=1)
        set_conv(conv, weight * scale, bias, "input_affine")
        conv.input[0] = sources[0]
        removed |= {key(mul), key(add)}
        counts["affine_into_conv"] += 1
    drop(removed)

    # what the rewrites left unused: constants and the original weights
    used = {name for node in graph.node for name in node.input} | outputs
    drop({key(n) for n in graph.node if n.op_type == "Constant" and not set(n.output) & used})
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, counts


def _session(path: str) -> Any:
    from onnxruntime import InferenceSession, SessionOptions

    options = SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def _agree(original: str, rewritten: str, shapes: Sequence[tuple[int, ...]]) -> float:
    """Largest |difference| between the two graphs' first outputs on random inputs."""
    a, b = _session(original), _session(rewritten)
    name = a.get_inputs()[0].name
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in shapes:
        x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        worst = max(worst, float(np.abs(a.run(None, {name: x})[0] - b.run(None, {name: x})[0]).max()))
    return worst


def simplified_model(source: str | Path, cache_dir: Path, check_shapes: Sequence[tuple[int, ...]]) -> str:
    """Path of the simplified copy of the ONNX model at ``source`` (built and checked on first use,
    then read from ``cache_dir``); ``source`` itself where it cannot be simplified safely."""
    source = Path(source)
    try:
        import onnx
    except ImportError:
        log.info("ocr: onnx is not installed; OCR graphs used as shipped (slower)")
        return str(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = Path(cache_dir) / f"{source.stem}-v{GRAPH_VERSION}-{digest}.onnx"
    if target.is_file():
        return str(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        model, counts = simplify_graph(onnx.load(str(source)))
        target.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(partial))
        worst = _agree(str(source), str(partial), check_shapes)
        if not worst < MAX_ABS_DIFFERENCE:
            partial.unlink(missing_ok=True)
            log.warning("ocr: simplified %s differs from the original by %.2g; original kept", source.name, worst)
            return str(source)
        os.replace(partial, target)  # concurrent workers never see half a file
    except Exception as e:  # noqa: BLE001 - an unexpected graph: the library's model still works
        partial.unlink(missing_ok=True)
        log.warning("ocr: could not simplify %s (%s: %s); original kept", source.name, type(e).__name__, e)
        return str(source)
    log.info("ocr: simplified %s (%s), max difference %.1g", source.name, dict(counts), worst)
    return str(target)
