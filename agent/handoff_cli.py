"""``agent handoffs``: the human agent's side, over the HTTP API of a running server."""

from __future__ import annotations

import argparse
import json
import sys

import httpx


def run_handoffs(args: argparse.Namespace, *, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = args.url.rstrip("/")
    if args.action != "list" and not args.handoff_id:
        print(f"agent handoffs {args.action}: a hand-off id is required", file=sys.stderr)
        return 2
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:
            response = _call(client, args)
    except httpx.HTTPError as e:
        print(f"agent handoffs: cannot reach {base}: {type(e).__name__}", file=sys.stderr)
        return 1
    if response.status_code >= 400:
        print(f"agent handoffs {args.action}: {response.status_code} {response.json().get('error', '')}",
              file=sys.stderr)
        return 1
    data = response.json()
    if args.action == "list":
        for record in data["handoffs"]:
            print(f"{record['id']}  {record['status']:<8} {record['reason']:<20} {record['conversation_id']}")
            print(f"    {record['summary'].splitlines()[0] if record['summary'] else ''}")
        if not data["handoffs"]:
            print(f"no {args.status} hand-offs")
    else:
        print(json.dumps(data, indent=2))
    return 0


def _call(client: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    body = {"agent_id": args.agent_id}
    match args.action:
        case "list":
            return client.get("/v1/handoffs", params={"status": args.status})
        case "show":
            return client.get(f"/v1/handoffs/{args.handoff_id}")
        case "claim":
            return client.post(f"/v1/handoffs/{args.handoff_id}/claim", json=body)
        case "reply":
            text = args.text if args.text is not None else sys.stdin.read()
            return client.post(f"/v1/handoffs/{args.handoff_id}/messages", json={**body, "text": text})
        case "release":
            return client.post(f"/v1/handoffs/{args.handoff_id}/release", json=body)
    raise ValueError(args.action)
