"""Template tests of charts/aiaudit: render with the real `helm`, check the objects.

Every ci/*-values.yaml file is rendered with `helm template` and the resulting
objects are checked for the properties the chart promises (hardened pods, native
gRPC probes on the serving port, one `--services` value per component, hooks,
no credentials). helm comes from scripts/install-tools.sh (.tools/bin/helm); a
missing helm fails these tests rather than skipping them, so CI cannot go green
without rendering the chart.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import fnmatch
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
import yaml

from aiaudit.common import config
from tests.charts import kube_schema

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aiaudit"
HELM = REPO / ".tools" / "bin" / "helm"
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
CI_IDS = [p.name.removesuffix("-values.yaml") for p in CI_FILES]
COMPONENTS = ("ingest", "search", "integrity", "alerting")
COMPONENT_LABEL = "app.kubernetes.io/component"
RELEASE = "audit"


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.is_file():
        pytest.fail(
            f"helm not found at {HELM}: run scripts/install-tools.sh first "
            "(it installs helm into .tools/bin); the chart tests need the real binary",
            pytrace=False,
        )
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


@functools.cache
def _render_text(values: tuple[Path, ...], sets: tuple[str, ...]) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", "audit-ns"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    out = _helm(*args)
    assert out.returncode == 0, f"helm template failed:\n{out.stderr}"
    return out.stdout


def render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    """Objects rendered from the chart with one values file and --set overrides."""
    text = _render_text((values,) if values else (), sets)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_fails(*sets: str, values: Path | None = None) -> str:
    """stderr of a render expected to fail."""
    args = ["template", RELEASE, str(CHART)] + (["-f", str(values)] if values else [])
    for item in sets:
        args += ["--set", item]
    out = _helm(*args)
    assert out.returncode != 0, f"render with {sets} should fail but produced:\n{out.stdout}"
    return out.stderr


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def component_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"][COMPONENT_LABEL])


def merged_values(values: Path) -> dict[str, Any]:
    """values.yaml overlaid with a ci file, the way helm merges them (maps deep, rest replaced)."""

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    base = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(base, yaml.safe_load(values.read_text()) or {})


def proto_services() -> set[str]:
    """Fully qualified gRPC service names declared under protos/."""
    names = set()
    for proto in (REPO / "protos").rglob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.M)
        for service in re.findall(r"^service\s+(\w+)", text, re.M):
            assert package, proto
            names.add(f"{package.group(1)}.{service}")
    return names


ci_files = pytest.mark.parametrize("values", CI_FILES, ids=CI_IDS)


def test_ci_values_files_present() -> None:
    assert set(CI_IDS) >= {"default", "all-enabled", "tls-disabled-dev"}


@ci_files
def test_lint_passes(values: Path) -> None:
    out = _helm("lint", "--strict", str(CHART), "-f", str(values))
    assert out.returncode == 0, out.stdout + out.stderr


@ci_files
def test_pods_are_hardened(values: Path) -> None:
    objects = render(values)
    workloads = of_kind(objects, "Deployment") + of_kind(objects, "Job")
    assert workloads
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        name = obj["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # A large checkpoint volume is not re-owned, file by file, at every mount.
        assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["runAsNonRoot"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # A read-only root needs somewhere to write: /tmp must be a mounted volume.
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}, name


@ci_files
def test_probes_are_native_grpc_on_the_health_port(values: Path) -> None:
    objects = render(values)
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    known = proto_services()
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (port,) = [p for p in container["ports"] if p["name"] == "health"]
        (cm,) = of_kind(objects, "ConfigMap")
        config = yaml.safe_load(cm["data"]["config.yaml"])
        assert config["health_address"].endswith(f":{port['containerPort']}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            spec = container[probe]
            assert set(spec) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, (name, probe)
            assert spec["grpc"]["port"] == port["containerPort"], (name, probe)
        # Readiness asks for the component's own gRPC service, which must exist.
        ready_service = container["readinessProbe"]["grpc"]["service"]
        assert ready_service in known, ready_service
        assert f".{component_of(deployment)}." in ready_service
        # The Service of the component sends its traffic to that same port.
        service = services[name]
        (service_port,) = service["spec"]["ports"]
        assert service_port["targetPort"] == "grpc"
        assert service_port["appProtocol"] == "grpc"
        assert service["spec"]["selector"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


@ci_files
def test_each_component_serves_only_itself(values: Path) -> None:
    objects = render(values)
    (configmap,) = of_kind(objects, "ConfigMap")
    for deployment in of_kind(objects, "Deployment"):
        component = component_of(deployment)
        assert deployment["metadata"]["name"] == f"{RELEASE}-aiaudit-{component}"
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = container["args"]
        assert args[0] == "serve"
        assert args[args.index("--services") + 1] == component
        assert args.count("--services") == 1
        # --config points at a file the mounted ConfigMap actually has.
        config_path = Path(args[args.index("--config") + 1])
        (mount,) = [
            m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)
        ]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert config_path.name in configmap["data"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_disabled_component_renders_nothing(component: str) -> None:
    all_enabled = CHART / "ci" / "all-enabled-values.yaml"
    on = render(all_enabled)
    assert any(o["metadata"].get("labels", {}).get(COMPONENT_LABEL) == component for o in on)
    off = render(all_enabled, f"{component}.enabled=false")
    leftovers = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in off
        if o["metadata"].get("labels", {}).get(COMPONENT_LABEL) == component
        or o["metadata"]["name"].startswith(f"{RELEASE}-aiaudit-{component}")
    ]
    assert leftovers == []
    # The others are untouched.
    assert {component_of(d) for d in of_kind(off, "Deployment")} == set(COMPONENTS) - {component}


@ci_files
def test_enabled_flags_decide_the_deployments(values: Path) -> None:
    merged = merged_values(values)
    enabled = {c for c in COMPONENTS if merged[c]["enabled"]}
    deployed = {component_of(d) for d in of_kind(render(values), "Deployment")}
    assert deployed == enabled


@ci_files
def test_hpa_exactly_when_autoscaling(values: Path) -> None:
    merged = merged_values(values)
    objects = render(values)
    hpas = {component_of(h): h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    for deployment in of_kind(objects, "Deployment"):
        component = component_of(deployment)
        autoscaling = merged[component]["autoscaling"]
        if autoscaling["enabled"]:
            hpa = hpas.pop(component)
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert hpa["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment["metadata"]["name"],
            }
            assert hpa["spec"]["minReplicas"] == autoscaling["minReplicas"]
            assert hpa["spec"]["maxReplicas"] == autoscaling["maxReplicas"]
            assert hpa["spec"]["metrics"]
            # The HPA owns the count: a fixed replicas field would fight it on every upgrade.
            assert "replicas" not in deployment["spec"]
        else:
            assert component not in hpas
            assert deployment["spec"]["replicas"] == merged[component]["replicas"]
    assert hpas == {}, "HPA for a component without a Deployment"


def test_autoscaling_switch_adds_hpa() -> None:
    default = CHART / "ci" / "default-values.yaml"
    assert of_kind(render(default), "HorizontalPodAutoscaler") == []
    (hpa,) = of_kind(render(default, "ingest.autoscaling.enabled=true"), "HorizontalPodAutoscaler")
    assert component_of(hpa) == "ingest"


@ci_files
def test_pdb_matches_its_deployment(values: Path) -> None:
    merged = merged_values(values)
    objects = render(values)
    deployments = {component_of(d): d for d in of_kind(objects, "Deployment")}
    pdbs = {component_of(p): p for p in of_kind(objects, "PodDisruptionBudget")}
    expected = {c for c in deployments if merged[c]["podDisruptionBudget"]["enabled"]}
    assert set(pdbs) == expected
    for component, pdb in pdbs.items():
        pod_labels = deployments[component]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook() -> None:
    objects = render(CHART / "ci" / "default-values.yaml")
    (job,) = of_kind(objects, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["db", "migrate"]
    assert not any("://" in a for a in container["args"]), "URL on the command line"
    (url,) = [e for e in container["env"] if e["name"] == "AIAUDIT_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["name"] == "aiaudit-database-admin"
    # Hooks run before the release's own objects exist: the Job must not need them.
    pod = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert all("configMap" not in v for v in pod.get("volumes", []))
    assert pod["restartPolicy"] == "Never"


def test_embedded_dev_store_has_no_migration_job() -> None:
    objects = render(CHART / "ci" / "tls-disabled-dev-values.yaml")
    assert of_kind(objects, "Job") == []


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}, selector  # what the chart's policies use
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def _without_args(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template, its one container's args left out."""
    out = copy.deepcopy(template)
    (container,) = out["spec"]["containers"]
    del container["args"]
    return out


def test_the_partitions_are_kept_ahead_on_a_schedule_by_the_hook_jobs_own_pod() -> None:
    """Migrate ran only as the install/upgrade hook: a release not upgraded for a year had
    no partition for the new months, and every row piled into DEFAULT. A CronJob runs the
    hook Job's spec, field for field, on ``migration.schedule``, but for its command: `db
    partitions`, which never moves the schema (an image changed between upgrades, or a
    rollback past a revision, neither migrates nor stops it; until 2026-12-06 it ran `db
    migrate`, and after a rollback failed at Alembic every month)."""
    objects = render(
        CHART / "ci" / "all-enabled-values.yaml",
        "migration.schedule=5 4 * * 0",
        "migration.startingDeadlineSeconds=600",
        "migration.backoffLimit=4",
        "migration.activeDeadlineSeconds=1200",
        "migration.extraArgs[0]=--data-dir=/tmp",
        "migration.podAnnotations.scrape=no",
        "migration.nodeSelector.pool=audit",
        "migration.tolerations[0].key=dedicated",
        "migration.tolerations[0].operator=Exists",
        "aiaudit.config.allow_insecure=true",
        f"aiaudit.image.digest={DIGEST}",
    )
    (job,) = of_kind(objects, "Job")
    (cron,) = of_kind(objects, "CronJob")
    assert cron["metadata"]["name"] == job["metadata"]["name"] == f"{RELEASE}-aiaudit-migrate"
    assert "helm.sh/hook" not in cron["metadata"].get("annotations", {}), "an ordinary object"
    spec = cron["spec"]
    assert spec["schedule"] == "5 4 * * 0"
    assert spec["startingDeadlineSeconds"] == 600
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 3
    assert 1 <= spec["failedJobsHistoryLimit"] <= 3
    # The hook Job's spec whole: retries, deadline, labels, pod (image, env, CA, hardening,
    # placement, pull secrets, priority class), not a copy that can drift from it.
    scheduled = copy.deepcopy(spec["jobTemplate"]["spec"])
    (scheduled_container,) = scheduled["template"]["spec"]["containers"]
    assert scheduled_container.pop("args") == ["db", "partitions", "--data-dir=/tmp"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["db", "migrate", "--data-dir=/tmp"]
    assert scheduled == {**job["spec"], "template": _without_args(job["spec"]["template"])}
    assert container["image"].endswith(f"@{DIGEST}")
    assert job["spec"]["backoffLimit"] == 4 and job["spec"]["activeDeadlineSeconds"] == 1200
    assert pod["nodeSelector"] == {"pool": "audit"}
    assert pod["priorityClassName"] == "audit-critical"
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in container["env"]}
    assert env["AIAUDIT_ALLOW_INSECURE"]["value"] == "true"
    assert "PGSSLROOTCERT" in env
    assert env["AIAUDIT_DATABASE_URL"] == {
        "name": "AIAUDIT_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "aiaudit-database-admin", "key": "url"}},
    }
    assert not _URL_WITH_PASSWORD.search(yaml.safe_dump(cron))
    # Every NetworkPolicy treats its pods as the Job's, whatever egress they are given.
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[COMPONENT_LABEL] == "migrate"
    assert spec["jobTemplate"]["metadata"]["labels"] == labels
    policies = of_kind(objects, "NetworkPolicy")
    assert policies and all(p["spec"]["policyTypes"] == ["Ingress", "Egress"] for p in policies)
    cron_labels = spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert [_selects(p, cron_labels) for p in policies] == [_selects(p, labels) for p in policies]
    assert kube_schema.problems(cron) == []


def test_the_scheduled_migration_runs_monthly_by_default() -> None:
    (cron,) = of_kind(render(CHART / "ci" / "default-values.yaml"), "CronJob")
    minute, hour, day, month, weekday = cron["spec"]["schedule"].split()
    assert (day, month, weekday) == ("1", "*", "*") and minute.isdigit() and hour.isdigit()


@pytest.mark.parametrize(
    ("values", "sets"),
    [
        (CHART / "ci" / "default-values.yaml", ("migration.schedule=",)),
        (CHART / "ci" / "default-values.yaml", ("migration.enabled=false",)),
        (CHART / "ci" / "tls-disabled-dev-values.yaml", ("migration.enabled=true",)),
    ],
    ids=["empty-schedule", "migration-disabled", "embedded"],
)
def test_no_scheduled_migration_without_a_schedule_a_migration_or_postgresql(
    values: Path, sets: tuple[str, ...]
) -> None:
    """Off with each, as the hook Job is with the last two (the embedded store migrates as
    it starts), where the default values render one."""
    assert len(of_kind(render(CHART / "ci" / "default-values.yaml"), "CronJob")) == 1
    assert of_kind(render(values, *sets), "CronJob") == []


_CREDENTIAL_NAME = re.compile(r"URL|PASSWORD|TOKEN|SECRET|_KEY$|CREDENTIAL", re.I)
_URL_WITH_PASSWORD = re.compile(r"[a-z+]+://[^/\s:@'\"]+:[^@\s'\"]+@", re.I)


@ci_files
def test_no_literal_credentials(values: Path) -> None:
    objects = render(values)
    for secret in of_kind(objects, "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), (
            f"chart renders credentials into Secret {secret['metadata']['name']}"
        )
    for obj in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if _CREDENTIAL_NAME.search(env["name"]):
                    assert "value" not in env, f"{env['name']} is a literal in {obj['metadata']}"
                    assert "secretKeyRef" in env["valueFrom"], env
    text = _render_text((values,), ())
    assert not _URL_WITH_PASSWORD.search(text), "a URL with a password is in the manifests"
    assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY", text)


