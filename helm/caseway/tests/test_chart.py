"""The chart, rendered offline with the Helm v4 SDK and checked as an ops team would read it:
every enabled target has its Deployment, Services, HPA, PDB, probes, resources and security
context; the migration hook holds the owner's credentials and no serving pod does; the values
schema refuses wrong types and unknown keys; checkov finds nothing it does not say why."""

import json
import pathlib
import re
import shutil
import subprocess

import helm_python as helm
import pytest
import yaml

from render import CHART, NAMESPACE, REQUIRED, render

TARGETS = [
    "tenancy", "catalog", "clients", "records", "authorizations", "eligibility", "ticketing", "hmis",
]
PEERS = {
    "tenancy": [],
    "catalog": ["tenancy"],
    "clients": ["catalog"],
    "records": ["catalog", "clients", "authorizations", "eligibility"],
    "authorizations": ["catalog", "clients", "records", "eligibility"],
    "eligibility": [],
    "ticketing": [],
    "hmis": [],
}


def of_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env(c):
    return {e["name"]: e for e in c.get("env", [])}


def test_lint_finds_no_warning_or_error():
    report = helm.lint(str(CHART), values=REQUIRED, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_target_has_its_deployment_services_hpa_pdb_probes_and_security():
    objects = render()
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    pdbs = of_kind(objects, "PodDisruptionBudget")
    accounts = of_kind(objects, "ServiceAccount")
    assert sorted(deployments) == sorted(f"caseway-{t}" for t in TARGETS)
    for o in objects:
        assert o["metadata"]["namespace"] == NAMESPACE, o["metadata"]["name"]
    for t in TARGETS:
        d = deployments[f"caseway-{t}"]
        spec = d["spec"]["template"]["spec"]
        c = container(d)
        assert c["args"] == ["serve", "--target", t]
        assert "replicas" not in d["spec"], "the HPA owns the replica count"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] == 10001
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == f"caseway-{t}"
        assert accounts[f"caseway-{t}"]["automountServiceAccountToken"] is False
        assert len(spec["topologySpreadConstraints"]) == 2
        # The public Service balances connections; the headless one lets callers balance calls.
        assert services[f"caseway-{t}"]["spec"]["type"] == "ClusterIP"
        assert services[f"caseway-{t}-peers"]["spec"]["clusterIP"] == "None"
        hpa = hpas[f"caseway-{t}"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"caseway-{t}"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert pdbs[f"caseway-{t}"]["spec"]["minAvailable"] == 1
        # Each peer through its headless Service, never this pod itself.
        e = env(c)
        for peer in TARGETS:
            name = f"CASEWAY_{peer.upper()}_ENDPOINT"
            if peer in PEERS[t]:
                assert e[name]["value"] == f"http://caseway-{peer}-peers.{NAMESPACE}.svc:50051"
            else:
                assert name not in e


def test_the_drain_fits_in_the_termination_grace_period():
    objects = render({"shutdown": {"preStopSeconds": 7, "delayMillis": 3000, "graceSeconds": 25}})
    config = of_kind(objects, "ConfigMap")["caseway"]["data"]
    assert config["CASEWAY_SHUTDOWN_DELAY_MILLIS"] == "3000"
    assert config["CASEWAY_SHUTDOWN_GRACE_SECONDS"] == "25"
    for d in of_kind(objects, "Deployment").values():
        spec = d["spec"]["template"]["spec"]
        assert container(d)["lifecycle"]["preStop"]["sleep"]["seconds"] == 7
        assert spec["terminationGracePeriodSeconds"] > 7 + 3 + 25


def test_each_target_scales_on_its_own_and_a_custom_metric_joins_cpu():
    objects = render(
        {
            "targets": {
                "records": {
                    "autoscaling": {
                        "maxReplicas": 30,
                        "podsMetric": {"name": "grpc_server_handled_per_second", "averageValue": "200"},
                    },
                    "resources": {"requests": {"cpu": "500m"}},
                    "nodeSelector": {"pool": "records"},
                    "tolerations": [{"key": "records", "operator": "Exists", "effect": "NoSchedule"}],
                },
                "tenancy": {"autoscaling": {"enabled": False}, "replicas": 3},
            }
        }
    )
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    deployments = of_kind(objects, "Deployment")
    records = hpas["caseway-records"]["spec"]
    assert records["maxReplicas"] == 30
    assert records["metrics"][1]["pods"]["metric"]["name"] == "grpc_server_handled_per_second"
    assert hpas["caseway-catalog"]["spec"]["maxReplicas"] == 10
    assert "caseway-tenancy" not in hpas
    assert deployments["caseway-tenancy"]["spec"]["replicas"] == 3
    spec = deployments["caseway-records"]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "records"}
    assert spec["tolerations"][0]["key"] == "records"
    resources = container(deployments["caseway-records"])["resources"]
    assert resources["requests"]["cpu"] == "500m"
    assert resources["limits"]["memory"] == "256Mi", "the rest of the defaults stay"


