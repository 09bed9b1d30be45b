"""``agent serve``: uvicorn with the HTTP app, plus the AudioSocket TCP server when configured."""

from __future__ import annotations

import asyncio
import logging

from agent.config import AgentConfig

log = logging.getLogger("agent.serve")


def serve(config: AgentConfig, *, host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    from agent.runtime import load_agent
    from agent.server import create_app

    host = host or config.server.host
    port = config.server.port if port is None else port
    agent = load_agent(config, serving=True)
    app = create_app(agent)
    store = config.store.redis_url_for_logs if config.store.redis_url else "in-memory"
    log.info("serving on http://%s:%d (state store: %s)", host, port, store)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False))

    async def run() -> None:
        audiosocket = None
        if config.telephony.audiosocket_port:
            from agent.voice import serve_audiosocket

            audiosocket = await serve_audiosocket(
                agent, config.telephony.audiosocket_host, config.telephony.audiosocket_port
            )
            log.info("AudioSocket on %s:%d", config.telephony.audiosocket_host, config.telephony.audiosocket_port)
        try:
            await server.serve()
        finally:
            if audiosocket is not None:
                audiosocket.close()

    asyncio.run(run())
    return 0