@ci_files
def test_config_file_is_accepted_by_the_server(values: Path, tmp_path: Path) -> None:
    objects = render(values)
    (configmap,) = of_kind(objects, "ConfigMap")
    settings = yaml.safe_load(configmap["data"]["config.yaml"])
    known = {f.name for f in dataclasses.fields(config.Settings)} | set(config.SECTIONS)
    assert set(settings) <= known
    assert "database_url" not in settings, "the database URL belongs in a Secret"
    # TLS files come from the Secret volume at the paths the config names.
    (deployment, *_) = of_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    secret_volumes = [v for v in pod["volumes"] if "secret" in v]
    mounted = {
        f"{mounts[v['name']]}/{item['path']}"
        for v in secret_volumes
        for item in v["secret"]["items"]
    }
    modes = _mount_modes(deployment)
    for key in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "api_keys_file"):
        if key in settings:
            assert settings[key] in mounted, key
            # Stand-in files, with the volume's mode, so the server's own validation runs here.
            stand_in = tmp_path / Path(settings[key]).name
            stand_in.write_text("keys: []\n" if key == "api_keys_file" else "pem")
            stand_in.chmod(modes[str(Path(settings[key]).parent)])
            settings[key] = str(stand_in)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    # The content key's Vault address comes from its Secret, as the environment.
    env = {"AIAUDIT_CONTENT_VAULT_ADDR": "https://vault.example"}
    loaded = config.load(config_file, env=env if settings.get("content_keys") == "vault" else {})
    assert loaded.address.endswith(f":{pod['containers'][0]['ports'][0]['containerPort']}")


@ci_files
def test_network_policy_toggle(values: Path) -> None:
    merged = merged_values(values)
    objects = render(values)
    policies = of_kind(objects, "NetworkPolicy")
    if not merged["networkPolicy"]["enabled"]:
        assert policies == []
        return
    deployed = {component_of(d) for d in of_kind(objects, "Deployment")}
    migration = {component_of(j) for j in of_kind(objects, "Job")}
    assert {component_of(p) for p in policies} == deployed | migration
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            assert rule["ports"] in (
                [{"port": "grpc", "protocol": "TCP"}],
                [{"port": "health", "protocol": "TCP"}],
            )
            # A rule without peers admits any source.
            assert rule["from"], policy["metadata"]["name"]


def _peers(policy: dict[str, Any], port: str = "grpc") -> list[dict[str, Any]]:
    """The peers a policy admits to one port."""
    rules = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == port]
    return [peer for rule in rules for peer in rule["from"]]


ALL_ENABLED = CHART / "ci" / "all-enabled-values.yaml"


def _policies(*sets: str, values: Path | None = None) -> dict[str, dict[str, Any]]:
    """The components' policies (the migration pods' is apart: they serve nothing)."""
    policies = of_kind(render(values, *sets), "NetworkPolicy")
    return {component_of(p): p for p in policies if component_of(p) in COMPONENTS}


def _policies_with(
    tmp_path: Path, ingress: dict[str, Any], *sets: str
) -> dict[str, dict[str, Any]]:
    """Every component on (the all-enabled values) with these ``networkPolicy.ingress`` values
    alone (``--set`` would merge list items into the file's)."""
    values = yaml.safe_load(ALL_ENABLED.read_text())
    values["networkPolicy"]["ingress"] = ingress
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return _policies(*sets, values=path)


def _pods_of(component: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "aiaudit", "app.kubernetes.io/instance": RELEASE}
    return {"podSelector": {"matchLabels": {**labels, COMPONENT_LABEL: component}}}


def _namespace(team: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"team": team}}}


def test_network_policy_is_on_by_default_and_admits_no_one_unlisted(tmp_path: Path) -> None:
    """The policy was off by default (review, 2026-12-05): a default install accepted any
    source on every port. Now each component is isolated, and with no peer listed nothing
    may connect (``ingress: []``), not the release's other pods either."""
    assert yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]["enabled"]
    policies = _policies()
    assert set(policies) == {"ingest"}
    assert policies["ingest"]["spec"]["policyTypes"] == ["Ingress"]
    assert policies["ingest"]["spec"]["ingress"] == []
    every = _policies_with(tmp_path, {})
    assert set(every) == set(COMPONENTS)
    assert {name: _peers(p) for name, p in every.items()} == {
        "ingest": [],
        "search": [],
        "integrity": [_pods_of("search")],
        "alerting": [],
    }
    assert all(every[name]["spec"]["ingress"] == [] for name in ("ingest", "search", "alerting"))


def test_each_component_admits_only_its_own_callers(tmp_path: Path) -> None:
    """One ``ingress.from`` was applied to every component (review, 2026-12-05, r8): the AI
    gateways, which need ingest alone, reached search, integrity and alerting, and every
    pod of the release reached every other. Each component now has peers of its own; of the
    suite's components only search calls another one (integrity)."""
    ingress = {
        "ingest": {"from": [_namespace("gateways")]},
        "search": {"from": [_namespace("auditors")]},
        "integrity": {"from": [_namespace("verifiers")]},
        "alerting": {"from": [_namespace("soc")]},
    }
    policies = _policies_with(tmp_path, ingress)
    assert {name: _peers(policy) for name, policy in policies.items()} == {
        "ingest": [_namespace("gateways")],
        "search": [_namespace("auditors")],
        "integrity": [_pods_of("search"), _namespace("verifiers")],
        "alerting": [_namespace("soc")],
    }
    # Without search, nothing of the suite calls integrity.
    without_search = _policies_with(tmp_path, ingress, "search.enabled=false")
    assert _peers(without_search["integrity"]) == [_namespace("verifiers")]


def test_the_shared_peers_still_reach_every_component(tmp_path: Path) -> None:
    """``networkPolicy.ingress.from`` keeps its meaning for releases that set it: added to
    every component's own peers (the chart's NOTES say gateways belong in ingest's)."""
    policies = _policies_with(
        tmp_path,
        {"from": [_namespace("operators")], "ingest": {"from": [_namespace("gateways")]}},
    )
    for name, policy in policies.items():
        assert _namespace("operators") in _peers(policy), name
        assert (_namespace("gateways") in _peers(policy)) == (name == "ingest"), name


def test_the_health_port_admits_only_the_listed_peers() -> None:
    """The kubelet's probes come from the pod's own node, which NetworkPolicy lets in; a CNI
    that does not gets a rule for the health port alone, never for gRPC."""
    assert all(_peers(p, "health") == [] for p in _policies().values())
    nodes = {"ipBlock": {"cidr": "10.0.0.0/24"}}
    policies = _policies("networkPolicy.ingress.health.from[0].ipBlock.cidr=10.0.0.0/24")
    assert _peers(policies["ingest"], "health") == [nodes]
    assert _peers(policies["ingest"]) == []


def test_egress_reaches_only_the_components_called() -> None:
    """With egress locked down every pod could still open any port of every pod of the
    release; now only search reaches integrity, on its gRPC port."""
    policies = _policies(values=CHART / "ci" / "all-enabled-values.yaml")
    release = {"app.kubernetes.io/name": "aiaudit", "app.kubernetes.io/instance": RELEASE}
    for name, policy in policies.items():
        to_release = [
            rule
            for rule in policy["spec"]["egress"]
            for peer in rule.get("to", [])
            if peer.get("podSelector", {}).get("matchLabels", {}).items() >= release.items()
        ]
        if name == "search":
            (rule,) = to_release
            assert rule["to"] == [_pods_of("integrity")]
            assert rule["ports"] == [{"port": 50051, "protocol": "TCP"}]
        else:
            assert to_release == [], name


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("aiaudit.tls.enabled=false",), "allow_insecure"),
        (("aiaudit.database.embedded=true",), "must run 1 replica"),
        (("aiaudit.database.existingSecret=",), "aiaudit.database.existingSecret is required"),
        (("aiaudit.config.database_url=postgresql://x",), "set by the chart"),
        (
            (
                "ingest.autoscaling.enabled=true",
                "ingest.autoscaling.targetCPUUtilizationPercentage=null",
            ),
            "needs targetCPUUtilizationPercentage",
        ),
        (("aiaudit.config.alerting.webhook_secret=S3CRET",), "would put a secret in the Config"),
        (("aiaudit.config.search.opensearch_password=x",), "would put a secret in the Config"),
        (("aiaudit.config.integrity.database_url=postgresql://x",), "would put a secret"),
        (("aiaudit.apiKeys.existingSecret=",), "aiaudit.apiKeys.existingSecret is required"),
        (
            ("aiaudit.config.ingest.ip_address=pseudonymise",),
            "ingest.ipPseudonymKey.existingSecret is required",
        ),
        (("aiaudit.config.ingest.ip_pseudonym_key_file=/k",), "set by the chart"),
    ],
    ids=[
        "plaintext-without-opt-in",
        "embedded-multi-replica",
        "no-db-secret",
        "url-in-config",
        "hpa-no-metric",
        "webhook-secret-in-config",
        "opensearch-password-in-config",
        "notary-url-in-config",
        "no-caller-authentication",
        "pseudonyms-without-a-key",
        "pseudonym-key-path-in-config",
    ],
)
def test_unsafe_values_fail_the_render(sets: tuple[str, ...], message: str) -> None:
    assert message in render_fails(*sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("integrity.enabled=true", "integrity.database.existingSecret=notary"),
            "aiaudit.vault.existingSecret is required with integrity on PostgreSQL",
        ),
        (
            (
                "integrity.enabled=true",
                "integrity.database.existingSecret=notary",
                "aiaudit.vault.existingSecret=vault",
            ),
            "integrity.checkpoints.existingClaim is required with integrity on PostgreSQL",
        ),
        (
            ("search.enabled=true", "search.database.existingSecret=consumer"),
            "aiaudit.opensearch.existingSecret is required with search on PostgreSQL",
        ),
        (
            (
                "aiaudit.database.embedded=true",
                "aiaudit.config.allow_insecure=true",
                "aiaudit.tls.enabled=false",
                "aiaudit.contentKeys.existingSecret=",
                "search.enabled=true",
                "ingest.replicas=1",
            ),
            "which ingest, search would each have a copy of",
        ),
    ],
    ids=["notary-key-per-pod", "checkpoints-in-emptydir", "index-per-pod", "store-per-pod"],
)
def test_pods_that_would_each_keep_their_own_state_fail_the_render(
    sets: tuple[str, ...], message: str
) -> None:
    """Each rendered before (review, 2026-12-05): every notary pod signing with a key of its
    own, checkpoint copies filling an emptyDir, search pods each with an empty index of their
    own, and components on embedded stores of their own that never saw ingest's events."""
    assert message in render_fails(*sets)


ALERTING_ON = ("alerting.enabled=true", "alerting.database.existingSecret=alerting-login")


SECRET_SETTINGS = {
    "alerting.webhook_url": "alerting.webhook.existingSecret (key alerting.webhook.urlKey)",
    "alerting.webhook_secret": "alerting.webhook.existingSecret (key alerting.webhook.secretKey)",
    "alerting.database_url": "alerting.database.existingSecret",
    "search.opensearch_url": "aiaudit.opensearch.existingSecret (key aiaudit.opensearch.urlKey)",
    "search.opensearch_username": "aiaudit.opensearch.existingSecret",
    "search.opensearch_password": "aiaudit.opensearch.existingSecret",
    "search.database_url": "search.database.existingSecret",
    "integrity.database_url": "integrity.database.existingSecret",
    "ingest.privacy_database_url": "ingest.privacyDatabase.existingSecret",
}
"""Every section setting that carries a credential, and the values that give it from a Secret."""

TOKEN_FILE_SETTINGS = {
    "integrity.vault_token_file": "aiaudit.vault",
    "content_vault_token_file": "aiaudit.contentKeys",
}
"""The Vault token files (a path, no credential), and the values block whose ``tokenFile``
gives each: the chart passes the file or the Secret's token, never both."""


def test_every_credential_setting_is_refused_in_the_config() -> None:
    """Each settings class's URLs, logins, passwords and tokens: the list the chart refuses
    covers them all (a new one must be added there and here)."""
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.ingest.settings import IngestSettings
    from aiaudit.integrity.settings import IntegritySettings
    from aiaudit.search.settings import SearchSettings

    credential = re.compile(r"(database_url|password|username|secret|token|webhook_url)")
    classes = {
        "alerting": AlertingSettings,
        "ingest": IngestSettings,
        "integrity": IntegritySettings,
        "search": SearchSettings,
    }
    found = {
        f"{section}.{f.name}"
        for section, cls in classes.items()
        for f in dataclasses.fields(cls)
        if credential.search(f.name)
    }
    found |= {f"search.{f}" for f in ("opensearch_url",)}  # node URLs may hold a login
    assert found == set(SECRET_SETTINGS) | {"integrity.vault_token_file"}
    top = {f.name for f in dataclasses.fields(config.Settings) if credential.search(f.name)}
    assert top == {"database_url", "content_vault_token_file"}
    # The chart gives the URL from a Secret and the token files from their values, and
    # refuses them in the config.
    url = render_fails("aiaudit.config.database_url=postgresql://u:p@h/d")
    assert "database_url comes from aiaudit.database.existingSecret" in url
    for setting, values in TOKEN_FILE_SETTINGS.items():
        token = render_fails(f"aiaudit.config.{setting}=/t")
        assert f"aiaudit.config.{setting} is set by the chart" in token
        assert f"give the path as {values}.tokenFile" in token


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_a_credential_in_the_config_fails_naming_where_it_goes(setting: str) -> None:
    """``aiaudit.config.alerting.webhook_url`` rendered into the ConfigMap (review,
    2026-12-05, r6): Slack- and Teams-style webhook URLs are bearer credentials, readable by
    whoever may read the namespace's ConfigMaps. Each such setting fails the render, the
    message naming it and the Secret values that give it instead."""
    message = render_fails(f"aiaudit.config.{setting}=https://hooks.example/T000/XXXXSECRET")
    assert f"aiaudit.config.{setting} would put a secret in the ConfigMap" in message
    assert SECRET_SETTINGS[setting] in message


