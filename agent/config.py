"""Configuration: one frozen section per stage, read from a YAML file and the environment.

Precedence, lowest first: defaults, the file named by ``AGENT_CONFIG`` (or ``--config``), then
environment variables. Every field of every section can be set from the environment as
``AGENT_<SECTION>_<FIELD>`` (``AGENT_STORE_CONVERSATION_TTL_S=3600``); a few common ones have
short aliases (``AGENT_REDIS_URL``). The environment is read here and nowhere below ``agent/``.
All problems are reported at once.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

from agent.errors import ConfigError

DEFAULT_CACHE_DIR = Path(os.path.expanduser("~")) / ".cache" / "support-agent"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


class Secret:
    """A string whose ``repr`` and ``str`` never show its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _redact_url(url: str) -> str:
    """``redis://:pw@host`` -> ``redis://:***@host`` for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://***@{host}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    redis_url: Secret = field(default_factory=lambda: Secret(""))  # empty: in-memory store
    key_prefix: str = "agent"
    conversation_ttl_s: int = 7 * 24 * 3600
    profile_ttl_s: int = 365 * 24 * 3600
    blob_ttl_s: int = 30 * 24 * 3600  # uploaded images
    max_retries: int = 5  # optimistic-locking retries before ConcurrentUpdate
    socket_timeout_s: float = 2.0
    stream_maxlen: int = 100_000  # approximate cap of the events stream

    def __post_init__(self) -> None:
        problems = []
        if self.conversation_ttl_s <= 0 or self.profile_ttl_s <= 0 or self.blob_ttl_s <= 0:
            problems.append("store TTLs must be positive seconds")
        if self.profile_ttl_s < self.conversation_ttl_s:
            problems.append(
                f"store.profile_ttl_s ({self.profile_ttl_s}) must be >= "
                f"store.conversation_ttl_s ({self.conversation_ttl_s}): profiles outlive conversations"
            )
        if not 0 <= self.max_retries <= 100:
            problems.append(f"store.max_retries must be in [0, 100], got {self.max_retries}")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def redis_url_for_logs(self) -> str:
        return _redact_url(self.redis_url.reveal())


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainConfig:
    path: Path = ASSETS_DIR / "domain.yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class NluConfig:
    model_dir: Path | None = None  # a trained model; None: the default model, trained on first start
    cache_dir: Path = DEFAULT_CACHE_DIR
    device: str = "cpu"
    max_seq_len: int = 64
    quantize: bool = True  # dynamic int8 of the encoder's Linear layers: 2x faster, -0.4 points (docs/nlu.md)
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    knowledge_min_score: float = 0.55  # cosine similarity for a knowledge-base answer
    micro_batch: int = 32  # most concurrent messages in one forward pass; 1 turns batching off
    fusion_dir: Path | None = None  # a trained fusion model; None: <cache_dir>/fusion when one was trained there

    def __post_init__(self) -> None:
        if not 8 <= self.max_seq_len <= 512:
            raise ConfigError(f"nlu.max_seq_len must be in [8, 512], got {self.max_seq_len}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Overrides of the domain file's hand-off thresholds; None keeps the domain's value."""

    handoff_below_confidence: float | None = None
    clarify_margin: float | None = None
    negative_sentiment_turns: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_text_chars: int = 2000
    max_body_bytes: int = 12_000_000  # JSON and multipart bodies
    max_json_bytes: int = 64_000
    public_url: str = ""  # e.g. https://agent.example.com, for TwiML stream URLs
    workers: int = 1
    agent_token: Secret = field(default_factory=lambda: Secret(""))  # if set, hand-off API needs "Bearer <token>"
    max_images_per_turn: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port must be in [0, 65535], got {self.port}")


DEFAULT_ASR_PROMPT = ("A bank customer calls about a card, a payment, a transfer, a refund, a top-up, "
                      "a PIN, an account balance or an exchange rate.")
MAX_ASR_PROMPT_CHARS = 600


