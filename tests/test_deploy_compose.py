"""The compose files: valid for the Compose Specification's schema and for a real compose (Debian's
docker-compose 1.29 parses them without an engine), with health checks, restart policies, a durable and
bounded Redis, and only settings the services know."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import SCHEMAS, WORKERS, health_name, setting_names
from fleet import ROOT

#: Optional protocol adapters in compose (service -> its health key name); not in the Kubernetes base.
ADAPTERS = {"wyoming": "wyoming"}

BASE = "docker-compose.yml"
OVERRIDES = ["docker-compose.gpu.yml", "docker-compose.sentinel.yml"]
STACKS = [[BASE], [BASE, OVERRIDES[0]], [BASE, OVERRIDES[1]], [BASE, *OVERRIDES]]


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())  # safe_load refuses custom tags such as !reset
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", [BASE, *OVERRIDES])
def test_file_matches_the_compose_specification_schema(name: str) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    # The schema names draft-07 by a URL jsonschema does not recognize ("draft-07/schema", no "#").
    jsonschema.Draft7Validator(schema).validate(load(name))


@pytest.mark.parametrize("name", [BASE, *OVERRIDES])
def test_file_parses_with_older_compose_versions(name: str) -> None:
    # load() is yaml.safe_load, which already refuses tags such as !reset and !override.
    for service in load(name).get("services", {}).values():
        env_file = service.get("env_file")
        assert env_file is None or isinstance(env_file, str), "1.29 takes env_file as a path only"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
@pytest.mark.parametrize("files", STACKS, ids=["+".join(s) for s in STACKS])
def test_docker_compose_config_accepts_the_stack(files: list[str], tmp_path: Path) -> None:
    for name in files:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text("VF_GATEWAY_JWT_SECRET=x\n")
    args = ["docker-compose", "--project-directory", str(tmp_path)]
    for name in files:
        args += ["-f", str(tmp_path / name)]
    result = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    if OVERRIDES[0] in files:
        for kind in ("stt", "llm"):
            devices = merged["services"][kind]["deploy"]["resources"]["reservations"]["devices"]
            assert devices[0]["capabilities"] == ["gpu"]
    if OVERRIDES[1] in files:
        for name, service in merged["services"].items():
            if name in WORKERS or name in ADAPTERS or name == "gateway":
                assert service["environment"]["VF_REDIS_SENTINELS"], name


def test_every_service_is_checked_restarted_and_bounded() -> None:
    services = load(BASE)["services"]
    assert set(services) == {"redis", "gateway", *WORKERS, *ADAPTERS}
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for kind in WORKERS:
        assert services[kind]["healthcheck"]["test"] == ["CMD", "vf-health", health_name(kind)]
    for name, health in ADAPTERS.items():
        assert services[name]["healthcheck"]["test"] == ["CMD", "vf-health", health]
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory " in redis and "volatile-lru" in redis
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_compose_sets_only_settings_that_exist() -> None:
    known = setting_names()
    for name in [BASE, *OVERRIDES]:
        for service_name, service in load(name).get("services", {}).items():
            env = service.get("environment") or {}
            for var in env:
                if var.startswith("VF_"):
                    assert var in known, f"{name}: {service_name} sets {var}, which no settings class reads"