@pytest.mark.parametrize(
    "setting", ["oidc_jwks_url", "alerting.syslog_address", "search.integrity_address"]
)
def test_any_url_with_a_login_in_the_config_fails(setting: str) -> None:
    message = render_fails(f"aiaudit.config.{setting}=tcp://user:pa55@host:514")
    env = "AIAUDIT_" + setting.upper().replace(".", "_")
    assert f"aiaudit.config.{setting} is a URL with a login in it" in message
    assert f"give it as {env} in the extraEnv" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AIAUDIT_ALERTING_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("AIAUDIT_ALERTING_WEBHOOK_SECRET", "hmac"),
        ("AIAUDIT_SEARCH_OPENSEARCH_PASSWORD", "pw"),
        ("VAULT_TOKEN", "hvs.x"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:pw@collector:4317"),
    ],
)
def test_a_credential_as_a_literal_extra_env_value_fails(name: str, value: str) -> None:
    """Refused in the config file, the same value as a literal ``extraEnv`` would sit in the
    Deployment, as readable: it takes ``valueFrom.secretKeyRef``."""
    message = render_fails(
        *ALERTING_ON, f"alerting.extraEnv[0].name={name}", f"alerting.extraEnv[0].value={value}"
    )
    assert f"alerting.extraEnv {name} has a literal value" in message
    assert "valueFrom.secretKeyRef" in message
    objects = render(
        None,
        *ALERTING_ON,
        f"alerting.extraEnv[0].name={name}",
        "alerting.extraEnv[0].valueFrom.secretKeyRef.name=s",
        "alerting.extraEnv[0].valueFrom.secretKeyRef.key=k",
    )
    assert of_kind(objects, "Deployment")


def test_the_webhook_comes_from_its_secret_to_alerting_alone() -> None:
    """The Secret-based way to set the webhook: its URL and signing key reach the alerting
    pods as the variables the server reads, and no other pod, nor the ConfigMap."""
    from aiaudit.alerting.settings import AlertingSettings

    objects = render(ALL_ENABLED, "alerting.webhook.existingSecret=hook")
    (configmap,) = of_kind(objects, "ConfigMap")
    assert "webhook" not in configmap["data"]["config.yaml"]
    for deployment in of_kind(objects, "Deployment"):
        settings = _effective(deployment, configmap["data"]["config.yaml"])
        alerting = config.section(settings, "alerting", AlertingSettings)
        if component_of(deployment) == "alerting":
            assert alerting.webhook_url == "secret:hook/url"
            assert alerting.webhook_secret == "secret:hook/secret"
            assert alerting.sinks == ("webhook",)
        else:
            assert not alerting.webhook_url and not alerting.webhook_secret


def test_allow_insecure_counts_only_when_true() -> None:
    """``--set-string aiaudit.config.allow_insecure=false`` passed the TLS check as true."""
    message = render_fails("aiaudit.tls.enabled=false", "aiaudit.config.allow_insecure=false")
    assert "set aiaudit.config.allow_insecure=true to accept that" in message
    args = ["template", RELEASE, str(CHART), "--set", "aiaudit.tls.enabled=false"]
    out = _helm(*args, "--set-string", "aiaudit.config.allow_insecure=false")
    assert out.returncode != 0 and "allow_insecure=true to accept" in out.stderr


def test_plaintext_does_not_turn_off_authentication() -> None:
    """``allow_insecure=true`` without API keys or OIDC rendered pods that let every caller in
    as admin (review, 2026-12-05): plaintext and no authentication are two choices now."""
    no_keys = ("aiaudit.apiKeys.existingSecret=", "aiaudit.config.allow_insecure=true")
    message = render_fails(*no_keys)
    assert "aiaudit.config.allow_unauthenticated=true" in message
    objects = render(None, *no_keys, "aiaudit.config.allow_unauthenticated=true")
    (config_map,) = (o for o in of_kind(objects, "ConfigMap") if "config.yaml" in o["data"])
    assert yaml.safe_load(config_map["data"]["config.yaml"])["allow_unauthenticated"] is True


def test_long_release_names_give_valid_distinct_object_names() -> None:
    """A release name of 37 characters made `...-integrity-headless` 64 long, and one of
    52 cut "ingest" and "integrity" to the same name."""
    for release in ("payments-gateway-audit-prod-euwest1-b", "a" * 53):
        out = _helm(
            "template", release, str(CHART), "-f", str(CHART / "ci" / "all-enabled-values.yaml")
        )
        assert out.returncode == 0, out.stderr
        objects = [d for d in yaml.safe_load_all(out.stdout) if d]
        names = [(o["kind"], o["metadata"]["name"]) for o in objects]
        assert max(len(n) for _, n in names) <= 63
        assert len(set(names)) == len(names)
        # The controller names each Job it starts <CronJob name>-<11 characters>.
        assert [len(n) <= 52 for kind, n in names if kind == "CronJob"] == [True]


def test_a_stopping_pod_serves_on_while_its_endpoints_go_then_drains() -> None:
    """No preStop: the server stopped listening while endpoints still routed to the pod,
    and it cancelled calls after 5 s whatever terminationGracePeriodSeconds said."""
    objects = render(CHART / "ci" / "all-enabled-values.yaml")
    grace = {}
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        total = pod["terminationGracePeriodSeconds"]
        grace[component_of(deployment)] = (total, int(env["AIAUDIT_SHUTDOWN_GRACE_SECONDS"]))
    assert grace == {
        "ingest": (30, 20), "search": (60, 50), "integrity": (30, 20), "alerting": (30, 20)
    }  # fmt: skip


def test_replicas_spread_across_nodes_unless_told_otherwise() -> None:
    """Nothing spread them: two ingest pods, or the notary leader and its standby, could
    share the node whose failure then took both (review, 2026-12-05)."""
    for deployment in of_kind(render(CHART / "ci" / "all-enabled-values.yaml"), "Deployment"):
        (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert spread["labelSelector"]["matchLabels"] == selector
    zones = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"a": "b"}},
        }
    ]
    given = render(
        None,
        "ingest.topologySpreadConstraints[0].maxSkew=1",
        "ingest.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "ingest.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        "ingest.topologySpreadConstraints[0].labelSelector.matchLabels.a=b",
    )
    (ingest,) = of_kind(given, "Deployment")
    assert ingest["spec"]["template"]["spec"]["topologySpreadConstraints"] == zones