@dataclass(frozen=True, slots=True, kw_only=True)
class AsrConfig:
    backend: str = "faster-whisper"  # "faster-whisper" | "openai-whisper"
    model_name: str = "tiny.en"  # "tiny.en" | "base"
    device: str = "cpu"
    compute_type: str = "int8"
    language: str | None = "en"
    beam_size: int = 1
    no_speech_threshold: float = 0.6
    low_logprob_threshold: float = -1.0  # below this average log-probability: low confidence
    cpu_threads: int = 2  # CTranslate2 / torch threads of the recognizer
    encoder_window_s: float = 15.0  # faster-whisper: clips under this (less 1 s) are encoded in this window, not 30 s
    cache_dir: Path = DEFAULT_CACHE_DIR  # assembled Whisper base, converted openai-whisper checkpoints
    # text Whisper reads as if it had been said just before: the domain's words ("top-up", "PIN")
    # become likelier; "" for none (see docs/voice.md for the measured effect)
    initial_prompt: str = DEFAULT_ASR_PROMPT

    def __post_init__(self) -> None:
        if not 0.0 <= self.no_speech_threshold <= 1.0:
            raise ConfigError(
                f"asr.no_speech_threshold must be in [0, 1], got {self.no_speech_threshold}"
            )
        if len(self.initial_prompt) > MAX_ASR_PROMPT_CHARS:
            raise ConfigError(f"asr.initial_prompt: expected at most {MAX_ASR_PROMPT_CHARS} characters "
                              f"(Whisper keeps about 220 tokens of prompt), got {len(self.initial_prompt)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class VadConfig:
    threshold: float = 0.5
    end_of_turn_silence_ms: int = 600
    max_turn_ms: int = 15_000
    min_speech_ms: int = 200
    barge_in_min_speech_ms: int = 240
    tail_ms: int = 200  # silence kept after the last voiced frame; transcription may start then
    preroll_ms: int = 300  # audio kept from before speech was detected


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsConfig:
    backend: str = "auto"  # "auto" | "piper" | "espeak-ng"
    voice: str = "en-us"
    rate_wpm: int = 165
    cpu_threads: int = 1  # onnxruntime threads of the Piper voice
    first_chunk_max_chars: int = 60  # on calls, a longer first sentence is spoken from its first comma on


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephonyConfig:
    twilio_auth_token: Secret = field(default_factory=lambda: Secret(""))
    twilio_validate_signature: bool = False
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_transfer_twiml: str = "<Response><Enqueue>support</Enqueue></Response>"
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 0  # 0: AudioSocket server disabled
    caller_hash_salt: Secret = field(default_factory=lambda: Secret("support-agent"))
    max_frame_bytes: int = 64_000
    frame_lead_ms: int = 60  # reply audio is sent this far ahead of real time
    send_timeout_s: float = 2.0  # a gateway that takes longer to accept a frame loses the call
    max_protocol_errors: int = 50  # malformed messages ignored per call before it is closed
    speculative_transcription: bool = True  # start Whisper once the utterance's tail is in
    max_calls: int = 64  # simultaneous calls per process; more are refused


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionConfig:
    encoder: str = "efficientnet-lite0"  # "efficientnet-lite0" | "vit"
    vit_path: Path | None = None
    ocr: bool = True
    max_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    blob_dir: Path | None = None  # None: images stored in the tracker store with a TTL
    kind_head_dir: Path | None = None  # a trained image-kind head; None: the default, trained on first use
    prepare_on_start: bool = True  # load the encoder and OCR (and train the default head) when the agent starts
    startup_wait_s: float = 20.0  # an image turn waits this long for image understanding that is still starting
    # OCR is skipped when the picture alone says it is one of these kinds with at least this probability
    # (nothing reads their text; OCR is most of an image turn's time); () reads every picture
    ocr_skip_kinds: tuple[str, ...] = ("product_photo", "other")
    ocr_skip_confidence: float = 0.9

    def __post_init__(self) -> None:
        from agent.messages import IMAGE_KINDS

        unknown = sorted(set(self.ocr_skip_kinds) - set(IMAGE_KINDS))
        if unknown:
            raise ConfigError(f"vision.ocr_skip_kinds: unknown kinds {unknown}; expected some of {list(IMAGE_KINDS)}")
        if not 0.0 < self.ocr_skip_confidence <= 1.0:
            raise ConfigError(f"vision.ocr_skip_confidence must be in (0, 1], got {self.ocr_skip_confidence}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RasaConfig:
    action_port: int = 5055
    runtime_url: str = ""  # empty: call the runtime in-process
    attachment_allow_list: tuple[str, ...] = ()  # URL prefixes attachments may be fetched from
    max_attachment_bytes: int = 10_000_000
    attachment_timeout_s: float = 5.0  # whole fetch of one attachment URL
    runtime_timeout_s: float = 60.0  # one call to the runtime over HTTP (runtime_url)
    action_host: str = "127.0.0.1"  # where `agent rasa-actions` listens; 0.0.0.0 for other hosts
    max_webhook_bytes: int = 50_000_000  # a webhook body (after deflate); Rasa sends the whole tracker
    start_timeout_s: float = 300.0  # how long an action waits for the text model to load
    agent_factory: str = ""  # "module:function" returning an Agent for a config; empty: load_agent

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.action_port <= 65535:
            problems.append(f"rasa.action_port must be in [0, 65535], got {self.action_port}")
        if self.runtime_url and not self.runtime_url.startswith(("http://", "https://")):
            problems.append(f"rasa.runtime_url must start with http:// or https://, got {self.runtime_url[:40]!r}")
        if self.max_attachment_bytes <= 0 or self.max_webhook_bytes <= 0:
            problems.append("rasa.max_attachment_bytes and rasa.max_webhook_bytes must be positive")
        if min(self.attachment_timeout_s, self.runtime_timeout_s, self.start_timeout_s) <= 0:
            problems.append("rasa timeouts must be positive seconds")
        for entry in self.attachment_allow_list:
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
                problems.append(f"rasa.attachment_allow_list entries must be http(s) URLs with a host, got {entry[:60]!r}")
        if self.agent_factory and ":" not in self.agent_factory:
            problems.append(f"rasa.agent_factory must look like 'module:function', got {self.agent_factory[:60]!r}")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    store: StoreConfig = field(default_factory=StoreConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    nlu: NluConfig = field(default_factory=NluConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    telephony: TelephonyConfig = field(default_factory=TelephonyConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    rasa: RasaConfig = field(default_factory=RasaConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, config_file: str | Path | None = None
    ) -> AgentConfig:
        """Defaults <- YAML file (``config_file`` or ``AGENT_CONFIG``) <- environment."""
        env = os.environ if env is None else env
        values: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        path = config_file or env.get("AGENT_CONFIG")
        if path:
            _merge(values, _read_file(Path(path)), problems)
        _merge(values, _env_values(env), problems)
        return _build(values, problems)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AgentConfig:
        values: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        _merge(values, dict(data), problems)
        return _build(values, problems)


ALIASES = {
    "AGENT_REDIS_URL": ("store", "redis_url"),
    "AGENT_KEY_PREFIX": ("store", "key_prefix"),
    "AGENT_DOMAIN": ("domain", "path"),
    "AGENT_MODEL_DIR": ("nlu", "model_dir"),
    "AGENT_CACHE_DIR": ("nlu", "cache_dir"),
    "AGENT_HOST": ("server", "host"),
    "AGENT_PORT": ("server", "port"),
    "AGENT_LOG_LEVEL": ("log", "level"),
    "AGENT_TWILIO_AUTH_TOKEN": ("telephony", "twilio_auth_token"),
}


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(AgentConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(AgentConfig)}


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid UTF-8 YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _env_values(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = _sections()
    for key, raw in env.items():
        if key in ALIASES:
            section, name = ALIASES[key]
            out.setdefault(section, {})[name] = raw
            continue
        if not key.startswith("AGENT_"):
            continue
        rest = key[len("AGENT_"):].lower()
        for section, cls in sections.items():
            if rest.startswith(section + "_"):
                name = rest[len(section) + 1:]
                if name in {f.name for f in dataclasses.fields(cls)}:
                    out.setdefault(section, {})[name] = raw
    return out


def _merge(into: dict[str, dict[str, Any]], data: dict[str, Any], problems: list[str]) -> None:
    sections = _sections()
    for section, fields in data.items():
        if section not in sections:
            problems.append(f"unknown config section {section!r}; expected one of {sorted(sections)}")
            continue
        if not isinstance(fields, dict):
            problems.append(f"config section {section!r}: expected a mapping, got {type(fields).__name__}")
            continue
        into.setdefault(section, {}).update(fields)


def _build(values: dict[str, dict[str, Any]], problems: list[str]) -> AgentConfig:
    sections = _sections()
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        given = values.get(section, {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, raw in given.items():
            if name not in names:
                problems.append(f"unknown setting {section}.{name}; expected one of {sorted(names)}")
                continue
            try:
                kwargs[name] = _cast(raw, hints[name])
            except (TypeError, ValueError) as e:
                problems.append(f"{section}.{name}: {e}")
        try:
            built[section] = cls(**kwargs)
        except ConfigError as e:
            problems.append(str(e))
        except (TypeError, ValueError) as e:
            problems.append(f"{section}: {e}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return AgentConfig(**built)


def _cast(raw: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "none", "null"}):
            return None
        return _cast(raw, args[0])
    if hint is Secret:
        return raw if isinstance(raw, Secret) else Secret(str(raw))
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected a boolean (true/false), got {raw!r}")
    if hint is int:
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if hint is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {raw!r}") from None
    if hint is Path:
        return Path(os.path.expanduser(str(raw)))
    if hint is str:
        return str(raw)
    if origin is tuple:
        if isinstance(raw, str):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if isinstance(raw, (list, tuple)):
            return tuple(str(p) for p in raw)
        raise ValueError(f"expected a list or a comma-separated string, got {raw!r}")
    return raw
