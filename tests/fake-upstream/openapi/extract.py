#!/usr/bin/env python3
"""Extract the GHES 3.19 operations the fake serves, with every component they reference.

Run from this folder: python3 extract.py [/path/to/ghes-3.19.json]
It writes ghes-3.19-subset.json, which the crate's tests read (CI has no copy of the full
11 MB description). The operations list below is the contract of the fake GitHub server.
"""
import hashlib
import json
import sys

SOURCE = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/api-descriptions/ghes-3.19.json"

# (method, path) of every operation the fake implements.
OPERATIONS = [
    ("get", "/user"),
    ("get", "/user/repos"),
    ("get", "/search/repositories"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/branches"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("delete", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("get", "/repos/{owner}/{repo}/commits"),
    ("get", "/search/code"),
    ("get", "/repos/{owner}/{repo}/issues"),
    ("post", "/repos/{owner}/{repo}/issues"),
    ("get", "/issues"),
    ("get", "/search/issues"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("patch", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/actions/runs"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"),
    ("get", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"),
]


def refs_in(node, found):
    """Collect every $ref string below node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            refs_in(value, found)
    elif isinstance(node, list):
        for value in node:
            refs_in(value, found)


def resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def main():
    raw = open(SOURCE, "rb").read()
    doc = json.loads(raw)
    paths = {}
    for method, path in OPERATIONS:
        op = dict(doc["paths"][path][method])
        op.pop("x-octokit", None)
        paths.setdefault(path, {})[method] = op
    # Close over references: operations -> components -> components.
    components = {}
    pending = set()
    refs_in(paths, pending)
    seen = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = resolve(doc, ref)
        components.setdefault(kind, {})[name] = node
        refs_in(node, pending)
    out = {
        "openapi": doc["openapi"],
        "info": {
            "title": "GHES 3.19 REST API subset served by fake-upstream",
            "version": doc["info"].get("version", ""),
            "license": {"name": "MIT"},
            "x-source-sha256": hashlib.sha256(raw).hexdigest(),
        },
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }
    with open("ghes-3.19-subset.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"{len(OPERATIONS)} operations, {sum(len(v) for v in components.values())} components")


if __name__ == "__main__":
    main()
