"""Cross-service setting rules (voicefleet.constraints): checked at start-up, each failing with both names."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fleet import ROOT

from gateway.settings import GatewaySettings
from llm_orchestrator.settings import LlmSettings
from tools_worker.settings import ToolsSettings
from voicefleet.constraints import RULES, SettingsConflict, conflicts, enforce, env_name


def test_the_shipped_defaults_agree() -> None:
    for own in (ToolsSettings(), LlmSettings(), GatewaySettings()):
        assert conflicts(own) == []


def test_a_tool_timeout_over_the_llms_wait_is_refused_from_either_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VF_TOOLS_CALL_TIMEOUT_S", "5")
    monkeypatch.setenv("VF_LLM_TOOL_TIMEOUT_S", "4")
    for own in (ToolsSettings(), LlmSettings()):
        with pytest.raises(SettingsConflict) as info:
            enforce(own)
        sentence = str(info.value)
        assert "VF_TOOLS_CALL_TIMEOUT_S (5) must stay below VF_LLM_TOOL_TIMEOUT_S (4)" in sentence
        assert sentence.count(".") == 1  # one sentence
    assert conflicts(GatewaySettings()) == []  # not the gateway's business


def test_a_grace_period_longer_than_the_history_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VF_GATEWAY_RESUME_GRACE_S", "7200")
    monkeypatch.setenv("VF_OUT_STREAM_KEEP_S", "9000")
    problems = conflicts(GatewaySettings())
    assert len(problems) == 1 and "VF_GATEWAY_RESUME_GRACE_S (7200)" in problems[0]
    assert "VF_LLM_HISTORY_TTL_S (3600)" in problems[0]


def test_a_grace_period_longer_than_the_replayable_reply_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VF_GATEWAY_RESUME_GRACE_S", "200")
    problems = conflicts(GatewaySettings())
    assert len(problems) == 1 and "VF_OUT_STREAM_KEEP_S (120)" in problems[0]


def test_every_rule_names_real_settings() -> None:
    for rule in RULES:
        for ref in (rule.low, rule.high):
            module, _, rest = ref.partition(":")
            cls_name, _, field = rest.partition(".")
            cls = getattr(__import__(module, fromlist=[cls_name]), cls_name)
            assert field in cls.model_fields and env_name(ref, cls).startswith("VF_")


def test_a_service_with_conflicting_settings_stops_before_loading_anything() -> None:
    env = {"PATH": "/usr/bin:/bin", "VF_REDIS_URL": "redis://127.0.0.1:1/0",
           "VF_TOOLS_CALL_TIMEOUT_S": "9", "VF_LLM_TOOL_TIMEOUT_S": "4"}
    done = subprocess.run([sys.executable, "-m", "llm_orchestrator"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "VF_TOOLS_CALL_TIMEOUT_S (9) must stay below VF_LLM_TOOL_TIMEOUT_S (4)" in done.stderr
