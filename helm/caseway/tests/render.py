"""Renders the chart offline with the Helm v4 SDK: `render(values)` gives every object as a
dict; run as a program, it prints them as one JSON array for the values given as JSON in its
argument (the Rust test that reads every object into its k8s-openapi type uses it)."""

import json
import pathlib
import sys

import helm_python as helm
import yaml

CHART = pathlib.Path(__file__).resolve().parents[1]
NAMESPACE = "caseway"


# What every install must give: the chart refuses to render without it.
REQUIRED = {"config": {"piiTenantKeys": "s3://caseway-keys/tenant-keys"}}


def merged(base, over):
    """`base` with `over` laid on it, dictionaries merged key by key."""
    out = dict(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def render(values=None):
    """Every object the chart renders with `values` (over [`REQUIRED`]), as dicts."""
    chart = helm.Chart.load(str(CHART))
    out = chart.render(merged(REQUIRED, values), name="caseway", namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(out.items()):
        if not path.endswith(".yaml"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


if __name__ == "__main__":
    values = json.loads(sys.argv[1]) if len(sys.argv) > 1 else None
    json.dump(render(values), sys.stdout)
