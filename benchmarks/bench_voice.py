"""Voice calls through the real Twilio gateway: reply latency and simultaneous calls.

The agent is built with ``load_agent`` (the default text model, the in-memory store unless
``--redis-url``; Whisper tiny.en, Silero VAD, the configured voice), served by uvicorn; clients in
the same process play Twilio's side over real WebSockets: they stream customer requests spoken by
Piper (or espeak-ng: ``--caller-voice``) as 8 kHz mu-law in real time, silence between them, and
echo marks when the reply audio has "played".

Stage 1, latency (calls one after another): end of the caller's speech -> first reply audio frame,
p50/p95, measured by the client; with speculative transcription (the default) and, as the
baseline in the same run, without it. The server-side figure (end of turn detected -> first frame)
is reported too: the difference is the end-of-turn silence (``vad.end_of_turn_silence_ms``).

Stage 2, simultaneous calls: K calls at once, each speaking ``--turns`` requests; the latest any
reply frame went out after its due time (server side), for each K.

    nice -n 10 python benchmarks/bench_voice.py
    python benchmarks/bench_voice.py --latency-turns 4 --calls 1,2 --turns 2     # quick
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import AgentConfig
from modalities.audio import float32_to_mulaw, resample

REQUESTS = (
    "I lost my credit card",
    "My card has not arrived yet",
    "Why was my payment declined at the shop",
    "I need to change my home address",
    "What is the balance of my current account",
    "My transfer to my landlord failed this morning",
    "I would like a refund for this purchase",
    "How do I activate my new card",
    "My pin is blocked after too many tries",
    "I cannot log in to the banking app",
    "What is the exchange rate for euros today",
    "What fees do you charge for using my card abroad",
)
VOICES = (("en-us", 165), ("en-gb", 150), ("en-us+f3", 175))
FRAME_S = 0.02


def espeak_8k(text: str, voice: str, rate_wpm: int) -> np.ndarray:
    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(rate_wpm)], input=text.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = resample(samples, int(rate), 8000) * 0.8
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[: loud[-1] + 1] if len(loud) else audio  # ends where the speech ends


@dataclass
class Phone:
    """Twilio's side of one call."""

    url: str
    call_sid: str
    stream_sid: str
    queue: list[np.ndarray] = field(default_factory=list)
    speech_ends: list[float] = field(default_factory=list)  # monotonic s, last audible frame sent
    media_times: list[float] = field(default_factory=list)
    play_until: float = 0.0
    marks: list[tuple[float, str]] = field(default_factory=list)
    echoed: int = 0
    ws: Any = None

    async def run(self, utterances: list[np.ndarray], pause_s: float) -> list[float]:
        """Say each utterance after the previous reply has played; latencies in ms."""
        import websockets

        async with websockets.connect(self.url, max_size=2**22) as self.ws:
            await self.ws.send(json.dumps({"event": "start", "streamSid": self.stream_sid, "start": {
                "streamSid": self.stream_sid, "callSid": self.call_sid, "accountSid": "ACbench",
                "customParameters": {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                        "channels": 1}}}))
            sender = asyncio.create_task(self._send())
            receiver = asyncio.create_task(self._receive())
            latencies = []
            for audio in utterances:
                self.queue.append(audio)
                while self.queue or len(self.speech_ends) < len(latencies) + 1:
                    await asyncio.sleep(0.005)
                spoke = self.speech_ends[-1]
                if not await _until(lambda spoke=spoke: any(t > spoke for t in self.media_times), 30):
                    latencies.append(float("nan"))
                    continue
                latencies.append((next(t for t in self.media_times if t > spoke) - spoke) * 1000.0)
                await _until(lambda: not self.marks and time.monotonic() > self.play_until + 0.3, 60)
                await asyncio.sleep(pause_s)
            sender.cancel()
            receiver.cancel()
            await self.ws.send(json.dumps({"event": "stop", "streamSid": self.stream_sid, "stop": {}}))
        return latencies

    async def _send(self) -> None:
        started, n = time.monotonic(), 0
        while True:
            if self.queue:
                chunk, self.queue[0] = self.queue[0][:160], self.queue[0][160:]
                if len(self.queue[0]) == 0:
                    self.queue.pop(0)
                    last = True
                else:
                    last = False
                chunk = np.concatenate([chunk, np.zeros(160 - len(chunk), np.float32)])
            else:
                chunk, last = np.zeros(160, np.float32), False
            payload = base64.b64encode(float32_to_mulaw(chunk)).decode()
            await self.ws.send(json.dumps({"event": "media", "streamSid": self.stream_sid,
                                           "media": {"track": "inbound", "timestamp": str(n * 20), "payload": payload}}))
            if last:
                self.speech_ends.append(time.monotonic())
            n += 1
            await asyncio.sleep(max(0.0, started + n * FRAME_S - time.monotonic()))
            await self._echo_marks()

    async def _echo_marks(self) -> None:
        now = time.monotonic()
        while self.marks and self.marks[0][0] <= now:
            _, name = self.marks.pop(0)
            await self.ws.send(json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}))

    async def _receive(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            now = time.monotonic()
            if message["event"] == "media":
                self.media_times.append(now)
                self.play_until = max(self.play_until, now) + len(base64.b64decode(message["media"]["payload"])) / 8000
            elif message["event"] == "mark":
                self.marks.append((max(now, self.play_until), message["mark"]["name"]))
            elif message["event"] == "clear":
                self.play_until = now


async def _until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())


