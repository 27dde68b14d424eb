"""The one tool catalogue: the orchestrator's function schemas come from it, results round-trip through it,
and a registry that does not cover it exactly is refused.

The live side (the tools worker's registry as it runs, and every tool's commands with these argument
names) is in test_tools_worker.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_orchestrator.function_tools import function_name, function_tools, tool_name
from llm_orchestrator.tools_client import memory_items
from tools_worker.registry import CatalogueMismatch, Outcome, Registry, bind
from voicefleet.catalogue import (
    CATALOGUE,
    CancelTimerArgs,
    DeleteNoteArgs,
    Refusal,
    SetTimerArgs,
    ToolData,
    UpdateMemoryArgs,
    read_result,
)
from voicefleet.messages import ToolCall

ITEM = {"id": 3, "text": "Buy oat milk", "created": 1.5, "updated": 2.5}
TIMER = {"id": "c1", "label": "check the oven", "reminder": True, "seconds": 1800.0, "due": 1e9, "remaining_s": 12.5}

# One realistic data object per tool, as the tools worker answers it.
EXAMPLES: dict[str, dict[str, Any]] = {
    "notes.add": {"note": ITEM},
    "notes.list": {"notes": [ITEM, {**ITEM, "id": 4}]},
    "notes.search": {"notes": [{**ITEM, "score": 0.82}]},
    "notes.read": {"note": ITEM},
    "notes.delete": {"deleted": ITEM},
    "memory.remember": {"memory": ITEM, "duplicate": True},
    "memory.list": {"memories": [ITEM]},
    "memory.update": {"memory": ITEM, "duplicate": False},
    "memory.forget": {"forgotten": ITEM},
    "files.search": {"untrusted": True, "query": "budget", "results": [
        {"name": "budget.md", "path": "work/budget.md", "folder": "Documents", "score": 0.7, "match": "content",
         "snippet": "Quarterly budget review"}]},
    "web.search": {"untrusted": True, "provider": "ddgs", "query": "pancakes", "results": [
        {"title": "Pancakes", "url": "https://example.org/p", "snippet": "Flour, eggs, milk."}]},
    "timer.set": {"timer": TIMER},
    "timer.list": {"timers": [TIMER]},
    "timer.cancel": {"cancelled": [TIMER, {**TIMER, "id": "c2", "label": "", "reminder": False}]},
    "time.now": {"iso": "2026-11-30T21:05:00+09:00", "timezone": "Asia/Tokyo", "place": "Tokyo",
                 "weekday": "Monday", "date": "2026-11-30"},
}


def test_every_tool_has_an_example_result() -> None:
    assert set(EXAMPLES) == set(CATALOGUE)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_each_result_model_round_trips_through_json(name: str) -> None:
    model = CATALOGUE[name].result
    parsed = model.model_validate(json.loads(json.dumps(EXAMPLES[name])))
    dumped = parsed.model_dump(mode="json")
    assert model.model_validate(json.loads(json.dumps(dumped))) == parsed
    assert read_result(name, dumped) == parsed
    # A shape the worker never answers does not fit (no guessing of keys on the reading side).
    assert read_result(name, {"items": []}) is None


def test_refusals_round_trip_and_results_are_strict() -> None:
    refusal = Refusal(error="ambiguous", candidates=[ITEM])
    assert Refusal.model_validate(json.loads(refusal.model_dump_json())) == refusal
    assert read_result("memory.list", {"memories": [ITEM], "extra": 1}) is None
    assert read_result("notes.burn", {}) is None


def test_the_orchestrators_functions_are_the_catalogue() -> None:
    functions = {f.metadata.name: f for f in function_tools()}
    assert sorted(functions) == sorted(function_name(n) for n in CATALOGUE)
    for name, spec in CATALOGUE.items():
        function = functions[function_name(name)]
        assert tool_name(function.metadata.name) == name
        assert function.metadata.description == spec.description
        params = function.metadata.get_parameters_dict()
        schema = spec.args.model_json_schema()
        assert params["properties"] == schema.get("properties", {}), name
        assert params.get("required", []) == schema.get("required", []), name
    assert tool_name("notes_burn") is None


def test_the_argument_names_the_intent_layer_emits() -> None:
    expected = {
        "notes.add": {"text"}, "notes.list": set(), "notes.search": {"query"}, "notes.read": {"id", "query"},
        "notes.delete": {"id", "query"}, "memory.remember": {"text"}, "memory.list": set(),
        "memory.update": {"id", "text"}, "memory.forget": {"id", "query"}, "files.search": {"query"},
        "web.search": {"query"}, "timer.set": {"seconds", "label", "reminder"}, "timer.list": set(),
        "timer.cancel": {"id", "label", "all"}, "time.now": {"timezone"},
    }
    assert {name: set(spec.args.model_fields) for name, spec in CATALOGUE.items()} == expected
    assert SetTimerArgs.model_json_schema()["properties"]["seconds"]["type"] == "number"


def test_arguments_stay_lenient() -> None:
    for said in (3, "3", "#3", "note 3", " 3 "):
        assert DeleteNoteArgs.model_validate({"id": said}).id == 3
    assert DeleteNoteArgs.model_validate({"id": "", "query": "  dentist  "}).query == "dentist"
    assert UpdateMemoryArgs.model_validate({"id": "fact number 2", "text": " tea "}).text == "tea"
    assert CancelTimerArgs.model_validate({"all": True, "unknown": "ignored"}).all is True
    assert SetTimerArgs.model_validate({"seconds": "90.5"}).seconds == 90.5
    with pytest.raises(ValueError, match="Which note"):
        DeleteNoteArgs.model_validate({"id": ""})
    with pytest.raises(ValueError):
        UpdateMemoryArgs.model_validate({"id": 0, "text": "x"})


def test_memory_is_read_through_its_result_model() -> None:
    assert memory_items(EXAMPLES["memory.list"]) == ["Buy oat milk"]
    assert memory_items({"facts": ["Buy oat milk"]}) == []


async def _answer(call: ToolCall, args: Any) -> Outcome:
    return Outcome(True, "fine", None)


def test_a_registry_must_cover_the_catalogue_exactly() -> None:
    everything = [bind(name, _answer) for name in CATALOGUE]
    assert set(Registry.of(everything).tools) == set(CATALOGUE)
    with pytest.raises(CatalogueMismatch, match=r"without a handler: \[.time.now.\]"):
        Registry.of([t for t in everything if t.name != "time.now"])
    with pytest.raises(CatalogueMismatch, match="two handlers"):
        Registry.of([*everything, bind("notes.add", _answer)])
    with pytest.raises(KeyError, match="not in the tool catalogue"):
        bind("notes.burn", _answer)


async def test_an_answer_that_breaks_its_result_model_is_a_bug_not_a_reply() -> None:
    registry = Registry.of([bind(name, _answer) for name in CATALOGUE])
    with pytest.raises(TypeError, match=r"time\.now answered NoneType, not TimeNow"):
        await registry.dispatch(ToolCall(name="time.now"))
    assert issubclass(CATALOGUE["time.now"].result, ToolData)
