"""An ``Agent`` with the real dialogue layer and store (memory or Redis, from the config) and fakes
for the models, for the Rasa tests that are about the wiring, not the models. It is also a
``rasa.agent_factory`` (``tests.channels.rasa_fake_agent:build_agent``) for the real action
server started as a subprocess."""

from __future__ import annotations

import hashlib

from agent.config import AgentConfig
from agent.messages import ImageAnalysis, ImageInput
from agent.runtime import Agent
from dialogue.domain import load_domain
from dialogue.service import DialogueService, make_store
from tests.fakes import FakeNlu, FakeRecognizer


class FakeImageAnalyzer:
    """Every image is a receipt whose OCR reads 'TOTAL 12.50'."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def analyze(self, image: ImageInput) -> ImageAnalysis:
        self.seen.append(image.sha256)
        return ImageAnalysis(sha256=image.sha256, kind="receipt", kind_confidence=0.9,
                             fields=(("total", "12.50"),))


def build_agent(config: AgentConfig) -> Agent:
    domain = load_domain(config.domain.path).with_overrides(config.policy)
    dialogue = DialogueService(make_store(config.store), domain, max_retries=config.store.max_retries)
    return Agent(config=config, dialogue=dialogue, nlu_loader=FakeNlu,
                 recognizer_factory=lambda: FakeRecognizer("I think my card was stolen"),
                 image_analyzer_factory=FakeImageAnalyzer)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
