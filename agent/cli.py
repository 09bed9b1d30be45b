"""``agent`` command line: serve, chat, train, eval, handoffs, rasa-actions, config.

Configuration comes from ``--config FILE`` (YAML) and ``AGENT_*`` environment variables; see
``agent config`` for the effective values (secrets masked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

# torch's and onnxruntime's OpenMP threads spin while idle by default; on a small shared machine
# that slows every other thread (an encoder call measured 1.5 s instead of 0.1 s). Set before
# torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.errors import AgentError

# models.calibration.OOS_METHODS, spelled out so that `--help` does not import torch (a test compares them)
OOS_METHOD_CHOICES = ("msp+knn", "msp", "energy", "maxlogit")

EPILOG = """\
environment (also settable in the --config YAML file, section.field):
  AGENT_REDIS_URL        Redis URL, e.g. redis://127.0.0.1:6379/0 (unset: in-memory store)
  AGENT_MODEL_DIR        a trained text model (unset: the default model, trained on first start)
  AGENT_DOMAIN           the domain YAML (default: assets/domain.yaml)
  AGENT_CACHE_DIR        where the default models are cached (default: ~/.cache/support-agent)
  AGENT_HOST, AGENT_PORT where `agent serve` listens (default 127.0.0.1:8000)
  AGENT_<SECTION>_<FIELD> any other setting, e.g. AGENT_STORE_CONVERSATION_TTL_S=86400
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent",
        description="A multimodal customer-service agent runtime: voice, text and images; "
        "Redis state; hand-off to humans.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file (sections as in agent/config.py)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API, web chat, console and voice gateways")
    serve.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default from config: 8000)")

    chat = sub.add_parser("chat", help="talk to the agent in this terminal; shows what it understood")
    chat.add_argument("--user-id", default="cli-user", help="customer id for the profile (default: cli-user)")
    chat.add_argument("--conversation-id", help="continue this conversation (default: a new one)")

    train = sub.add_parser("train", help="fine-tune a model on a CSV or a domain file")
    train.add_argument("--data", type=Path, required=True,
                       help="CSV with text,label (or Banking77's text,category; text,sentiment,emotion "
                       "for --task sentiment|emotion) or a domain YAML; for --task fusion the multimodal "
                       "set directory (built there when absent, see docs/fusion.md)")
    train.add_argument("--out", type=Path, required=True, help="directory to write the trained model to")
    train.add_argument("--task", choices=("intent", "sentiment", "emotion", "fusion"), default="intent")
    train.add_argument("--base-model", type=Path, help="for sentiment|emotion: the model whose heads to retrain")
    train.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="peak learning rate of AdamW")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-examples", type=int, help="train on at most this many examples (quick runs)")
    train.add_argument("--oos-method", choices=OOS_METHOD_CHOICES, default=None,
                       help="out-of-scope score when the data has no `oos` rows (default msp+knn: "
                       "max-softmax plus the distance to the nearest training message; see docs/nlu.md)")

    ev = sub.add_parser("eval", help="classification report of a model on a labelled file")
    ev.add_argument("--model", type=Path, required=True, help="a directory written by `agent train`")
    ev.add_argument("--data", type=Path, required=True, help="CSV text,label (an `oos` label adds out-of-scope figures)")
    ev.add_argument("--json", type=Path, help="also write the report as JSON here")

    hand = sub.add_parser("handoffs", help="list, claim, reply to and release hand-offs on a running server")
    hand.add_argument("action", choices=("list", "claim", "reply", "release", "show"))
    hand.add_argument("handoff_id", nargs="?", help="the hand-off (not for list)")
    hand.add_argument("text", nargs="?", help="the reply (for reply)")
    hand.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
    hand.add_argument("--agent-id", default="agent-cli", help="who you are (default: %(default)s)")
    hand.add_argument("--status", default="pending", help="for list: pending, claimed, released or all")
    hand.add_argument("--token", help="agent token, if the server requires one (or AGENT_SERVER_AGENT_TOKEN)")

    rasa = sub.add_parser("rasa-actions", help="serve our Rasa custom actions with rasa-sdk")
    rasa.add_argument("--port", type=int, help="port (default from config: 5055)")

    sub.add_parser("config", help="print the effective configuration (secrets masked)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config = AgentConfig.from_env(config_file=args.config)
        from agent.logs import configure_logging

        configure_logging(config.log)
        return int(COMMANDS[args.command](args, config) or 0)
    except AgentError as e:
        print(f"agent {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_serve(args: argparse.Namespace, config: AgentConfig) -> int:
    from agent.serve import serve

    return serve(config, host=args.host, port=args.port)


def cmd_chat(args: argparse.Namespace, config: AgentConfig) -> int:
    from agent.chat import run_chat

    return asyncio.run(run_chat(config, user_id=args.user_id, conversation_id=args.conversation_id))


def cmd_train(args: argparse.Namespace, config: AgentConfig) -> int:
    options = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                 "max_examples": args.max_examples}.items() if v is not None}
    if args.task == "fusion":
        from models.fusion_training import train_fusion_from_config

        metrics = train_fusion_from_config(config, out_dir=args.out, seed=args.seed, data=args.data, **options)
    else:
        from models.training import TrainConfig, train_from_files

        train_config = TrainConfig(oos_method=args.oos_method) if args.oos_method else None
        metrics = train_from_files(args.data, args.out, task=args.task, base_model=args.base_model,
                                   seed=args.seed, config=train_config, **options)
    print(json.dumps(_summary(metrics), indent=2))
    print(f"model written to {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace, config: AgentConfig) -> int:
    from models.training import evaluate_files

    report = evaluate_files(args.model, args.data, out_json=args.json)
    text = report.get("report_text")
    if text:
        print(text)
    print(json.dumps(_summary(report), indent=2))
    return 0


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) and k != "report_text"}


def cmd_handoffs(args: argparse.Namespace, config: AgentConfig) -> int:
    from agent.handoff_cli import run_handoffs

    token = args.token or (config.server.agent_token.reveal() or None)
    return run_handoffs(args, token=token)


def cmd_rasa_actions(args: argparse.Namespace, config: AgentConfig) -> int:
    from agent.channels.rasa_action import serve_actions

    return serve_actions(config, port=args.port or config.rasa.action_port)


def cmd_config(args: argparse.Namespace, config: AgentConfig) -> int:
    import dataclasses

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (Path, tuple)):
            return str(value) if isinstance(value, Path) else [plain(v) for v in value]
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return repr(value)  # Secret -> masked

    print(json.dumps(plain(config), indent=2))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "chat": cmd_chat,
    "train": cmd_train,
    "eval": cmd_eval,
    "handoffs": cmd_handoffs,
    "rasa-actions": cmd_rasa_actions,
    "config": cmd_config,
}