@contextlib.asynccontextmanager
async def serving(agent: Any) -> Any:
    import uvicorn
    from starlette.applications import Starlette

    from agent.voice import twilio_routes

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=twilio_routes(agent)), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/twilio/media"
    finally:
        server.should_exit = True
        await task


def percentile(values: list[float], q: float) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return float(np.percentile(clean, q)) if clean else float("nan")


async def build_agent(args: argparse.Namespace, *, speculative: bool) -> Any:
    from agent.runtime import load_agent
    from agent.voice import prepare

    env = {"AGENT_REDIS_URL": args.redis_url} if args.redis_url else {}
    if args.model_dir:
        env["AGENT_MODEL_DIR"] = str(args.model_dir)
    if args.cache_dir:
        env["AGENT_CACHE_DIR"] = str(args.cache_dir)
    config = AgentConfig.from_env(env)
    config = replace(
        config,
        telephony=replace(config.telephony, speculative_transcription=speculative, twilio_api_base="http://127.0.0.1:9"),
        vad=replace(config.vad, end_of_turn_silence_ms=args.silence_ms),
        tts=replace(config.tts, backend=args.tts),
        asr=replace(config.asr, cpu_threads=args.threads),
    )
    agent = load_agent(config)
    await agent.start()
    await prepare(agent)  # models loaded in low-priority threads, as a server should
    return agent


CALLER_VOICE = "espeak"  # set by --caller-voice


