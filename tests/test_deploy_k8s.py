"""The Kubernetes manifests (deploy/k8s): every object valid for Kubernetes' own schemas (kubernetes-validate,
offline, unknown fields refused), KEDA's ScaledObjects valid for KEDA's CRD schema (vendored), and wired to
the fleet's real names: streams, consumer groups, health keys, settings, the JWT Secret.

No kustomize binary is needed: ``render`` applies the few kustomize features the manifests use
(resources, namespace, labels, strategic-merge deletes and JSON 6902 patches)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_support import SCHEMAS, WORKERS, consumer_group, health_name, setting_names
from fleet import ROOT

from voicefleet import metrics

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31"
CLUSTER_SCOPED = {"Namespace"}
Obj = dict[str, Any]


# ---------------------------------------------------------------- a small kustomize
def render(folder: Path) -> list[Obj]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[Obj] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        objects += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        objects = _patch(objects, patch, folder)
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if spec.get("namespace") and obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            meta.setdefault("labels", {}).update(label["pairs"])
    return objects


def _patch(objects: list[Obj], patch: Obj, folder: Path) -> list[Obj]:
    text = patch.get("patch") or (folder / patch["path"]).read_text()
    body = yaml.safe_load(text)
    if isinstance(body, dict):  # strategic merge: only "$patch: delete" is used here
        assert body.pop("$patch") == "delete"
        return [o for o in objects if not _is(o, body["kind"], body["metadata"]["name"])]
    target = patch["target"]
    matched = [o for o in objects if _is(o, target["kind"], target["name"])]
    assert matched, f"patch target {target} matches nothing"
    for obj in matched:
        for op in body:
            _json_patch(obj, op)
    return objects


def _is(obj: Obj, kind: str, name: str) -> bool:
    return bool(obj["kind"] == kind and obj["metadata"]["name"] == name)


def _json_patch(obj: Obj, op: Obj) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].strip("/").split("/")]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if op["op"] == "remove":
        del node[key]
    elif op["op"] == "replace":
        assert key in node if isinstance(node, dict) else key < len(node)
        node[key] = op["value"]
    elif op["op"] == "add":
        node[key] = op["value"]
    else:
        raise AssertionError(f"unsupported op {op['op']}")


# ---------------------------------------------------------------- validation
def _keda_schema() -> Obj:
    crd = yaml.safe_load((SCHEMAS / "keda.sh_scaledobjects.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return dict(version["schema"]["openAPIV3Schema"])


def validate(obj: Obj) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
        jsonschema.Draft7Validator(_keda_schema()).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


BASE = render(K8S / "base")
SENTINEL = render(K8S / "sentinel")


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    (obj,) = [o for o in objects if _is(o, kind, name)]
    return obj


@pytest.mark.parametrize("obj", BASE, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in BASE])
def test_base_object_is_valid(obj: Obj) -> None:
    validate(obj)


@pytest.mark.parametrize("obj", SENTINEL, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in SENTINEL])
def test_sentinel_object_is_valid(obj: Obj) -> None:
    validate(obj)


def test_the_secret_example_is_valid() -> None:
    validate(yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text()))


def test_a_broken_manifest_is_caught() -> None:
    """The validators refuse what they should (a typo in a field, a wrong trigger shape)."""
    deployment = copy.deepcopy(find(BASE, "Deployment", "llm"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 30  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaler = copy.deepcopy(find(BASE, "ScaledObject", "llm"))
    scaler["spec"]["triggers"][0]["metadata"] = "not a map"
    with pytest.raises(jsonschema.ValidationError):
        validate(scaler)


def test_one_deployment_per_service_with_probes_drain_and_a_disruption_budget() -> None:
    config = find(BASE, "ConfigMap", "voicefleet-config")["data"]
    drain_s = float(config["VF_DRAIN_S"])
    budgets = [o for o in BASE if o["kind"] == "PodDisruptionBudget"]
    for kind in ["gateway", *WORKERS]:
        deployment = find(BASE, "Deployment", kind)
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod["terminationGracePeriodSeconds"] >= drain_s + 5, kind  # the drain, then the exit
        (container,) = pod["containers"]
        assert container["readinessProbe"] and container["livenessProbe"], kind
        assert any(e.get("configMapRef", {}).get("name") == "voicefleet-config" for e in container["envFrom"])
        assert any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets), kind
        if kind in WORKERS:
            # Probes read the health key the worker writes under its service name.
            assert container["readinessProbe"]["exec"]["command"] == ["vf-health", health_name(kind)]
            assert container["livenessProbe"]["exec"]["command"] == ["vf-health", health_name(kind), "--liveness"]
            assert container["command"] == ["python", "-m", WORKERS[kind][0]]
        gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        assert (gpus == 1) == (kind in ("stt", "llm")), kind


def test_gateway_has_a_service_an_ingress_and_the_jwt_secret() -> None:
    container = find(BASE, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "voicefleet-jwt"}} in container["envFrom"]
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == "voicefleet-jwt" and "VF_GATEWAY_JWT_SECRET" in secret["stringData"]
    service = find(BASE, "Service", "gateway")
    ingress = find(BASE, "Ingress", "gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


def test_workers_scale_on_their_consumer_groups_and_stt_on_live_sessions() -> None:
    for kind in ("llm", "tts"):
        triggers = find(BASE, "ScaledObject", kind)["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"redis-streams"}
        for trigger in triggers:
            assert trigger["metadata"]["stream"] == WORKERS[kind][1]  # the real stream name (keys.py)
            assert trigger["metadata"]["consumerGroup"] == consumer_group(kind)
        assert {"pendingEntriesCount", "lagCount"} <= {k for t in triggers for k in t["metadata"]}
    stt = find(BASE, "ScaledObject", "stt")["spec"]["triggers"]
    # The gauge the gateways export (voicefleet/metrics.py).
    assert stt[0]["type"] == "prometheus" and f"{metrics.CONNECTIONS._name}{{" in stt[0]["metadata"]["query"]


def test_config_sets_only_settings_that_exist() -> None:
    for objects in (BASE, SENTINEL):
        for name in find(objects, "ConfigMap", "voicefleet-config")["data"]:
            assert name in setting_names(), f"{name} is read by no settings class"


def test_sentinel_overlay_replaces_the_single_redis() -> None:
    assert not [o for o in SENTINEL if o["metadata"]["name"] == "redis"]
    config = find(SENTINEL, "ConfigMap", "voicefleet-config")["data"]
    assert config["VF_REDIS_SENTINELS"] and config["VF_REDIS_SENTINEL_MASTER"]
    for kind in ("llm", "tts"):
        for trigger in find(SENTINEL, "ScaledObject", kind)["spec"]["triggers"]:
            assert trigger["type"] == "redis-sentinel-streams"
            assert trigger["metadata"]["sentinelMaster"] == config["VF_REDIS_SENTINEL_MASTER"]
            assert trigger["metadata"]["addresses"] == config["VF_REDIS_SENTINELS"]
