"""The image and the local stack, read as files (there is no Docker engine to build or run
them here): the Dockerfile builds the dependencies in a layer of their own, runs as a numeric
user on a base with no shell and checks its health with the binary; checkov finds nothing in
it; docker-compose pins its images, keeps its data in volumes and watches Caseway's health."""

import json
import pathlib
import re
import shutil
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def test_the_dependencies_are_built_before_the_source_is_copied():
    text = dockerfile()
    cook = text.index("cargo chef cook")
    assert text.index("COPY . .", cook) > cook, "the source is copied after the cook"
    plan = text.index("cargo chef prepare")
    assert plan < cook


def test_the_image_runs_as_a_numeric_user_with_no_shell_and_checks_its_own_health():
    text = dockerfile()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages[-1].startswith("gcr.io/distroless/"), "the runtime has no shell"
    runtime = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert "RUN " not in runtime, "nothing runs a shell in the runtime stage"
    assert re.search(r'^HEALTHCHECK .*CMD \["caseway", "probe"\]$', runtime, re.M)
    assert re.search(r'^ENTRYPOINT \["caseway"\]$', runtime, re.M)
    aliases = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
    for image in (s for s in stages if s not in aliases):
        assert ":" in image and not image.endswith(":latest"), image


def test_checkov_finds_nothing_in_the_dockerfile(tmp_path):
    checkov = shutil.which("checkov")
    assert checkov, "checkov (PyPI) is needed"
    run = subprocess.run(
        [checkov, "-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile", "--quiet",
         "--compact", "--skip-download", "-o", "json"],
        capture_output=True, text=True,
        env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [f["check_id"] for r in reports for f in r["results"]["failed_checks"]]
    assert failed == [], failed
    assert sum(r["summary"]["passed"] for r in reports) > 20


def test_compose_pins_its_images_keeps_its_data_and_watches_caseway():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        image = service.get("image")
        if image:
            tag = image.rpartition(":")[2]
            assert re.match(r"^\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    caseway = services["caseway"]
    data_dir = caseway["environment"]["CASEWAY_DATA_DIR"]
    assert any(v.endswith(f":{data_dir}") for v in caseway["volumes"]), "the keys outlive a rebuild"
    assert caseway["healthcheck"]["test"] == ["CMD", "caseway", "probe"]
    assert caseway["restart"] in ("unless-stopped", "always", "on-failure")
    assert set(compose["volumes"]) >= {"postgres-data", "caseway-data"}