def test_the_migration_job_schedules_where_the_pods_do() -> None:
    """It had no node selector, tolerations or priority class: on tainted node pools it
    stayed Pending until the install timed out (review, 2026-12-05)."""
    objects = render(
        None,
        "global.priorityClassName=audit-critical",
        "migration.nodeSelector.pool=audit",
        "migration.tolerations[0].key=dedicated",
        "migration.tolerations[0].operator=Exists",
    )
    (job,) = of_kind(objects, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "audit-critical"
    assert pod["nodeSelector"] == {"pool": "audit"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def test_extra_volumes_reach_their_component_alone() -> None:
    """Nothing could mount a private CA for OpenSearch, rule files or a JWKS file: operators
    were pushed towards ``opensearch_verify_certs: false`` (review, 2026-12-05)."""
    objects = render(
        CHART / "ci" / "all-enabled-values.yaml",
        "search.extraVolumes[0].name=private-ca",
        "search.extraVolumes[0].configMap.name=corp-ca",
        "search.extraVolumeMounts[0].name=private-ca",
        "search.extraVolumeMounts[0].mountPath=/etc/aiaudit/ca",
        "search.extraVolumeMounts[0].readOnly=true",
        "aiaudit.config.search.opensearch_ca_file=/etc/aiaudit/ca/ca.pem",
    )
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        if component_of(deployment) == "search":
            assert volumes["private-ca"] == {"name": "private-ca", "configMap": {"name": "corp-ca"}}
            assert mounts["private-ca"]["mountPath"] == "/etc/aiaudit/ca"
        else:
            assert "private-ca" not in volumes and "private-ca" not in mounts
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []


def test_egress_dns_goes_to_the_cluster_dns_only() -> None:
    """Port 53 of any address was open: a way out to any host with egress locked down."""
    objects = render(CHART / "ci" / "all-enabled-values.yaml")
    for policy in of_kind(objects, "NetworkPolicy"):
        dns = policy["spec"]["egress"][0]
        assert {p["port"] for p in dns["ports"]} == {53}
        assert dns["to"] == [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]


def test_integrity_single_leader_is_documented() -> None:
    # Operators decide replica counts from these comments; keep them saying how leadership works.
    for path in (CHART / "values.yaml", CHART / "templates" / "integrity" / "deployment.yaml"):
        text = path.read_text()
        assert "advisory lock" in text and "leader" in text, path


def test_telemetry_endpoint_reaches_every_component_under_its_own_name() -> None:
    all_enabled = CHART / "ci" / "all-enabled-values.yaml"

    def otel(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
        out = {}
        for deployment in of_kind(objects, "Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            out[component_of(deployment)] = {k: v for k, v in env.items() if k.startswith("OTEL_")}
        return out

    assert all(not env for env in otel(render(all_enabled)).values())
    endpoint = "http://otel-collector.observability:4317"
    on = otel(render(all_enabled, f"aiaudit.telemetry.otlpEndpoint={endpoint}"))
    assert set(on) == set(COMPONENTS)
    for component, env in on.items():
        assert env == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": f"aiaudit-{component}",
        }


OWN_LOGINS = {
    "ingest": ("privacyDatabase", "AIAUDIT_INGEST_PRIVACY_DATABASE_URL"),
    "search": ("database", "AIAUDIT_SEARCH_DATABASE_URL"),
    "integrity": ("database", "AIAUDIT_INTEGRITY_DATABASE_URL"),
    "alerting": ("database", "AIAUDIT_ALERTING_DATABASE_URL"),
}
"""Each component's own least-privileged login: its values key and the variable it becomes."""


def _own_logins(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per component, the own-login variables of its pods, by name."""
    names = {variable for _, variable in OWN_LOGINS.values()}
    out = {}
    for deployment in of_kind(objects, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        out[component_of(deployment)] = {
            e["name"]: e for e in container.get("env", []) if e["name"] in names
        }
    return out


def test_each_component_gets_only_its_own_database_login_from_its_secret() -> None:
    all_enabled = CHART / "ci" / "all-enabled-values.yaml"
    assert not _own_logins(render(all_enabled))["ingest"]  # erasure's login is optional
    sets = [f"{c}.{key}.existingSecret={c}-login" for c, (key, _) in OWN_LOGINS.items()]
    found = _own_logins(render(all_enabled, *sets))
    assert set(found) == set(COMPONENTS)
    for component, env in found.items():
        variable = OWN_LOGINS[component][1]
        assert set(env) == {variable}, component  # no pod holds another component's login
        assert env[variable]["valueFrom"]["secretKeyRef"] == {
            "name": f"{component}-login",
            "key": "url",
        }


def test_own_login_variables_are_the_settings_the_components_read() -> None:
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.ingest.settings import IngestSettings
    from aiaudit.integrity.settings import IntegritySettings
    from aiaudit.search.settings import SearchSettings

    url = "postgresql+psycopg://login@db/aiaudit"
    settings = config.load(env={variable: url for _, variable in OWN_LOGINS.values()})
    assert config.section(settings, "ingest", IngestSettings).privacy_database_url == url
    assert config.section(settings, "search", SearchSettings).database_url == url
    assert config.section(settings, "integrity", IntegritySettings).database_url == url
    assert config.section(settings, "alerting", AlertingSettings).database_url == url


@pytest.mark.parametrize(
    ("component", "role"),
    [
        ("search", "aiaudit_consumer"),
        ("integrity", "aiaudit_notary"),
        ("alerting", "aiaudit_alerting"),
    ],
)
def test_a_consumer_without_its_own_login_fails_the_render(component: str, role: str) -> None:
    # The component's suite login is a recorder: it would start and stay unhealthy.
    all_enabled = CHART / "ci" / "all-enabled-values.yaml"
    message = render_fails(f"{component}.database.existingSecret=", values=all_enabled)
    assert f"{component}.database.existingSecret is required" in message
    assert role in message
    # The message once named aiaudit_writer, which these components no longer run as.
    assert f"the suite's login of {component} (aiaudit_recorder" in message
    assert "aiaudit_writer" not in message


@pytest.mark.parametrize("component", COMPONENTS)
def test_an_own_login_with_the_embedded_store_fails_the_render(component: str) -> None:
    key = OWN_LOGINS[component][0]
    message = render_fails(
        "aiaudit.database.embedded=true",
        "aiaudit.tls.enabled=false",
        "aiaudit.config.allow_insecure=true",
        *(f"{c}.replicas=1" for c in COMPONENTS),
        f"{component}.{key}.existingSecret=login",
    )
    assert f"unset {component}'s own database secret" in message


def _effective(deployment: dict[str, Any], config_yaml: str) -> config.Settings:
    """What the component would run with: its config file and its env, read by the services'
    own loader (a value from a Secret stands in as ``secret:<name>/<key>``, a database URL as
    one naming the Secret, since the loader checks its shape: off loopback with
    ``sslmode=verify-full``, as the Secret must hold it)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and e["name"].endswith("DATABASE_URL"):
            env[e["name"]] = (
                f"postgresql+psycopg://{ref['name']}@db/{ref['key']}?sslmode=verify-full"
            )
        else:
            env[e["name"]] = (
                f"secret:{ref['name']}/{ref['key']}" if ref else str(e.get("value", ""))
            )
    values = yaml.safe_load(config_yaml)
    sections = {k: values.pop(k) for k in config.SECTIONS if k in values}
    settings = config._build(config.Settings, values, env, "AIAUDIT_", "")
    return dataclasses.replace(settings, sections=sections, env=env)


def test_the_secrets_configure_what_the_services_read() -> None:
    """Vault signs the notary's checkpoints and OpenSearch serves search, as the values say:
    the chart once set names the code never read, and both fell back to their embedded
    defaults (a throwaway key per pod, an index per pod) without a word."""
    from aiaudit.integrity import settings as integrity_settings
    from aiaudit.search.settings import SearchSettings

    objects = render(CHART / "ci" / "all-enabled-values.yaml")
    (configmap,) = of_kind(objects, "ConfigMap")
    by_component = {component_of(d): d for d in of_kind(objects, "Deployment")}
    effective = {
        name: _effective(d, configmap["data"]["config.yaml"]) for name, d in by_component.items()
    }
    notary = integrity_settings.load(effective["integrity"])
    assert (notary.signer, notary.vault_mount) == ("vault", "transit")
    assert notary.vault_addr.startswith("secret:")
    assert effective["integrity"].env["VAULT_TOKEN"].startswith("secret:")
    search = config.section(effective["search"], "search", SearchSettings)
    assert search.backend == "opensearch" and search.opensearch_url.startswith("secret:")
    assert search.opensearch_password.startswith("secret:")
    assert (
        search.integrity_target(effective["search"].address) == f"{RELEASE}-aiaudit-integrity:50051"
    )
    for other in ("ingest", "search", "alerting"):  # the Vault token is the notary's alone
        assert "VAULT_TOKEN" not in effective[other].env, other


RECORDERS = ("search", "integrity", "alerting")
"""The components that append only the suite's own records: their suite login is a recorder."""


def _suite_login(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Secret a pod's ``AIAUDIT_DATABASE_URL`` comes from."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (url,) = [e for e in container["env"] if e["name"] == "AIAUDIT_DATABASE_URL"]
    return dict(url["valueFrom"]["secretKeyRef"])


def test_search_integrity_and_alerting_run_as_the_recorder_and_ingest_as_the_writer(
    tmp_path: Path,
) -> None:
    """Search, integrity and alerting ran as aiaudit_writer: a compromised pod could append
    forged interactions to any log, which the notary then signed (review, 2026-12-05). Their
    suite login is now a recorder's (revision 0008); ingest keeps the writer's."""
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.integrity import settings as integrity_settings
    from aiaudit.search.settings import SearchSettings

    for sets, recorder in (
        ((), {"name": "aiaudit-recorder-database", "key": "url"}),
        (
            (
                "aiaudit.recorderDatabase.existingSecret=recorder-login",
                "aiaudit.recorderDatabase.key=dsn",
                "aiaudit.database.existingSecret=writer-login",
            ),
            {"name": "recorder-login", "key": "dsn"},
        ),
    ):
        objects = render(ALL_ENABLED, *sets)
        writer = {"name": "writer-login" if sets else "aiaudit-database", "key": "url"}
        by_component = {component_of(d): d for d in of_kind(objects, "Deployment")}
        assert set(by_component) == set(COMPONENTS)
        assert _suite_login(by_component["ingest"]) == writer
        for component in RECORDERS:
            assert _suite_login(by_component[component]) == recorder, component
            # Not the writer's Secret under any other name either.
            text = json.dumps(by_component[component])
            assert f'"name": "{writer["name"]}"' not in text, component
        assert recorder["name"] not in json.dumps(by_component["ingest"])
        # What each component runs with still passes the server's and the services' loaders.
        (configmap,) = of_kind(objects, "ConfigMap")
        effective = {
            name: _effective(d, configmap["data"]["config.yaml"])
            for name, d in by_component.items()
        }
        for name, settings in effective.items():
            login = writer if name == "ingest" else recorder
            assert settings.database_url == (
                f"postgresql+psycopg://{login['name']}@db/{login['key']}?sslmode=verify-full"
            ), name
            config.require_secure_database(
                settings.database_url, "database_url", settings.allow_insecure
            )
        # And as serve loads them, checks included.
        loaded = {
            name: _as_the_server_starts(d, configmap["data"]["config.yaml"], tmp_path)
            for name, d in by_component.items()
        }
        for name, settings in loaded.items():
            assert settings.database_url == SECRET_STAND_INS["DATABASE_URL"], name
        assert integrity_settings.load(loaded["integrity"]).database_url
        search = config.section(loaded["search"], "search", SearchSettings)
        search.validate(loaded["search"].allow_insecure)
        alerting = config.section(loaded["alerting"], "alerting", AlertingSettings)
        alerting.validate(loaded["alerting"].allow_insecure)


def test_ingest_alone_needs_no_recorder_login() -> None:
    """The shipped defaults (ingest only) and the embedded store render without one."""
    for objects in (
        render(None, "aiaudit.recorderDatabase.existingSecret="),
        render(ALL_ENABLED, *(f"{c}.enabled=false" for c in RECORDERS)),
    ):
        (ingest,) = of_kind(objects, "Deployment")
        assert _suite_login(ingest) == {"name": "aiaudit-database", "key": "url"}
        assert "aiaudit-recorder-database" not in json.dumps(objects)
    dev = render(
        CHART / "ci" / "tls-disabled-dev-values.yaml",
        "aiaudit.recorderDatabase.existingSecret=",
        "ingest.enabled=false",
        "search.enabled=true",
    )
    (search,) = of_kind(dev, "Deployment")
    env = search["spec"]["template"]["spec"]["containers"][0].get("env", [])
    assert "AIAUDIT_DATABASE_URL" not in {e["name"] for e in env}


@pytest.mark.parametrize("component", RECORDERS)
def test_a_recorder_without_its_login_fails_the_render(component: str) -> None:
    """Secure default: no fallback to the writer's login when the recorder's is unset."""
    others = [f"{c}.enabled=false" for c in RECORDERS if c != component]
    message = render_fails("aiaudit.recorderDatabase.existingSecret=", *others, values=ALL_ENABLED)
    assert f"aiaudit.recorderDatabase.existingSecret is required with {component} " in message
    assert "aiaudit_recorder" in message


def test_every_component_seals_content_with_the_transit_key_by_default() -> None:
    """The shipped defaults seal content in Vault's key; each component gets the content token
    under a name of its own, so the notary's VAULT_TOKEN stays the notary's."""
    from aiaudit.common.keys import configured
    from aiaudit.common.keys.transit import TransitKek

    for values in (None, CHART / "ci" / "all-enabled-values.yaml"):
        objects = render(values)
        (configmap,) = of_kind(objects, "ConfigMap")
        for deployment in of_kind(objects, "Deployment"):
            settings = _effective(deployment, configmap["data"]["config.yaml"])
            assert settings.content_keys == "vault", component_of(deployment)
            assert settings.content_vault_addr == "secret:aiaudit-content-keys/address"
            token = settings.env["AIAUDIT_CONTENT_VAULT_TOKEN"]
            assert token == "secret:aiaudit-content-keys/token"
            ring = configured.keyring(settings)
            assert ring is not None and isinstance(ring.kek, TransitKek)
            assert ring.kek.name == "vault:transit/aiaudit-content"


def test_content_in_clear_needs_saying_so() -> None:
    message = render_fails("aiaudit.contentKeys.existingSecret=")
    assert "aiaudit.contentKeys.existingSecret is required to seal stored content" in message
    # Saying so is enough: the default Secret name no longer turns it back into vault
    # (found by a review).
    for clear in (("aiaudit.contentKeys.existingSecret=",), ()):
        objects = render(None, *clear, "aiaudit.config.content_keys=none")
        (configmap,) = of_kind(objects, "ConfigMap")
        assert yaml.safe_load(configmap["data"]["config.yaml"])["content_keys"] == "none"
        for deployment in of_kind(objects, "Deployment"):
            env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
            assert not any(e["name"].startswith("AIAUDIT_CONTENT_") for e in env)
    token = render_fails("aiaudit.config.content_vault_token_file=/x")
    assert "give the path as aiaudit.contentKeys.tokenFile" in token


def test_checkpoints_go_to_the_claim_given_for_them() -> None:
    """The WORM copy outlives the pod only on a volume of its own (else the pod's emptyDir)."""
    from aiaudit.integrity import settings as integrity_settings

    values = CHART / "ci" / "all-enabled-values.yaml"
    objects = render(values, "integrity.checkpoints.existingClaim=aiaudit-worm")
    (configmap,) = of_kind(objects, "ConfigMap")
    (notary,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "integrity"]
    pod = notary["spec"]["template"]["spec"]
    (claim,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"]["claimName"] == "aiaudit-worm"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    settings = _effective(notary, configmap["data"]["config.yaml"])
    directory = integrity_settings.checkpoint_dir(settings, integrity_settings.load(settings))
    assert str(directory) == mounts[claim["name"]]
    others = [d for d in of_kind(objects, "Deployment") if component_of(d) != "integrity"]
    assert not any("persistentVolumeClaim" in v for d in others for v in _volumes(d))


def _volumes(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["volumes"])


def test_the_dev_values_need_no_secret() -> None:
    """The Tiltfile deploys these on a fresh local cluster, where no Secret exists: a pod
    that mounts one never starts."""
    objects = render(
        CHART / "ci" / "tls-disabled-dev-values.yaml",
        "ingest.extraArgs[0]=--services",
        "ingest.extraArgs[1]=ingest\\,search",  # as the Tiltfile sets them
    )
    (pod,) = [d["spec"]["template"]["spec"] for d in of_kind(objects, "Deployment")]
    assert pod["containers"][0]["args"][-2:] == ["--services", "ingest,search"]
    text = yaml.safe_dump(objects)
    assert "secretName" not in text and "secretKeyRef" not in text
    (configmap,) = of_kind(objects, "ConfigMap")
    assert "api_keys_file" not in yaml.safe_load(configmap["data"]["config.yaml"])


DIGEST = "sha256:" + "a" * 64
OWN_DIGEST = "sha256:" + "b" * 64


def _images(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The image of each workload's container, by component (``migrate`` for the Job)."""
    return {
        component_of(o): o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def test_an_image_digest_pins_every_pod_and_a_component_may_pin_its_own() -> None:
    """A tag can be pushed again, so an audit log deployed by tag may run another build than
    the one reviewed: with no way to name a digest, every pod ran ``repository:tag``."""
    objects = render(
        CHART / "ci" / "all-enabled-values.yaml",
        f"aiaudit.image.digest={DIGEST}",
        f"integrity.image.digest={OWN_DIGEST}",
        "search.image.tag=2.0.1",
    )
    repo = "registry.example.internal/aiaudit"
    assert _images(objects) == {
        "migrate": f"{repo}@{DIGEST}",
        "ingest": f"{repo}@{DIGEST}",
        "alerting": f"{repo}@{DIGEST}",
        "integrity": f"{repo}@{OWN_DIGEST}",
        "search": f"{repo}:2.0.1",  # its own tag over the shared digest
    }
    assert set(_images(render()).values()) == {"aiaudit:0.1.0"}  # no digest: the appVersion tag


@pytest.mark.parametrize(
    "setting", ["aiaudit.image.digest=latest", "ingest.image.digest=sha256:abc"]
)
def test_what_is_not_a_digest_fails_the_render(setting: str) -> None:
    name, _, value = setting.partition("=")
    assert f'{name} "{value}" is not a digest' in render_fails(setting)


def _tilt(chosen: list[str]) -> SimpleNamespace:
    """What the Tiltfile asks of helm and Tilt for ``tilt up -- <chosen>``: the Tiltfile run
    as the Python its Starlark is, Tilt's builtins recording their calls."""
    calls: dict[str, Any] = {"resources": []}

    def helm(chart: str, **kwargs: Any) -> str:
        calls["helm"] = (chart, kwargs)
        return "rendered"

    def k8s_resource(name: str, **kwargs: Any) -> None:
        calls["resources"].append(name)

    def fail(message: str) -> None:
        raise AssertionError(message)

    tilt_config = SimpleNamespace(
        define_string_list=lambda *a, **k: None, parse=lambda: {"components": chosen}
    )
    builtins = {
        "load": lambda *a: None,
        "docker_build_with_restart": lambda *a, **k: None,
        "fall_back_on": lambda *a: None,
        "sync": lambda *a: None,
        "config": tilt_config,
        "fail": fail,
        "helm": helm,
        "k8s_yaml": lambda *a: None,
        "k8s_resource": k8s_resource,
    }
    exec(compile((REPO / "Tiltfile").read_text(), "Tiltfile", "exec"), builtins)
    chart, kwargs = calls["helm"]
    assert Path(chart) == CHART.relative_to(REPO)
    (values,) = kwargs["values"]
    args = ["template", kwargs["name"], str(CHART), "-f", str(REPO / values)]
    for item in kwargs["set"]:
        args += ["--set", item]
    out = _helm(*args)
    assert out.returncode == 0, f"helm template failed:\n{out.stderr}"
    objects = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    return SimpleNamespace(objects=objects, resources=calls["resources"])


@pytest.mark.parametrize(
    "chosen",
    [
        ["ingest"],
        ["search"],
        ["integrity", "alerting"],
        ["search", "integrity"],
        ["alerting", "ingest"],
    ],
)
def test_the_tilt_dev_pod_serves_the_chosen_components_and_becomes_ready(
    chosen: list[str],
) -> None:
    """The pod's readiness probe asks for its component's own service: with ingest's pod
    always serving the chosen components, ``tilt up -- search`` served search alone, the probe
    asked for IngestService and the pod was never ready."""
    from aiaudit.cli.main import build_parser

    tilt = _tilt(chosen)
    (deployment,) = of_kind(tilt.objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    served = build_parser().parse_args(container["args"]).services.split(",")
    assert sorted(served) == sorted(chosen)
    ready = container["readinessProbe"]["grpc"]["service"]
    own = {c: s for c in COMPONENTS for s in proto_services() if f".{c}." in s}
    assert ready in {own[c] for c in served}, (ready, served)
    assert tilt.resources == [deployment["metadata"]["name"]]
    if "search" in served and "integrity" in served:  # search calls the integrity beside it
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("AIAUDIT_SEARCH_INTEGRITY_ADDRESS") != "none"


@ci_files
def test_every_object_fits_the_kubernetes_api(values: Path) -> None:
    """No misspelt, mistyped or missing field: helm renders those, the API server refuses them."""
    objects = render(values)
    assert objects
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []


def test_the_api_check_names_each_field_that_does_not_fit() -> None:
    deployment = copy.deepcopy(of_kind(render(), "Deployment")[0])
    assert kube_schema.problems(deployment) == []
    deployment["spec"]["replicas"] = "2"
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["readinesProbe"] = pod["containers"][0].pop("readinessProbe")
    del pod["containers"][0]["name"]
    pod["containers"][0]["ports"][0]["containerPort"] = True
    where = "Deployment.spec.template.spec.containers.0"
    assert kube_schema.problems(deployment) == [
        "Deployment.spec.replicas: Input should be a valid integer",
        f"{where}.name: Field required",
        f"{where}.ports.0.containerPort: Input should be a valid integer",
        f"{where}.readinesProbe: Extra inputs are not permitted",
    ]
    assert kube_schema.problems({"apiVersion": "apps/v1", "kind": "Deploymnt"}) == [
        "apps/v1 Deploymnt: no such kind in the API (V1Deploymnt)"
    ]


def test_the_pseudonym_key_reaches_ingest_alone_as_the_file_it_reads() -> None:
    """``pseudonymise`` needs one key in every ingest pod: a key made in a pod died with it."""
    from aiaudit.ingest import settings as ingest_settings

    objects = render(
        None,
        "aiaudit.config.ingest.ip_address=pseudonymise",
        "ingest.ipPseudonymKey.existingSecret=ip-key",
        "ingest.ipPseudonymKey.key=bytes",
    )
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []
    (configmap,) = of_kind(objects, "ConfigMap")
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        if component_of(deployment) != "ingest":
            assert "ip-pseudonym-key" not in volumes and "ip-pseudonym-key" not in mounts
            continue
        secret = volumes["ip-pseudonym-key"]["secret"]
        assert secret == {
            "secretName": "ip-key",
            "defaultMode": 0o440,
            "items": [{"key": "bytes", "path": "key"}],
        }
        assert mounts["ip-pseudonym-key"]["readOnly"] is True
        own = ingest_settings.load(_effective(deployment, configmap["data"]["config.yaml"]))
        assert own.ip_address == "pseudonymise"
        mounted = Path(mounts["ip-pseudonym-key"]["mountPath"]) / "key"
        assert own.ip_pseudonym_key_file == mounted


def test_retention_per_tenant_reaches_ingest_as_its_settings_read_it(tmp_path: Path) -> None:
    """``aiaudit.config.ingest.content_retention_by_tenant`` renders into the config file as
    the map ingest reads, a numeric-looking tenant id kept a string (YAML would read ``007``
    unquoted as the number 7, naming no tenant)."""
    from aiaudit.common import retention
    from aiaudit.common.v1 import event_pb2
    from aiaudit.ingest import settings as ingest_settings

    policy = {
        "acme": {"days": 7, "by_classification": {"restricted": 1}},
        "007": {"days": 0},
    }
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "aiaudit": {
                    "config": {
                        "ingest": {
                            "content_retention_days": 30,
                            "content_retention_by_tenant": policy,
                        }
                    }
                },
                "ingest": {"privacyDatabase": {"existingSecret": "privacy-login"}},
            }
        )
    )
    objects = render(values)
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []
    (configmap,) = of_kind(objects, "ConfigMap")
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "ingest"]
    own = ingest_settings.load(_effective(deployment, configmap["data"]["config.yaml"]))
    assert own.content_retention_days == 30
    assert own.content_retention_by_tenant == {
        "acme": retention.Policy(7, {event_pb2.DATA_CLASSIFICATION_RESTRICTED: 1}),
        "007": retention.Policy(0),
    }


KEEPALIVE = (
    "keepalive_time_seconds",
    "keepalive_timeout_seconds",
    "keepalive_min_client_ping_seconds",
)


def test_the_server_keepalive_is_in_the_values_with_the_server_defaults() -> None:
    """The server's HTTP/2 keepalive could only be changed by an ``extraEnv`` per component:
    behind a load balancer dropping flows idle under 30 s, or with clients pinging more often
    than every 10 s, a release had no value to say so. The values hold the server's own
    defaults, documented in the chart README, and reach every component."""
    from aiaudit.cli.server import keepalive_options

    defaults = config.Settings()
    readme = (CHART / "README.md").read_text()
    for key in KEEPALIVE:
        assert f"| aiaudit.config.{key} | int | `{getattr(defaults, key):g}` |" in readme, key
    given = {
        "keepalive_time_seconds": 120,
        "keepalive_timeout_seconds": 20,
        "keepalive_min_client_ping_seconds": 5,
    }
    for sets, expected in (
        ((), {k: getattr(defaults, k) for k in KEEPALIVE}),
        (tuple(f"aiaudit.config.{k}={v}" for k, v in given.items()), given),
    ):
        objects = render(CHART / "ci" / "all-enabled-values.yaml", *sets)
        (configmap,) = of_kind(objects, "ConfigMap")
        written = yaml.safe_load(configmap["data"]["config.yaml"])
        assert {k: written[k] for k in KEEPALIVE} == expected
        deployments = of_kind(objects, "Deployment")
        assert {component_of(d) for d in deployments} == set(COMPONENTS)
        for deployment in deployments:
            settings = _effective(deployment, configmap["data"]["config.yaml"])
            assert {k: getattr(settings, k) for k in KEEPALIVE} == expected
            options = dict(keepalive_options(settings))
            assert options["grpc.keepalive_time_ms"] == expected["keepalive_time_seconds"] * 1000


def test_a_rotated_api_keys_secret_reaches_the_running_pods() -> None:
    """The server reads ``api_keys_file`` again when it changes (``auth.KeysFile``), so a
    revoked key is refused without a restart; that holds in a pod only while the Secret is
    mounted as a directory, whose ``..data`` symlink kubelet swaps on a change. A file
    mounted with ``subPath`` is never updated, and the pods' checksum annotation covers
    the ConfigMap only, so no restart would bring the new keys either (review, 2026-12-05).
    """
    for values in (None, CHART / "ci" / "all-enabled-values.yaml"):
        objects = render(values)
        (configmap,) = of_kind(objects, "ConfigMap")
        deployments = of_kind(objects, "Deployment")
        assert deployments
        for deployment in deployments:
            pod = deployment["spec"]["template"]["spec"]
            (volume,) = [v for v in pod["volumes"] if v["name"] == "api-keys"]
            assert volume["secret"]["secretName"] == "aiaudit-api-keys"
            ((item,),) = [volume["secret"]["items"]]
            for container in pod["containers"] + pod.get("initContainers", []):
                for mount in container.get("volumeMounts", []):
                    if mount["name"] == "api-keys":
                        assert "subPath" not in mount and "subPathExpr" not in mount, mount
            (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys"]
            settings = _effective(deployment, configmap["data"]["config.yaml"])
            assert settings.api_keys_file == Path(mount["mountPath"]) / item["path"]


BACKEND_CA = "/etc/aiaudit/backend-ca/ca.crt"
"""Where ``aiaudit.backendCA`` lands in every pod (the values document the path)."""
BACKEND_CA_VARIABLES = ("PGSSLROOTCERT", "VAULT_CACERT", "AIAUDIT_SEARCH_OPENSEARCH_CA_FILE")
"""The variables naming it to libpq, hvac and search's OpenSearch client."""
SECRET_STAND_INS = {
    "DATABASE_URL": "postgresql+psycopg://login@db.internal:5432/aiaudit?sslmode=verify-full",
    "VAULT_ADDR": "https://vault.internal:8200",
    "OPENSEARCH_URL": "https://opensearch.internal:9200",
    "WEBHOOK_URL": "https://hooks.example.com/aiaudit",  # an alert sink, not a backend
}
"""What the Secrets hold, as the values ask: backends on other hosts over verified TLS, the
database URL saying only ``sslmode`` (the CA comes from ``PGSSLROOTCERT``)."""


def _workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template that reaches a backend: the Deployments by component, the Job."""
    out = {component_of(d): d for d in of_kind(objects, "Deployment")}
    (job,) = of_kind(objects, "Job")
    return {**out, "migrate": job}


def _backend_ca_of(workload: dict[str, Any]) -> tuple[Any, Any, dict[str, str]]:
    """The CA's volume and mount (None if absent) and the CA variables of the container."""
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = [v for v in pod["volumes"] if v["name"] == "backend-ca"]
    mounts = [m for m in container["volumeMounts"] if m["name"] == "backend-ca"]
    assert len(volumes) <= 1 and len(mounts) <= 1
    env = {
        e["name"]: e.get("value")
        for e in container.get("env", [])
        if e["name"] in BACKEND_CA_VARIABLES
    }
    return (volumes or [None])[0], (mounts or [None])[0], env


def test_the_backend_ca_reaches_every_pod_and_each_client() -> None:
    """7b06597 made the server refuse a backend off loopback without verified TLS, and the
    chart had no way to give the pods the CA of a private PostgreSQL, Vault or OpenSearch
    certificate: the choice left was allow_insecure (review)."""
    objects = render(ALL_ENABLED, "aiaudit.backendCA.key=bundle.pem")
    workloads = _workloads(objects)
    assert set(workloads) == {*COMPONENTS, "migrate"}
    for name, workload in workloads.items():
        volume, mount, env = _backend_ca_of(workload)
        assert volume == {
            "name": "backend-ca",
            "secret": {
                "secretName": "aiaudit-backend-ca",
                "defaultMode": 0o444,
                "items": [{"key": "bundle.pem", "path": "ca.crt"}],
            },
        }, name
        assert mount == {
            "name": "backend-ca",
            "mountPath": str(Path(BACKEND_CA).parent),
            "readOnly": True,
        }, name
        expected = {"PGSSLROOTCERT": BACKEND_CA}  # the Job reaches PostgreSQL alone
        if name != "migrate":
            expected["VAULT_CACERT"] = BACKEND_CA  # the content key's Vault, the notary's
        if name == "search":
            expected["AIAUDIT_SEARCH_OPENSEARCH_CA_FILE"] = BACKEND_CA
        assert env == expected, name
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []


@pytest.mark.parametrize(
    "sets",
    [(), ("aiaudit.backendCA.existingSecret=",)],
    ids=["default", "all-enabled-without"],
)
def test_no_backend_ca_mounts_nothing_and_names_nothing(sets: tuple[str, ...]) -> None:
    objects = render(ALL_ENABLED if sets else None, *sets)
    workloads = of_kind(objects, "Deployment") + of_kind(objects, "Job")
    assert workloads
    for workload in workloads:
        assert _backend_ca_of(workload) == (None, None, {}), workload["metadata"]["name"]


def test_a_ca_the_operator_names_wins_over_the_backend_ca() -> None:
    """Search's OpenSearch CA from the config or an extraEnv, a per-component variable: the
    chart's own is left out rather than set twice (which one Kubernetes keeps is no promise)."""
    objects = render(
        ALL_ENABLED,
        "aiaudit.config.search.opensearch_ca_file=/etc/aiaudit/ca/opensearch.pem",
        "integrity.extraEnv[0].name=VAULT_CACERT",
        "integrity.extraEnv[0].value=/etc/aiaudit/ca/vault.pem",
    )
    workloads = _workloads(objects)
    assert "AIAUDIT_SEARCH_OPENSEARCH_CA_FILE" not in _backend_ca_of(workloads["search"])[2]
    (container,) = workloads["integrity"]["spec"]["template"]["spec"]["containers"]
    assert [e.get("value") for e in container["env"] if e["name"] == "VAULT_CACERT"] == [
        "/etc/aiaudit/ca/vault.pem"
    ]
    assert _backend_ca_of(workloads["alerting"])[2]["VAULT_CACERT"] == BACKEND_CA


def _mount_modes(workload: dict[str, Any]) -> dict[str, int]:
    """Each Secret volume's mount path to the mode of its files (kubelet's 0644 unless
    the volume says)."""
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    paths = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    return {
        paths[v["name"]]: v["secret"].get("defaultMode", 0o644)
        for v in pod.get("volumes", [])
        if "secret" in v and v["name"] in paths
    }


def _as_the_server_starts(
    workload: dict[str, Any],
    config_yaml: str | None,
    tmp_path: Path,
    files: dict[str, Path] | None = None,
) -> config.Settings:
    """``config.load`` of a pod's config file and env, as ``serve`` (or ``db migrate``) runs
    it: each Secret as ``SECRET_STAND_INS`` says, files at stand-in paths in ``tmp_path``
    (the server checks they exist), and a variable naming a path of ``files`` (an in-pod
    path: its stand-in) at that stand-in."""
    files = files or {}
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    ca = tmp_path / "backend-ca.crt"
    ca.write_text("pem")
    env = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            kind = next((k for k in SECRET_STAND_INS if e["name"].endswith(k)), None)
            env[e["name"]] = (
                SECRET_STAND_INS[kind] if kind else f"secret:{ref['name']}/{ref['key']}"
            )
        else:
            value = str(e["value"])
            env[e["name"]] = str(ca) if value == BACKEND_CA else str(files.get(value, value))
    config_file = None
    if config_yaml is not None:
        settings = yaml.safe_load(config_yaml)
        modes = _mount_modes(workload)
        for key in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "api_keys_file"):
            if key in settings:
                stand_in = tmp_path / Path(settings[key]).name
                stand_in.unlink(missing_ok=True)
                stand_in.write_text("keys: []\n" if key == "api_keys_file" else "pem")
                # as kubelet projects it: the server refuses a key other users may read
                stand_in.chmod(modes.get(str(Path(settings[key]).parent), 0o644))
                settings[key] = str(stand_in)
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(settings))
    return config.load(config_file, env=env)


def test_with_the_backend_ca_every_pod_passes_the_servers_backend_checks(
    tmp_path: Path,
) -> None:
    """Each component's settings (and the Job's), read and checked by the server's own code,
    pass its verified-TLS checks with URLs that say only ``sslmode=verify-full``; search
    checks OpenSearch's certificates against the mounted CA."""
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.ingest import settings as ingest_settings
    from aiaudit.integrity import settings as integrity_settings
    from aiaudit.search.settings import SearchSettings

    objects = render(
        ALL_ENABLED, *(f"{c}.{k}.existingSecret={c}-login" for c, (k, _) in OWN_LOGINS.items())
    )
    (configmap,) = of_kind(objects, "ConfigMap")
    config_yaml = configmap["data"]["config.yaml"]
    loaded = {
        name: _as_the_server_starts(workload, None if name == "migrate" else config_yaml, tmp_path)
        for name, workload in _workloads(objects).items()
    }
    for name, settings in loaded.items():
        assert settings.database_url == SECRET_STAND_INS["DATABASE_URL"], name
        assert not settings.allow_insecure, name
        if name != "migrate":
            assert settings.content_vault_addr == SECRET_STAND_INS["VAULT_ADDR"], name
    privacy = ingest_settings.load(loaded["ingest"]).privacy_database_url
    assert privacy == SECRET_STAND_INS["DATABASE_URL"]
    notary = integrity_settings.load(loaded["integrity"])
    assert notary.vault_addr == SECRET_STAND_INS["VAULT_ADDR"]
    assert notary.database_url == SECRET_STAND_INS["DATABASE_URL"]
    search = config.section(loaded["search"], "search", SearchSettings)
    search.validate(loaded["search"].allow_insecure)
    assert search.database_url == SECRET_STAND_INS["DATABASE_URL"]
    assert search.opensearch_url == SECRET_STAND_INS["OPENSEARCH_URL"]
    assert search.opensearch_verify_certs is True
    assert search.opensearch_ca_file == tmp_path / "backend-ca.crt"  # the mounted CA's stand-in
    alerting = config.section(loaded["alerting"], "alerting", AlertingSettings)
    alerting.validate(loaded["alerting"].allow_insecure)
    assert alerting.database_url == SECRET_STAND_INS["DATABASE_URL"]
    # The checks are live: the same pod with a URL that does not say sslmode stops at start.
    env = {"AIAUDIT_DATABASE_URL": "postgresql+psycopg://login@db.internal/aiaudit"}
    with pytest.raises(config.ConfigError, match="sslmode=verify-full"):
        config.load(env=env)


def test_the_backend_ca_variables_are_the_ones_libpq_and_hvac_read(tmp_path: Path) -> None:
    """The pods' PGSSLROOTCERT and VAULT_CACERT, in a process of their own (hvac reads its
    variable at import): this libpq (psycopg's own) takes the CA as ``sslrootcert``, and the
    Vault client the server builds checks certificates against it."""
    objects = render(ALL_ENABLED)
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    (container,) = _workloads(objects)["integrity"]["spec"]["template"]["spec"]["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "VAULT_", "REQUESTS_CA"))}
    for e in container["env"]:
        if e["name"] in ("PGSSLROOTCERT", "VAULT_CACERT"):
            assert e["value"] == BACKEND_CA
            env[e["name"]] = str(ca)
    probe = (
        "import json, psycopg\n"
        "from aiaudit.common.keys import configured\n"
        "libpq = {o.keyword.decode(): (o.val or b'').decode()"
        " for o in psycopg.pq.Conninfo.get_defaults()}\n"
        "vault = configured.vault_client('https://vault.internal:8200', None,"
        " {'VAULT_TOKEN': 't'}, 5.0, 'content_vault_token_file')\n"
        "print(json.dumps([libpq['sslrootcert'], vault.adapter._kwargs['verify']]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [str(ca), str(ca)]


def test_the_migration_job_has_the_components_opt_out() -> None:
    """``db migrate`` checks its URL as serve does and the Job reads no config file: with
    allow_insecure the components started and the migration stopped at exit 2 (review)."""
    (job,) = of_kind(render(None, "aiaudit.config.allow_insecure=true"), "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AIAUDIT_ALLOW_INSECURE"] == {"name": "AIAUDIT_ALLOW_INSECURE", "value": "true"}
    plain = "postgresql+psycopg://admin@db.internal/aiaudit"
    loaded = config.load(env={"AIAUDIT_DATABASE_URL": plain, "AIAUDIT_ALLOW_INSECURE": "true"})
    assert loaded.allow_insecure
    (job,) = of_kind(render(None), "Job")
    names = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AIAUDIT_ALLOW_INSECURE" not in names


SHARED_TLS = "aiaudit-tls"
"""``aiaudit.tls.existingSecret`` as shipped: the certificate of every component without its own."""
OWN_TLS = {c: f"{c}-own-tls" for c in COMPONENTS}
"""A ``<component>.tls.existingSecret`` per component, as a test sets them."""
TLS_DIR = "/etc/aiaudit/tls"
"""Where each pod mounts its certificate (``tls_cert_file`` and the others name files there)."""


def _tls_volume(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Secret volume mounted at the TLS directory the config file names."""
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == TLS_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return dict(volume["secret"])


def _tls_secrets_of(deployment: dict[str, Any]) -> set[str]:
    """Every TLS Secret (shared or any component's own) the pod references, however mounted."""
    text = json.dumps(deployment["spec"]["template"])
    return {name for name in (SHARED_TLS, *OWN_TLS.values()) if f'"{name}"' in text}


def test_each_component_mounts_its_own_certificate_and_no_other() -> None:
    """One Secret in every pod put the same private key in each: a compromised search pod
    could serve as integrity, or present its client certificate (review, 2026-12-05). A
    component given its own Secret mounts that one alone, with the shared key names unless it
    names others; one without keeps the shared Secret."""
    objects = render(
        ALL_ENABLED,
        *(f"{c}.tls.existingSecret={OWN_TLS[c]}" for c in ("ingest", "search", "integrity")),
        "integrity.tls.certKey=notary.pem",
        "integrity.tls.keyKey=notary.key",
        "integrity.tls.caKey=bundle.pem",
    )
    assert [p for obj in objects for p in kube_schema.problems(obj)] == []
    expected = {
        "ingest": (OWN_TLS["ingest"], "tls.crt", "tls.key", "ca.crt"),
        "search": (OWN_TLS["search"], "tls.crt", "tls.key", "ca.crt"),
        "integrity": (OWN_TLS["integrity"], "notary.pem", "notary.key", "bundle.pem"),
        "alerting": (SHARED_TLS, "tls.crt", "tls.key", "ca.crt"),
    }
    deployments = {component_of(d): d for d in of_kind(objects, "Deployment")}
    assert set(deployments) == set(COMPONENTS)
    for component, deployment in deployments.items():
        secret, cert, key, ca = expected[component]
        assert _tls_volume(deployment) == {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [
                {"key": cert, "path": "tls.crt"},
                {"key": key, "path": "tls.key"},
                {"key": ca, "path": "ca.crt"},
            ],
        }, component
        assert _tls_secrets_of(deployment) == {secret}, component
    (configmap,) = of_kind(objects, "ConfigMap")
    for component, deployment in deployments.items():  # the files the server reads are there
        settings = _effective(deployment, configmap["data"]["config.yaml"])
        assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file) == (
            Path(TLS_DIR, "tls.crt"),
            Path(TLS_DIR, "tls.key"),
            Path(TLS_DIR, "ca.crt"),
        ), component


def test_with_a_certificate_for_every_component_the_shared_one_may_be_empty() -> None:
    objects = render(
        ALL_ENABLED,
        *(f"{c}.tls.existingSecret={OWN_TLS[c]}" for c in COMPONENTS),
        "aiaudit.tls.existingSecret=",
    )
    deployments = of_kind(objects, "Deployment")
    assert {component_of(d): _tls_secrets_of(d) for d in deployments} == {
        c: {OWN_TLS[c]} for c in COMPONENTS
    }
    assert SHARED_TLS not in _render_text(
        (ALL_ENABLED,),
        (
            *(f"{c}.tls.existingSecret={OWN_TLS[c]}" for c in COMPONENTS),
            "aiaudit.tls.existingSecret=",
        ),
    )


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("aiaudit.tls.existingSecret=",),  # the ci file gives alerting none of its own
            "for the components without a certificate of their own "
            "(<component>.tls.existingSecret): alerting",
        ),
        (
            ("alerting.tls.certKey=alerting.pem",),
            "alerting.tls.certKey names a key of alerting.tls.existingSecret, which is unset",
        ),
        (
            ("aiaudit.tls.enabled=false", "aiaudit.config.allow_insecure=true"),
            "ingest.tls.existingSecret is set but aiaudit.tls.enabled=false",
        ),
    ],
    ids=["shared-missing-for-some", "key-without-its-secret", "own-certificate-unused"],
)
def test_a_certificate_that_would_not_be_used_as_meant_fails_the_render(
    sets: tuple[str, ...], message: str
) -> None:
    """The shared Secret is needed by the components without their own alone, and the message
    names them; the other two rendered before the values existed, and would now: a key name
    with no Secret of the component's own would go unused while the shared Secret is mounted,
    and a certificate given with TLS off would be served by nobody."""
    assert message in render_fails(*sets, values=ALL_ENABLED)


def _mount_secrets(
    deployment: dict[str, Any], secrets: dict[str, dict[str, bytes]], root: Path
) -> Path:
    """The pod's Secret volumes written under ``root`` as kubelet projects them (each item's
    key read from the named Secret, at its path under the mount); returns ``root``, which
    stands for the pod's ``/``, each file with its mode. A Secret or key missing from
    ``secrets`` fails, as the pod would not start."""
    pod = deployment["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    for volume in pod["volumes"]:
        secret = volume.get("secret")
        if secret is None or mounts[volume["name"]] != TLS_DIR:
            continue
        for item in secret["items"]:
            target = root / TLS_DIR.lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(secrets[secret["secretName"]][item["key"]])
            # kubelet's mode (644 unless the chart says): the server refuses a key others read
            target.chmod(item.get("mode", secret.get("defaultMode", 0o644)))
    return root


def _in_pod(root: Path, path: Path | None) -> Path | None:
    """A path of the pod's filesystem, where ``_mount_secrets`` put it."""
    return None if path is None else root / str(path).lstrip("/")


@pytest.mark.parametrize("mutual", [True, False], ids=["mtls", "tls"])
def test_search_reaches_integrity_with_certificates_of_their_own(
    tmp_path: Path, tenant: str, mutual: bool
) -> None:
    """Per-component certificates from one CA, each Secret as cert-manager writes it: the
    integrity server built from its pod's settings admits search's own client certificate
    (under mTLS) and search's channel, built from its pod's settings by search's own code,
    trusts integrity's certificate. Without mTLS search used to trust its own certificate
    (``tls_cert_file``) as integrity's, which held only while both had the same one: the chart
    now names the CA of search's Secret to it (``AIAUDIT_SEARCH_INTEGRITY_CA_FILE``). A
    certificate for serving alone (ingest's) is refused as a client's, and one of the same
    CA with ``client auth`` (alerting's) by the rendered ``integrity.client_names``."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from aiaudit.common.component import Context
    from aiaudit.search.component import integrity_channel
    from aiaudit.search.integrity_client import IntegrityClient
    from aiaudit.search.settings import SearchSettings
    from tests.conftest import serve_suite
    from tests.contract.test_tls import _issue
    from tests.helpers import open_log

    pki = tmp_path / "pki"
    pki.mkdir()
    ca = _issue(pki, "ca", [], None)
    secrets = {}
    for component in COMPONENTS:
        usage = [ExtendedKeyUsageOID.SERVER_AUTH]
        if component in ("search", "alerting"):  # search calls integrity; alerting by mistake
            usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        _issue(pki, component, usage, ca, _service_names(component))
        secrets[OWN_TLS[component]] = {
            "tls.crt": (pki / f"{component}.pem").read_bytes(),
            "tls.key": (pki / f"{component}.key").read_bytes(),
            "ca.crt": (pki / "ca.pem").read_bytes(),
        }
    objects = render(
        ALL_ENABLED,
        *(f"{c}.tls.existingSecret={OWN_TLS[c]}" for c in COMPONENTS),
        "integrity.tls.certKey=",
        "integrity.tls.keyKey=",
        f"aiaudit.tls.mutual={str(mutual).lower()}",
    )
    (configmap,) = of_kind(objects, "ConfigMap")
    deployments = {component_of(d): d for d in of_kind(objects, "Deployment")}
    pods = {
        c: _mount_secrets(deployments[c], secrets, tmp_path / c)
        for c in ("search", "integrity", "ingest")
    }
    settings = {c: _effective(deployments[c], configmap["data"]["config.yaml"]) for c in pods}
    own = {
        c: dataclasses.replace(
            s,
            tls_cert_file=_in_pod(pods[c], s.tls_cert_file),
            tls_key_file=_in_pod(pods[c], s.tls_key_file),
            tls_client_ca_file=_in_pod(pods[c], s.tls_client_ca_file),
        )
        for c, s in settings.items()
    }
    assert (own["integrity"].tls_client_ca_file is not None) is mutual
    notary = own["integrity"]
    tls: dict[str, object] = {
        "tls_cert_file": notary.tls_cert_file,
        "tls_key_file": notary.tls_key_file,
    }
    if notary.tls_client_ca_file is not None:
        tls["tls_client_ca_file"] = notary.tls_client_ca_file
    (tmp_path / "notary").mkdir()
    section = tmp_path / "notary" / "integrity.yaml"  # the rendered section: its client_names
    section.write_text(yaml.safe_dump({"integrity": notary.sections.get("integrity", {})}))
    suite, keys = serve_suite(tmp_path / "notary", section, services=("integrity",), **tls)
    try:
        open_log(suite.store, tenant)  # a read through `*` of a tenant with no log: NOT_FOUND
        search = config.section(settings["search"], "search", SearchSettings)
        search = dataclasses.replace(
            search, integrity_ca_file=_in_pod(pods["search"], search.integrity_ca_file)
        )
        # integrity_channel reads nothing of its context but the server's settings.
        channel = integrity_channel(search, cast(Context, SimpleNamespace(settings=own["search"])))
        assert channel is not None
        assert channel.target == f"{RELEASE}-aiaudit-integrity:50051"
        assert channel.identity == (
            (own["search"].tls_cert_file, own["search"].tls_key_file) if mutual else None
        )
        # The pod's address is the Service's; here the notary listens on loopback (its
        # certificate names 127.0.0.1).
        address = f"127.0.0.1:{suite.port}"
        md = (("authorization", f"Bearer {keys['admin']}"),)
        notary_client = IntegrityClient(address, channel.ca_file, 10.0, channel.identity)
        try:
            assert notary_client.latest_checkpoint(md, tenant) is None  # answered: no checkpoint
        finally:
            notary_client.close()
        if mutual:
            ingest = own["ingest"]
            assert ingest.tls_cert_file and ingest.tls_key_file
            identity = (ingest.tls_cert_file, ingest.tls_key_file)
            stranger = IntegrityClient(address, channel.ca_file, 10.0, identity)
            try:
                with pytest.raises(grpc.RpcError) as refused:
                    stranger.latest_checkpoint(md, tenant)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                stranger.close()
            # One with `client auth` from the same CA passes the handshake, but names none
            # of search's Services: refused by integrity.client_names.
            alerting = (pki / "alerting.pem", pki / "alerting.key")
            stranger = IntegrityClient(address, channel.ca_file, 10.0, alerting)
            try:
                with pytest.raises(grpc.RpcError) as refused:
                    stranger.latest_checkpoint(md, tenant)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert f"{RELEASE}-aiaudit-alerting" in refused.value.details()
            finally:
                stranger.close()
    finally:
        suite.stop()


def _service_names(component: str) -> tuple[str, ...]:
    """The DNS names of a component's Services, as its own certificate's SANs list them."""
    name = f"{RELEASE}-aiaudit-{component}"
    return (name, f"{name}-headless", f"{name}.audit-ns.svc", f"{name}-headless.audit-ns.svc")


@pytest.mark.parametrize(
    ("sets", "names"),
    [
        ((f"search.tls.existingSecret={OWN_TLS['search']}",), _service_names("search")),
        (("search.tls.existingSecret=",), None),  # the shared certificate: every pod's names
        ((f"search.tls.existingSecret={OWN_TLS['search']}", "aiaudit.tls.mutual=false"), None),
        ((f"search.tls.existingSecret={OWN_TLS['search']}", "search.enabled=false"), None),
        (
            (
                f"search.tls.existingSecret={OWN_TLS['search']}",
                "aiaudit.config.integrity.client_names={verifier.audit-tools.svc}",
            ),
            ("verifier.audit-tools.svc",),  # the operator's list stands
        ),
    ],
    ids=["search-own", "shared", "tls", "no-search", "operator-list"],
)
def test_integrity_admits_only_searchs_certificate_when_search_has_its_own(
    sets: tuple[str, ...], names: tuple[str, ...] | None
) -> None:
    """Under mTLS any certificate of the CA could call integrity; with search's certificate
    its own (the one component that calls integrity) the chart lists search's Service names
    as ``integrity.client_names``, which integrity's settings read."""
    from aiaudit.integrity import settings as integrity_settings

    objects = render(ALL_ENABLED, *sets)
    (configmap,) = of_kind(objects, "ConfigMap")
    written = yaml.safe_load(configmap["data"]["config.yaml"])
    assert written.get("integrity", {}).get("client_names") == (
        None if names is None else list(names)
    )
    (integrity,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "integrity"]
    settings = _effective(integrity, configmap["data"]["config.yaml"])
    section = config.section(settings, "integrity", integrity_settings.IntegritySettings)
    assert section.client_names == (names or ())


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (("aiaudit.tls.mutual=false",), False),  # one certificate: integrity's is search's own
        (("aiaudit.tls.mutual=false", f"search.tls.existingSecret={OWN_TLS['search']}"), True),
        (
            ("aiaudit.tls.mutual=false", f"integrity.tls.existingSecret={OWN_TLS['integrity']}"),
            True,
        ),
        (
            (
                "aiaudit.tls.mutual=false",
                f"search.tls.existingSecret={OWN_TLS['search']}",
                "aiaudit.config.search.integrity_ca_file=/etc/aiaudit/ca/integrity.pem",
            ),
            False,  # the operator's CA file stands
        ),
        ((f"search.tls.existingSecret={OWN_TLS['search']}",), False),  # mTLS: its client CA
    ],
    ids=["shared", "search-own", "integrity-own", "operator-ca", "mtls"],
)
def test_search_is_given_its_secrets_ca_for_integrity_where_it_needs_one(
    sets: tuple[str, ...], named: bool
) -> None:
    """Without mTLS search checks integrity's certificate against its own ``tls_cert_file``:
    with certificates of their own that is the wrong one, so the chart names the CA of
    search's Secret (and mounts it) instead; under mTLS search takes its client CA file."""
    objects = render(
        ALL_ENABLED,
        *(f"{c}.tls.existingSecret=" for c in ("ingest", "search", "integrity")),
        "integrity.tls.certKey=",
        "integrity.tls.keyKey=",
        *sets,
    )
    (search,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "search"]
    env = {
        e["name"]: e.get("value")
        for e in search["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    items = {i["path"]: i["key"] for i in _tls_volume(search)["items"]}
    mutual = "aiaudit.tls.mutual=false" not in sets
    if named:
        assert env["AIAUDIT_SEARCH_INTEGRITY_CA_FILE"] == f"{TLS_DIR}/ca.crt"
    else:
        assert "AIAUDIT_SEARCH_INTEGRITY_CA_FILE" not in env
    assert ("ca.crt" in items) is (named or mutual)


NOTARY_TOKEN_FILE = "/vault/secrets/notary-token"
CONTENT_TOKEN_FILE = "/vault/secrets/token"
TOKEN_FILES = (
    f"aiaudit.vault.tokenFile={NOTARY_TOKEN_FILE}",
    f"aiaudit.contentKeys.tokenFile={CONTENT_TOKEN_FILE}",
)
"""Token files where the Vault Agent Injector writes (its annotations in podAnnotations)."""


def _agent_writes(path: Path, token: str) -> None:
    """Writes ``token`` as vault-agent does: a file beside it, renamed over it."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(token + "\n")
    os.replace(temp, path)


def test_a_token_file_replaces_the_token_from_the_secret(tmp_path: Path) -> None:
    """The server follows a token file a vault-agent renews (short-lived tokens, no
    restart), but the chart could only give tokens as variables from its Secrets, read once
    at start, and refused the token-file settings. With ``tokenFile`` each pod gets the path
    and no token variable; the address still comes from the Secret; and the Vault clients
    the server builds from the rendered pod take the file's token, and its next one."""
    from aiaudit.common.keys import configured
    from aiaudit.integrity import component
    from aiaudit.integrity import settings as integrity_settings

    objects = render(ALL_ENABLED, *TOKEN_FILES)
    (configmap,) = of_kind(objects, "ConfigMap")
    config_yaml = configmap["data"]["config.yaml"]
    assert "token_file" not in config_yaml
    by_component = {component_of(d): d for d in of_kind(objects, "Deployment")}
    assert set(by_component) == set(COMPONENTS)
    for name, deployment in by_component.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert not {"VAULT_TOKEN", "AIAUDIT_CONTENT_VAULT_TOKEN"} & set(env), name
        refs = [e["valueFrom"]["secretKeyRef"] for e in env.values() if "valueFrom" in e]
        assert not [r for r in refs if r["key"] == "token"], name  # the Secrets' token keys
        assert env["AIAUDIT_CONTENT_VAULT_TOKEN_FILE"] == {
            "name": "AIAUDIT_CONTENT_VAULT_TOKEN_FILE",
            "value": CONTENT_TOKEN_FILE,
        }
        assert env["AIAUDIT_CONTENT_VAULT_ADDR"]["valueFrom"]["secretKeyRef"] == {
            "name": "aiaudit-content-keys",
            "key": "address",
        }
        notary_file = env.get("AIAUDIT_INTEGRITY_VAULT_TOKEN_FILE", {}).get("value")
        assert notary_file == (NOTARY_TOKEN_FILE if name == "integrity" else None), name
    # As serve loads each pod, the token files at stand-ins the agent writes.
    content_file, notary_file = tmp_path / "content-token", tmp_path / "notary-token"
    _agent_writes(content_file, "hvs.content-1")
    _agent_writes(notary_file, "hvs.notary-1")
    files = {CONTENT_TOKEN_FILE: content_file, NOTARY_TOKEN_FILE: notary_file}
    loaded = {
        name: _as_the_server_starts(d, config_yaml, tmp_path, files)
        for name, d in by_component.items()
    }
    rings = {}
    for name, settings in loaded.items():
        assert settings.content_vault_token_file == content_file, name
        assert settings.content_vault_addr == SECRET_STAND_INS["VAULT_ADDR"], name
        ring = configured.keyring(settings)
        assert ring is not None, name
        rings[name] = ring.kek._client.adapter  # type: ignore[attr-defined]
        assert rings[name].token_file.current() == "hvs.content-1", name
    notary = integrity_settings.load(loaded["integrity"])
    assert (notary.signer, notary.vault_token_file) == ("vault", notary_file)
    assert notary.vault_addr == SECRET_STAND_INS["VAULT_ADDR"]
    notary_adapter = component.vault_client(notary, loaded["integrity"].env).adapter
    assert notary_adapter.token_file.current() == "hvs.notary-1"
    # The agent renews both tokens: every client takes the new one, no restart.
    _agent_writes(content_file, "hvs.content-2")
    _agent_writes(notary_file, "hvs.notary-2")
    for name, adapter in rings.items():
        assert adapter.token_file.current() == "hvs.content-2", name
    assert notary_adapter.token_file.current() == "hvs.notary-2"
    # One token file alone: the other token still comes from its Secret.
    objects = render(ALL_ENABLED, TOKEN_FILES[1])
    (integrity,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "integrity"]
    env = {e["name"]: e for e in integrity["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VAULT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "aiaudit-vault",
        "key": "token",
    }
    assert "AIAUDIT_INTEGRITY_VAULT_TOKEN_FILE" not in env
    assert "AIAUDIT_CONTENT_VAULT_TOKEN" not in env


def _extra_env(component: str, name: str) -> tuple[str, ...]:
    return (
        f"{component}.extraEnv[0].name={name}",
        f"{component}.extraEnv[0].valueFrom.secretKeyRef.name=s",
        f"{component}.extraEnv[0].valueFrom.secretKeyRef.key=k",
    )


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            (TOKEN_FILES[0], *_extra_env("integrity", "VAULT_TOKEN")),
            "integrity.extraEnv VAULT_TOKEN and aiaudit.vault.tokenFile both give the Vault token",
        ),
        (
            (TOKEN_FILES[1], *_extra_env("alerting", "AIAUDIT_CONTENT_VAULT_TOKEN")),
            "alerting.extraEnv AIAUDIT_CONTENT_VAULT_TOKEN and aiaudit.contentKeys.tokenFile both"
            " give the Vault token",
        ),
        (
            (
                "integrity.extraEnv[0].name=AIAUDIT_INTEGRITY_VAULT_TOKEN_FILE",
                "integrity.extraEnv[0].value=/vault/secrets/token",
            ),
            "give the path as aiaudit.vault.tokenFile",
        ),
        (
            (
                "search.extraEnv[0].name=AIAUDIT_CONTENT_VAULT_TOKEN_FILE",
                "search.extraEnv[0].value=/vault/secrets/token",
            ),
            "give the path as aiaudit.contentKeys.tokenFile",
        ),
        (
            ("aiaudit.vault.tokenFile=vault/secrets/token",),
            'aiaudit.vault.tokenFile "vault/secrets/token" is not an absolute path',
        ),
        (
            ("aiaudit.contentKeys.tokenFile=token",),
            'aiaudit.contentKeys.tokenFile "token" is not an absolute path',
        ),
        (
            (
                TOKEN_FILES[0],
                "aiaudit.vault.existingSecret=",
                "aiaudit.database.embedded=true",
                "aiaudit.contentKeys.existingSecret=",
                "aiaudit.recorderDatabase.existingSecret=",
                *(f"{c}.enabled={str(c == 'integrity').lower()}" for c in COMPONENTS),
                "integrity.replicas=1",
                "integrity.database.existingSecret=",
            ),
            "aiaudit.vault.tokenFile needs aiaudit.vault.existingSecret: the Vault address",
        ),
    ],
    ids=[
        "notary-token-twice",
        "content-token-twice",
        "notary-file-in-extra-env",
        "content-file-in-extra-env",
        "notary-relative",
        "content-relative",
        "no-address",
    ],
)
def test_a_token_file_that_would_not_be_used_as_meant_fails_the_render(
    sets: tuple[str, ...], message: str
) -> None:
    """Given both ways, the server takes the file's token and leaves the variable unused
    without a word; a relative path or one without the Secret's address reaches nothing."""
    assert message in render_fails(*sets, values=ALL_ENABLED)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            (
                "search.enabled=true",
                "search.database.existingSecret=consumer",
                "aiaudit.opensearch.existingSecret=opensearch",
                "search.autoscaling.enabled=true",
                "search.autoscaling.minReplicas=5",
                "search.autoscaling.maxReplicas=3",
            ),
            "search.autoscaling.minReplicas (5) is greater than search.autoscaling.maxReplicas (3)",
        ),
        (("aiaudit.healthPort=50051",), "aiaudit.healthPort and aiaudit.grpcPort are both 50051"),
    ],
    ids=["hpa-min-above-max", "health-port-is-grpc-port"],
)
def test_values_the_api_server_or_the_pods_would_refuse_fail_the_render(
    sets: tuple[str, ...], message: str
) -> None:
    """They rendered, and failed only when applied: an HPA the API server refuses, pods that
    cannot bind their health port (chart review)."""
    assert message in render_fails(*sets)


