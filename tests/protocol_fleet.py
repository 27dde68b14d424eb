"""One fleet, started once per test session, for the protocol tests (OpenAI SDK and Wyoming client).

gateway + STT + TTS + the Wyoming adapter, as processes, under a key prefix
of their own. Both test modules use the same fleet: starting the models twice
would double the time these tests take. (Chat completions need the
orchestrator and the tools: they run with the command fleet, in
``test_commands_fleet.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fleet import RunningFleet, mint_token, running_fleet

from voicefleet.messages import new_id

WORKERS = {"stt": "vad_stt_worker", "tts": "tts_worker", "wyoming": "wyoming_adapter"}


@dataclass
class ProtocolFleet:
    fleet: RunningFleet
    asr_port: int
    tts_port: int
    wake_port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.fleet.port}/v1"

    def token(self, sub: str = "ada") -> str:
        return mint_token(self.fleet.secret, sub)

    def uri(self, port: int) -> str:
        return f"tcp://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def protocol_fleet(redis_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtocolFleet]:
    from conftest import REDIS_URL, free_port  # here: conftest imports this module for the fixture

    asr, tts, wake = free_port(), free_port(), free_port()
    env = dict(VF_WYOMING_ASR_URI=f"tcp://127.0.0.1:{asr}",
               VF_WYOMING_TTS_URI=f"tcp://127.0.0.1:{tts}", VF_WYOMING_WAKE_URI=f"tcp://127.0.0.1:{wake}")
    with running_fleet(REDIS_URL, free_port(), f"vftest-{new_id()[:8]}", tmp_path_factory.mktemp("protocol-logs"),
                       WORKERS, **env) as fleet:
        yield ProtocolFleet(fleet, asr, tts, wake)