def utterances(n: int, offset: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        text = REQUESTS[(i + offset) % len(REQUESTS)]
        if CALLER_VOICE == "piper":
            out.append(piper_8k(text))
        else:
            voice, rate = VOICES[(i + offset) % len(VOICES)]
            out.append(espeak_8k(text, voice, rate))
    return out


def piper_8k(text: str) -> np.ndarray:
    from agent.config import TtsConfig
    from models.tts import load_synthesizer

    clip = load_synthesizer(TtsConfig(backend="piper")).synthesize(text)
    audio = resample(clip.samples, clip.sample_rate_hz, 8000) * 0.8
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[: loud[-1] + 1] if len(loud) else audio


def new_phone(url: str, tag: str) -> Phone:
    sid = f"{tag}-{os.urandom(6).hex()}"
    return Phone(url=url, call_sid="CA" + sid, stream_sid="MZ" + sid)


async def latency_stage(args: argparse.Namespace, agent: Any) -> dict[str, float]:
    from agent.voice.session import RECENT_CALLS

    async with serving(agent) as url:
        await new_phone(url, "burn").run(utterances(1, 0), args.pause_s)  # burn-in
        client, server, handled = [], [], []
        per_call = 4
        for c in range(max(1, args.latency_turns // per_call)):
            phone = new_phone(url, "lat")
            client += await phone.run(utterances(per_call, c * per_call), args.pause_s)
            reports = [r for r in RECENT_CALLS if r.conversation_id == phone.call_sid]
            server += [ms for r in reports for ms in r.reply_latencies_ms]
            handled += [ms for r in reports for ms in r.turn_latencies_ms]
    return {"turns": len(client), "speech_end_to_first_frame_p50_ms": percentile(client, 50),
            "speech_end_to_first_frame_p95_ms": percentile(client, 95),
            "turn_end_to_first_frame_p50_ms": percentile(server, 50),
            "turn_end_to_first_frame_p95_ms": percentile(server, 95),
            "turn_end_to_turn_handled_p50_ms": percentile(handled, 50),
            "turn_end_to_turn_handled_p95_ms": percentile(handled, 95), "missed": sum(1 for v in client if math.isnan(v))}


async def concurrency_stage(args: argparse.Namespace, agent: Any, k: int) -> dict[str, float]:
    from agent.voice.session import RECENT_CALLS

    async with serving(agent) as url:
        phones = [new_phone(url, f"k{k}") for _ in range(k)]

        async def one(i: int, phone: Phone) -> list[float]:
            await asyncio.sleep(random.uniform(0, 1.5))
            return await phone.run(utterances(args.turns, i * args.turns), args.pause_s)

        latencies = [ms for ms_list in await asyncio.gather(*(one(i, p) for i, p in enumerate(phones))) for ms in ms_list]
        await asyncio.sleep(0.5)
        sids = {p.call_sid for p in phones}
        reports = [r for r in RECENT_CALLS if r.conversation_id in sids]
    return {"calls": k, "reports": len(reports), "max_late_ms": max((r.max_late_ms for r in reports), default=float("nan")),
            "frames": sum(r.frames_sent for r in reports), "frames_late_100ms": sum(r.frames_late_100ms for r in reports),
            "underruns": sum(r.underruns for r in reports), "reply_p50_ms": percentile(latencies, 50),
            "reply_p95_ms": percentile(latencies, 95), "missed": sum(1 for v in latencies if math.isnan(v))}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"latency": {}, "concurrency": []}
    speculative = await build_agent(args, speculative=True)
    baseline = await build_agent(args, speculative=False)
    for name, agent in (("speculative", speculative), ("baseline-no-speculation", baseline)):
        results["latency"][name] = r = await latency_stage(args, agent)
        print(f"latency {name:24} speech end -> first frame p50 {r['speech_end_to_first_frame_p50_ms']:.0f} ms "
              f"p95 {r['speech_end_to_first_frame_p95_ms']:.0f} ms | end of turn -> first frame p50 "
              f"{r['turn_end_to_first_frame_p50_ms']:.0f} ms p95 {r['turn_end_to_first_frame_p95_ms']:.0f} ms "
              f"(of which the runtime's turn p50 {r['turn_end_to_turn_handled_p50_ms']:.0f} ms) "
              f"({r['turns']} turns, {r['missed']} unanswered)", flush=True)
    for k in (int(x) for x in args.calls.split(",")):
        r = await concurrency_stage(args, speculative, k)
        results["concurrency"].append(r)
        print(f"calls {k:2}: max frame lateness {r['max_late_ms']:.0f} ms, frames >100 ms late "
              f"{r['frames_late_100ms']}/{r['frames']}, underruns {r['underruns']}, reply p50 {r['reply_p50_ms']:.0f} ms "
              f"p95 {r['reply_p95_ms']:.0f} ms, unanswered {r['missed']}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-turns", type=int, default=12, help="turns in the latency stage, per mode")
    parser.add_argument("--calls", default="1,2,4,6", help="simultaneous calls to try, comma-separated")
    parser.add_argument("--turns", type=int, default=3, help="turns per call in the concurrency stage")
    parser.add_argument("--pause-s", type=float, default=0.5, help="caller's pause after a reply has played")
    parser.add_argument("--silence-ms", type=int, default=600, help="vad.end_of_turn_silence_ms")
    parser.add_argument("--tts", default="auto", help="the agent's voice, tts.backend: auto | piper | espeak-ng")
    parser.add_argument("--caller-voice", default="piper", choices=("piper", "espeak"),
                        help="the callers' voice (espeak-ng voices are misheard far more often by tiny.en)")
    parser.add_argument("--threads", type=int, default=2, help="recognizer threads")
    parser.add_argument("--redis-url", default="", help="default: the in-memory store")
    parser.add_argument("--model-dir", type=Path, default=None, help="a trained text model (default: the cached default)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "voice.jsonl")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    global CALLER_VOICE
    CALLER_VOICE = args.caller_voice
    results = asyncio.run(run(args))
    record = {"bench": "voice", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _commit(),
              "machine": f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}",
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