def test_all_mode_is_one_deployment_calling_itself():
    objects = render({"mode": "all"})
    deployments = of_kind(objects, "Deployment")
    assert list(deployments) == ["caseway-all"]
    d = deployments["caseway-all"]
    assert container(d)["args"] == ["serve", "--target", "all"]
    assert d["spec"]["replicas"] == 1
    assert not [n for n in env(container(d)) if n.endswith("_ENDPOINT")]
    assert "caseway-all" not in of_kind(objects, "HorizontalPodAutoscaler")


def test_a_target_run_elsewhere_is_reached_at_its_endpoint_and_never_silently_missing():
    objects = render(
        {
            "targets": {"eligibility": {"enabled": False}},
            "endpoints": {"eligibility": "https://eligibility.other.example:50051"},
        }
    )
    deployments = of_kind(objects, "Deployment")
    assert "caseway-eligibility" not in deployments
    e = env(container(deployments["caseway-records"]))
    assert e["CASEWAY_ELIGIBILITY_ENDPOINT"]["value"] == "https://eligibility.other.example:50051"
    with pytest.raises(Exception, match="endpoints.eligibility"):
        render({"targets": {"eligibility": {"enabled": False}}})


def test_the_migration_hook_holds_the_owner_credentials_and_no_serving_pod_does():
    objects = render()
    job = of_kind(objects, "Job")["caseway-migrate"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["migrate"]
    e = env(c)
    assert e["CASEWAY_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "caseway-database-owner"
    assert e["CASEWAY_APP_ROLE_PASSWORD_FILE"]["value"].startswith("/etc/caseway/")
    assert job["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "caseway-database-owner"
    # The owner's Secret, the user-signing key and the PII keys stay off the serving pods
    # (the PII keys only on the pods that open SSNs: clients, and hmis for exports with SSNs).
    for name, d in of_kind(objects, "Deployment").items():
        text = json.dumps(d)
        assert "caseway-database-owner" not in text, name
        assert "MIGRATION" not in text and "PRIVATE_KEY" not in text, name
        assert ("caseway-pii-keys" in text) == (name in ("caseway-clients", "caseway-hmis")), name
    config = json.dumps(of_kind(objects, "ConfigMap"))
    assert "MIGRATION" not in config and "PRIVATE_KEY" not in config


def test_nothing_secret_is_in_the_values_or_the_rendered_config():
    objects = render()
    assert of_kind(objects, "Secret") == {}
    lines = (CHART / "values.yaml").read_text().splitlines()
    values = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert "BEGIN" not in values, "a key in the values"
    assert not re.search(r"://[^/\s:]+:[^@\s]+@", values), "credentials in a URL in the values"


def test_the_schema_refuses_wrong_types_and_unknown_keys():
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(None)
    for bad, where in [
        ({"mode": "some"}, "/mode"),
        ({"defaults": {"replicas": "two"}}, "/defaults/replicas"),
        ({"targets": {"records": {"replica": 2}}}, "/targets/records"),
        ({"secrets": {"database": {"name": 3}}}, "/secrets/database/name"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"defaults": {"tenantMaxConnections": 2}}, "/defaults/tenantMaxConnections"),
        ({"config": {"extraEnv": {"PATH": "/bin"}}}, "PATH"),
        ({"unknown": True}, "additional properties"),
    ]:
        with pytest.raises(Exception, match=where):
            chart.validate_schema(bad)


def test_a_service_monitor_only_where_asked_or_possible():
    assert of_kind(render(), "ServiceMonitor") == {}
    monitor = of_kind(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")["caseway"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_checkov_finds_no_failed_check_and_each_skip_says_why(tmp_path):
    checkov = shutil.which("checkov")
    assert checkov, "checkov (PyPI) is needed"
    for values, name in [(None, "defaults"), ({"mode": "all"}, "all"), ({"operator": {"enabled": True}}, "operator")]:
        folder = tmp_path / name
        folder.mkdir()
        for i, o in enumerate(render(values)):
            (folder / f"{i:03}.yaml").write_text(yaml.safe_dump(o))
            for key, skip in o["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = skip.partition("=")
                    assert check.startswith("CKV") and len(reason) > 20, skip
        run = subprocess.run(
            [checkov, "-d", str(folder), "--framework", "kubernetes", "--quiet", "--compact",
             "--skip-download", "-o", "json"],
            capture_output=True, text=True, env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        report = json.loads(run.stdout)
        reports = report if isinstance(report, list) else [report]
        failed = [(f["check_id"], f["resource"]) for r in reports for f in r["results"]["failed_checks"]]
        assert failed == [], failed
        assert sum(r["summary"]["passed"] for r in reports) > 100, "checkov checked nothing"


def test_only_gateways_and_caseway_pods_reach_the_grpc_port():
    policy = of_kind(render(), "NetworkPolicy")["caseway"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    [grpc] = policy["ingress"]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert grpc["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "caseway", "caseway.io/pod": "true"}}},
        {"podSelector": {"matchLabels": {"caseway.io/gateway": "true"}}},
    ]
    scraped = of_kind(render({"networkPolicy": {"metricsScrapers": [{"namespaceSelector": {}}]}}), "NetworkPolicy")
    assert scraped["caseway"]["spec"]["ingress"][1]["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_the_notes_say_where_the_api_is_and_how_to_get_a_token():
    chart = helm.Chart.load(str(CHART))
    notes = chart.render(REQUIRED, name="caseway", namespace=NAMESPACE, is_install=True)["caseway/templates/NOTES.txt"]
    for target in TARGETS:
        assert f"caseway-{target}.{NAMESPACE}.svc:50051" in notes
    assert "caseway token issue" in notes


def test_the_operator_is_off_by_default_and_holds_no_more_rights_than_it_uses():
    assert not [o for o in render() if "operator" in o["metadata"]["name"]]
    objects = render({"operator": {"enabled": True}})
    deployment = of_kind(objects, "Deployment")["caseway-operator"]
    c = container(deployment)
    assert c["args"][:2] == ["operator", "run"]
    variables = env(c)
    assert variables["CASEWAY_OPERATOR_TENANCY_ENDPOINT"]["value"] == "http://caseway-tenancy-peers.caseway.svc:50051"
    assert variables["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert variables["CASEWAY_OPERATOR_TOKEN_FILE"]["value"].startswith("/etc/caseway/operator-token/")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "caseway-operator"
    assert spec["automountServiceAccountToken"] is True
    assert spec["volumes"][0]["secret"]["secretName"] == "caseway-operator-token"
    # No serving pod mounts a token; only the operator does.
    for name, account in of_kind(objects, "ServiceAccount").items():
        assert account["automountServiceAccountToken"] is (name == "caseway-operator"), name
    rules = of_kind(objects, "ClusterRole")["caseway-operator"]["rules"]
    assert rules == [
        {"apiGroups": ["caseway.io"], "resources": ["tenants"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["caseway.io"], "resources": ["tenants/status"], "verbs": ["patch"]},
    ]
    events = of_kind(objects, "Role")["caseway-operator-events"]
    assert events["metadata"]["namespace"] == "default", "where a cluster-scoped object's events go"
    assert events["rules"] == [{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}]
    role = of_kind(objects, "Role")["caseway-operator"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"][1]["resourceNames"] == ["caseway-operator"]
    assert of_kind(objects, "ClusterRoleBinding")["caseway-operator"]["subjects"][0]["namespace"] == NAMESPACE
    # In all mode it calls the one Deployment.
    all_mode = of_kind(render({"mode": "all", "operator": {"enabled": True}}), "Deployment")
    endpoint = env(container(all_mode["caseway-operator"]))["CASEWAY_OPERATOR_TENANCY_ENDPOINT"]["value"]
    assert endpoint == "http://caseway-all-peers.caseway.svc:50051"


def test_the_tenant_crd_is_in_the_chart_cluster_scoped_with_its_status():
    crd = yaml.safe_load((CHART / "crds" / "tenants.caseway.io.yaml").read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "tenants.caseway.io"
    assert crd["spec"]["scope"] == "Cluster"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert "status" in version["subresources"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert sorted(spec["required"]) == ["displayName", "slug"]


def test_the_alert_rules_and_the_dashboard_ship_with_the_chart():
    assert of_kind(render(), "PrometheusRule") == {}
    objects = render({"serviceMonitor": {"enabled": True}})
    rules = of_kind(objects, "PrometheusRule")["caseway"]["spec"]["groups"][0]["rules"]
    alerts = {r["alert"] for r in rules}
    assert {"CasewayOutboxStalled", "CasewayEventsParked", "CasewayHighErrorRatio", "CasewaySlowCalls"} <= alerts
    for rule in rules:
        assert rule["expr"] and rule["for"] and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"], rule["alert"]
    dashboard = of_kind(render(), "ConfigMap")["caseway-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["caseway.json"])["panels"]
    assert len(panels) >= 10 and all(p["targets"] for p in panels)
    assert not [o for o in render({"dashboard": {"enabled": False}}) if o["metadata"]["name"] == "caseway-dashboard"]
    # The alerts documented are the alerts shipped.
    operations = (CHART.parents[1] / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"`{alert}`" in operations, f"{alert} is not explained in docs/operations.md"


def test_the_tenants_pii_keys_are_kept_where_every_pod_shares_them():
    config = of_kind(render(), "ConfigMap")["caseway"]["data"]
    assert config["CASEWAY_PII_TENANT_KEYS"] == REQUIRED["config"]["piiTenantKeys"]
    # A pod's own folder would be lost with the pod, and two pods would make two keys.
    for values in [{}, {"mode": "all"}]:
        with pytest.raises(Exception, match="piiTenantKeys"):
            render({**values, "config": {"piiTenantKeys": ""}})


def test_the_operator_offboards_through_a_job_holding_the_owner_credentials_it_does_not():
    objects = render({"operator": {"enabled": True}})
    template = of_kind(objects, "ConfigMap")["caseway-operator-offboarding-job"]["data"]["job.json"]
    job = json.loads(template)
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    [job_container] = pod["containers"]
    assert job_container["args"] == ["tenant", "offboard"], "the operator adds the rest"
    env = {e["name"]: e for e in job_container["env"]}
    assert env["CASEWAY_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "caseway-database-owner"
    assert pod["automountServiceAccountToken"] is False
    operator = of_kind(objects, "Deployment")["caseway-operator"]
    op = container(operator)
    names = {e["name"] for e in op["env"]}
    assert "CASEWAY_OPERATOR_OFFBOARDING_JOB_TEMPLATE" in names
    assert "CASEWAY_MIGRATION_DATABASE_URL" not in names, "the operator holds no database credentials"
    role = of_kind(objects, "Role")["caseway-operator"]
    assert {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]} in role["rules"]
    off = render({"operator": {"enabled": True, "offboarding": {"enabled": False}}})
    assert "caseway-operator-offboarding-job" not in of_kind(off, "ConfigMap")