def test_egress_without_rules_to_the_backends_fails_the_render_on_postgresql() -> None:
    """Egress on with an empty `egress.to` let the pods reach DNS alone, not PostgreSQL,
    OpenSearch or Vault (chart review); the embedded store needs no backend, so there egress
    to DNS alone stays a choice."""
    message = "networkPolicy.egress.enabled=true with an empty networkPolicy.egress.to"
    assert message in render_fails("networkPolicy.egress.enabled=true")
    objects = render(
        CHART / "ci" / "tls-disabled-dev-values.yaml",
        "networkPolicy.egress.enabled=true",
        "search.enabled=false",
        "integrity.enabled=false",
        "alerting.enabled=false",
    )
    (policy,) = of_kind(objects, "NetworkPolicy")
    assert [{p["port"] for p in rule["ports"]} for rule in policy["spec"]["egress"]] == [{53}]


def _notes(tmp_path: Path, values: Path, *sets: str) -> str:
    """NOTES.txt as helm renders it. `helm install --dry-run=client` asks the cluster for its
    version, so a copy of the chart renders the same file through `tpl` in a manifest."""
    chart = tmp_path / "aiaudit"
    shutil.copytree(CHART, chart)
    (chart / "NOTES.src").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "NOTES.src") . | toJson }}\n'
    )
    args = ["template", RELEASE, str(chart), "--namespace", "audit-ns", "-f", str(values)]
    for item in sets:
        args += ["--set", item]
    out = _helm(*args, "--show-only", "templates/zz-notes.yaml")
    assert out.returncode == 0, out.stderr
    return cast(str, yaml.safe_load(out.stdout)["notes"])


