"""What the deployment tests compare the files in deploy/ and the compose files with: the fleet's own facts."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from fleet import ROOT

from voicefleet.keys import Keys

SCHEMAS = ROOT / "deploy" / "schemas"

#: Worker kind -> (module folder, the stream its consumer group reads, or None when it reads no work stream).
WORKERS: dict[str, tuple[str, str | None]] = {
    "stt": ("vad_stt_worker", None),
    "llm": ("llm_orchestrator", Keys().turns),
    "tts": ("tts_worker", Keys().speak),
    "tools": ("tools_worker", Keys().tools),
}


@cache
def setting_names() -> frozenset[str]:
    """Every environment variable a settings class reads (``.env.example`` is generated from them, and
    tests/test_env_example.py keeps it up to date)."""
    text = (ROOT / ".env.example").read_text()
    return frozenset(re.findall(r"^#[^\n]*?\b(VF_[A-Z0-9_]+)=", text, flags=re.M))


def _constant(path: Path, in_class: bool, name: str) -> str:
    """A string constant from a module's source (module level, or the first class attribute of that name)."""
    tree = ast.parse(path.read_text())
    scopes: list[ast.AST] = [tree] if not in_class else [
        node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    ]
    for scope in scopes:
        for node in ast.iter_child_nodes(scope):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
                and isinstance(node.value, ast.Constant)
            ):
                return str(node.value.value)
    raise LookupError(f"{name} not found in {path}")


def consumer_group(kind: str) -> str:
    """The consumer group name a worker kind reads its stream with (``GROUP`` in its worker module).

    Read from the source so that the test does not load the worker's models' libraries.
    """
    return _constant(ROOT / WORKERS[kind][0] / "worker.py", False, "GROUP")


def health_name(kind: str) -> str:
    """The service name a worker kind's health keys carry (``Service.name``)."""
    return _constant(ROOT / WORKERS[kind][0] / "worker.py", True, "name")
