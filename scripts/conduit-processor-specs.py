#!/usr/bin/env python3
"""Derive the facts of Conduit's built-in processor specifications into a fixture.

Reads the specification files Conduit exports for its built-in processors
(pkg/plugin/processor/builtin/internal/exampleutil/specs/*.json) from a Conduit git
checkout and writes, for each processor, only the facts a drop-in must match: its name,
version and each parameter's type, default and validations. No descriptions are kept.

    scripts/conduit-processor-specs.py /path/to/conduit > builtin-processors/fixtures/conduit-processor-specs.json

The output records the Conduit commit it was derived from.
"""
import json
import subprocess
import sys

SPECS = "pkg/plugin/processor/builtin/internal/exampleutil/specs"


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True, text=True
    ).stdout


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: conduit-processor-specs.py CONDUIT_CHECKOUT")
    repo = sys.argv[1]
    commit = git(repo, "rev-parse", "HEAD").strip()
    processors = {}
    for path in git(repo, "ls-tree", "--name-only", "HEAD", SPECS + "/").split():
        spec = json.loads(git(repo, "show", f"HEAD:{path}"))["specification"]
        processors[spec["name"]] = {
            "version": spec["version"],
            "parameters": {
                name: {
                    "type": p.get("type") or "string",
                    "default": p.get("default") or "",
                    "validations": [
                        {"type": v["type"], "value": v.get("value") or ""}
                        for v in (p.get("validations") or [])
                    ],
                }
                for name, p in sorted(spec["parameters"].items())
            },
        }
    json.dump(
        {"conduit_commit": commit, "processors": dict(sorted(processors.items()))},
        sys.stdout,
        indent=1,
        sort_keys=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