def test_the_notes_point_only_at_enabled_components(tmp_path: Path) -> None:
    """With ingest off the notes still told to port-forward svc/<release>-ingest, which does
    not exist (chart review)."""
    dev = CHART / "ci" / "tls-disabled-dev-values.yaml"
    notes = _notes(tmp_path, dev, "ingest.enabled=false", "search.enabled=true")
    assert "ingest" not in notes
    assert f"port-forward svc/{RELEASE}-aiaudit-search 50051:50051" in notes
    assert "-plaintext" in notes and "localhost:50051 list" in notes
    ingest = _notes(tmp_path / "ingest", dev)
    assert f"port-forward svc/{RELEASE}-aiaudit-ingest 50051:50051" in ingest
    nothing = _notes(
        tmp_path / "none",
        dev,
        *(f"{name}.enabled=false" for name in COMPONENTS),
    )
    assert "port-forward" not in nothing and "grpcurl" not in nothing


# Chart review, 2026-12-06: values.schema.json, kubeVersion, the migration pods' policy,
# each component's own egress, the grace period, zones, integrity's strategy.

SCHEMA = CHART / "values.schema.json"


def _values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            # A quoted "false" (a values file templated from an environment variable) is a
            # true string: the chart ran the embedded SQLite store in an emptyDir, no
            # PostgreSQL, no migration, with nothing said.
            {"aiaudit": {"database": {"embedded": "false"}}, "ingest": {"replicas": 1}},
            "at '/aiaudit/database/embedded': got string, want boolean",
        ),
        ({"ingest": {"replica": 3}}, "at '/ingest': additional properties 'replica' not allowed"),
        (
            {"networkPolicy": {"ingress": {"ingest": {"form": [{"ipBlock": {"cidr": "0/0"}}]}}}},
            "at '/networkPolicy/ingress/ingest': additional properties 'form' not allowed",
        ),
        (
            {"networkPolicy": {"ingress": {"ingest": {"from": [{"namespaceSelecter": {}}]}}}},
            "additional properties 'namespaceSelecter' not allowed",
        ),
        (
            # The API server refuses an annotation that is not a string, at apply time.
            {"ingest": {"podAnnotations": {"prometheus.io/scrape": True}}},
            "at '/ingest/podAnnotations/prometheus.io~1scrape': got boolean, want string",
        ),
        (
            # A second handler beside the chart's grpc one: the API server refuses the probe.
            {"aiaudit": {"probes": {"liveness": {"httpGet": {"port": 8081}}}}},
            "at '/aiaudit/probes/liveness': additional properties 'httpGet' not allowed",
        ),
        ({"ingest": {"service": {"type": "ExternalName"}}}, "at '/ingest/service/type'"),
        ({"aiaudit": {"grpcPort": 70000}}, "at '/aiaudit/grpcPort': maximum"),
        ({"integrity": {"replicas": -1}}, "at '/integrity/replicas': minimum"),
        ({"aiaudit": {"database": {"existingSecret": "DB_Secret"}}}, "/existingSecret"),
    ],
    ids=[
        "quoted-false",
        "unknown-key",
        "misspelt-peers",
        "misspelt-peer",
        "annotation-not-a-string",
        "second-probe-handler",
        "service-type",
        "port-range",
        "negative-replicas",
        "secret-name",
    ],
)
def test_values_of_the_wrong_shape_fail_the_render_and_lint_naming_them(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    """The chart had no values.schema.json: a misspelt key was ignored without a word (the
    gateways listed under `form` reached nothing), a quoted "false" counted as true, and what
    the API server refuses rendered fine (chart review, 2026-12-06)."""
    path = _values_file(tmp_path, values)
    assert message in render_fails(values=path)
    lint = _helm("lint", str(CHART), "-f", str(path))
    assert lint.returncode != 0 and message in lint.stdout + lint.stderr


def _schema_at(schema: dict[str, Any], node: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The schema of ``key`` in an object of schema ``node`` ($refs followed), None if refused."""

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = schema["definitions"][s["$ref"].rpartition("/")[2]]
        return s

    node = resolve(node)
    if key in node.get("properties", {}):
        return resolve(node["properties"][key])
    extra = node.get("additionalProperties", True)
    return None if extra is False else resolve(extra if isinstance(extra, dict) else {})


def test_the_schema_accepts_every_value_and_each_key_it_accepts_is_documented() -> None:
    """values.yaml and the schema describe the same keys: a key added to one alone fails here
    (helm would refuse a value the schema lacks; a key the schema accepts that values.yaml
    lacks would have no documentation)."""
    schema = json.loads(SCHEMA.read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # Keys accepted without a default in values.yaml (each documented there by name).
    optional = {
        "*.podDisruptionBudget.minAvailable": "minAvailable",
        "*.resources.claims": "",
        "aiaudit.probes.*.*": "successThreshold",
        "integrity.strategy.*": "type: Recreate",
    }
    seen: set[str] = set()

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            return
        node_props = node
        while "$ref" in node_props:
            node_props = schema["definitions"][node_props["$ref"].rpartition("/")[2]]
        for key, sub in value.items():
            at = f"{path}.{key}" if path else key
            child = _schema_at(schema, node, key)
            assert child is not None, f"{at} is in values.yaml, not in values.schema.json"
            seen.add(at)
            walk(sub, child, at)
        if node_props.get("additionalProperties") is False:
            for key in node_props.get("properties", {}):
                at = f"{path}.{key}" if path else key
                if at not in seen and not any(fnmatch.fnmatch(at, o) for o in optional):
                    raise AssertionError(f"{at} is in values.schema.json, not in values.yaml")

    walk(values, schema, "")
    text = (CHART / "values.yaml").read_text()
    assert all(doc in text for doc in optional.values())


def test_the_chart_requires_the_kubernetes_release_of_its_grpc_probes() -> None:
    """kubeVersion was undeclared (a go-built helm assumed v1.20.0 and refused it): on 1.26
    and older the chart installed, and its native gRPC probes (GA in 1.27) did not work.
    scripts/install-tools.sh now stamps helm's own Kubernetes version, as helm's releases
    are built, so `helm template` without --kube-version renders (every other test)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.27.0-0"
    args = ["template", RELEASE, str(CHART), "--kube-version"]
    old = _helm(*args, "v1.26.9")
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.27.0-0" in old.stderr
    assert "incompatible with Kubernetes v1.26.9" in old.stderr
    # The first supported release, and a vendor build of a later one.
    for version in ("v1.27.0", "v1.29.1-gke.1589018"):
        assert _helm(*args, version).returncode == 0, version


def test_the_migration_pods_are_isolated_and_reach_only_what_every_pod_reaches() -> None:
    """No policy selected the migration pods, which hold the admin URL: with egress locked
    down they could still connect anywhere (chart review, 2026-12-06)."""
    all_enabled = render(
        ALL_ENABLED,
        "networkPolicy.egress.search.to[0].to[0].ipBlock.cidr=10.30.0.0/16",
        "networkPolicy.egress.integrity.to[0].to[0].ipBlock.cidr=10.40.0.0/16",
    )
    policies = of_kind(all_enabled, "NetworkPolicy")
    (job,) = of_kind(all_enabled, "Job")
    (cron,) = of_kind(all_enabled, "CronJob")
    for labels in (
        job["spec"]["template"]["metadata"]["labels"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
    ):
        (policy,) = [p for p in policies if _selects(p, labels)]
        assert policy["metadata"]["name"] == f"{RELEASE}-aiaudit-migrate"
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == []
        dns, *rest = spec["egress"]
        assert {p["port"] for p in dns["ports"]} == {53}
        assert dns["to"] == merged_values(ALL_ENABLED)["networkPolicy"]["egress"]["dns"]
        assert rest == merged_values(ALL_ENABLED)["networkPolicy"]["egress"]["to"]
    # Egress off: closed to connections all the same.
    (default,) = [p for p in of_kind(render(), "NetworkPolicy") if component_of(p) == "migrate"]
    assert default["spec"]["policyTypes"] == ["Ingress"] and default["spec"]["ingress"] == []
    # No migration pods, no policy for them.
    for sets in (("migration.enabled=false",), ("networkPolicy.enabled=false",)):
        assert "migrate" not in {
            component_of(p) for p in of_kind(render(None, *sets), "NetworkPolicy")
        }
    dev = render(CHART / "ci" / "tls-disabled-dev-values.yaml", "migration.enabled=true")
    assert "migrate" not in {component_of(p) for p in of_kind(dev, "NetworkPolicy")}


def test_each_component_reaches_its_own_backends_alone() -> None:
    """One `egress.to` for every pod let ingest, the component the AI gateways call, reach
    OpenSearch, the notary's Vault and the alert sinks (chart review, 2026-12-06)."""
    own = {
        "ingest": "10.10.0.0/16",
        "search": "10.30.0.0/16",
        "integrity": "10.40.0.0/16",
        "alerting": "10.50.0.0/16",
    }
    sets = [f"networkPolicy.egress.{c}.to[0].to[0].ipBlock.cidr={cidr}" for c, cidr in own.items()]
    policies = {component_of(p): p for p in of_kind(render(ALL_ENABLED, *sets), "NetworkPolicy")}
    shared = "10.20.0.0/16"  # all-enabled's egress.to: PostgreSQL
    for name, policy in policies.items():
        cidrs = {
            peer["ipBlock"]["cidr"]
            for rule in policy["spec"]["egress"]
            for peer in rule.get("to", [])
            if "ipBlock" in peer
        }
        assert cidrs == {shared} | ({own[name]} if name in own else set()), name


def test_a_grace_period_that_leaves_the_server_no_drain_fails_the_render() -> None:
    """The server was told to drain for 1 s (`max 1`) whatever was left, and a grace period
    no longer than the preStop sleep sent SIGKILL as the sleep ended (chart review)."""
    message = render_fails("search.terminationGracePeriodSeconds=10", values=ALL_ENABLED)
    assert "search.terminationGracePeriodSeconds (10) leaves the server no time" in message
    assert "give it at least 11" in message
    for sets, drain in (
        (("ingest.terminationGracePeriodSeconds=11",), "1"),
        (("aiaudit.preStopSeconds=0", "ingest.terminationGracePeriodSeconds=6"), "1"),
    ):
        (deployment,) = of_kind(render(None, *sets), "Deployment")
        env = {
            e["name"]: e.get("value")
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["AIAUDIT_SHUTDOWN_GRACE_SECONDS"] == drain, sets
    # A disabled component's grace period is not checked.
    render(None, "alerting.terminationGracePeriodSeconds=1")


def test_replicas_prefer_zones_without_one_unless_told_otherwise() -> None:
    """The chart's own spread over nodes turned off the scheduler's default zone spreading,
    so both replicas could land in one zone (chart review, 2026-12-06). A zone spread
    constraint would leave nodes without the zone label out of every constraint's scoring, so
    the preference is a soft anti-affinity, which such nodes ignore."""
    for deployment in of_kind(render(ALL_ENABLED), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (term,) = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["podAffinityTerm"] == {
            "topologyKey": "topology.kubernetes.io/zone",
            "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
        }
        assert set(pod["affinity"]) == {"podAntiAffinity"}
    given = render(
        None,
        "ingest.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
        "ingest.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=pool",
        "ingest.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists",
    )
    (ingest,) = of_kind(given, "Deployment")
    assert set(ingest["spec"]["template"]["spec"]["affinity"]) == {"nodeAffinity"}
    assert [p for obj in given for p in kube_schema.problems(obj)] == []


def test_integrity_can_run_one_pod_on_a_read_write_once_claim() -> None:
    """Every integrity pod mounts the checkpoint claim and any may become the writer, so more
    than one needs ReadWriteMany; with one pod on a ReadWriteOnce claim the rolling update
    started the new pod (maybe on another node) before the old released the volume, and
    waited there for ever (chart review, 2026-12-06). `integrity.strategy` says Recreate."""
    objects = render(ALL_ENABLED, "integrity.replicas=1", "integrity.strategy.type=Recreate")
    strategies = {
        component_of(d): d["spec"].get("strategy") for d in of_kind(objects, "Deployment")
    }
    assert strategies == {
        "ingest": None, "search": None, "integrity": {"type": "Recreate"}, "alerting": None
    }  # fmt: skip
    text = (CHART / "values.yaml").read_text()
    assert "more than one pod needs ReadWriteMany" in text and "type: Recreate" in text


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("2026-12-07T10:00:00Z", dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)),
        ("2026-12-07T10:00:00+02:00", dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)),
    ],
)
def test_the_classification_boundary_reaches_integrity_as_the_time_given(
    value: str, instant: dt.datetime
) -> None:
    """``aiaudit.config.integrity.classification_required_since`` goes into the config file
    as given (quoted: YAML would read it back as a timestamp otherwise, which integrity also
    reads as the same instant) and integrity reads the instant it names, its offset applied
    (a time without one is refused at start, naming the setting)."""
    from aiaudit.integrity import settings as integrity_settings

    objects = render(ALL_ENABLED, f"aiaudit.config.integrity.classification_required_since={value}")
    (configmap,) = of_kind(objects, "ConfigMap")
    (integrity,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "integrity"]
    settings = _effective(integrity, configmap["data"]["config.yaml"])
    section = integrity_settings.load(settings)
    assert section.classification_required_time == instant


def test_the_syslog_sinks_tls_files_reach_alerting_from_a_mounted_secret() -> None:
    """``tls://`` syslog (RFC 5425) with a private CA and a client certificate: the settings
    are no credential (the key is a path), so the chart passes them through the config, and
    the files come from a Secret mounted by ``alerting.extraVolumes``."""
    from aiaudit.alerting.settings import AlertingSettings

    where = "/etc/aiaudit/syslog-tls"
    objects = render(
        ALL_ENABLED,
        "aiaudit.config.alerting.syslog_address=tls://siem.example:6514",
        f"aiaudit.config.alerting.syslog_ca_file={where}/ca.crt",
        f"aiaudit.config.alerting.syslog_client_cert_file={where}/tls.crt",
        f"aiaudit.config.alerting.syslog_client_key_file={where}/tls.key",
        "alerting.extraVolumes[0].name=syslog-tls",
        "alerting.extraVolumes[0].secret.secretName=syslog-client",
        "alerting.extraVolumeMounts[0].name=syslog-tls",
        f"alerting.extraVolumeMounts[0].mountPath={where}",
        "alerting.extraVolumeMounts[0].readOnly=true",
    )
    (configmap,) = of_kind(objects, "ConfigMap")
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component_of(d) == "alerting"]
    settings = _effective(deployment, configmap["data"]["config.yaml"])
    alerting = config.section(settings, "alerting", AlertingSettings)
    assert alerting.syslog_address == "tls://siem.example:6514"
    tls = alerting.syslog_tls
    assert (tls.syslog_ca_file, tls.syslog_client_cert_file, tls.syslog_client_key_file) == (
        Path(f"{where}/ca.crt"),
        Path(f"{where}/tls.crt"),
        Path(f"{where}/tls.key"),
    )
    pod = deployment["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "syslog-tls", "mountPath": where, "readOnly": True} in mounts
    assert {"name": "syslog-tls", "secret": {"secretName": "syslog-client"}} in pod["volumes"]
