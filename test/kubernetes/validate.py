#!/usr/bin/python3
"""Checks Kubernetes manifests against the API's own models, offline: Debian's python3-kubernetes
(the client generated from the Kubernetes OpenAPI specification). Every field must be one the
object's kind defines (a typo such as `privilegd` is an error, as `kubectl apply --validate=strict`
makes it), of its type, and every required field present.

Usage: validate.py FILE...   Prints a JSON list of "file#document: path: problem" strings."""
import json
import re
import sys

import yaml
from kubernetes import client

GROUPS = {'v1': 'V1', 'apps/v1': 'V1', 'rbac.authorization.k8s.io/v1': 'V1', 'policy/v1': 'V1'}
SCALARS = {'str': str, 'int': int, 'bool': bool, 'float': (int, float), 'datetime': str, 'date': str}


def check(value, typ, path, errors):
    if typ == 'object':  # IntOrString, raw extensions: any value
        return
    m = re.fullmatch(r'list\[(.*)\]', typ)
    if m:
        if not isinstance(value, list):
            errors.append(f'{path}: a list expected')
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f'{path}[{i}]', errors)
        return
    m = re.fullmatch(r'dict\(([^,]*), (.*)\)', typ)
    if m:
        if not isinstance(value, dict):
            errors.append(f'{path}: a map expected')
            return
        for k, v in value.items():
            check(v, m.group(2), f'{path}.{k}', errors)
        return
    if typ in SCALARS:
        ok = isinstance(value, SCALARS[typ]) and not (typ in ('int', 'float') and isinstance(value, bool))
        if not ok:
            errors.append(f'{path}: {typ} expected, got {type(value).__name__}')
        return
    cls = getattr(client, typ, None)
    if cls is None:
        errors.append(f'{path}: unknown model {typ}')
        return
    if not isinstance(value, dict):
        errors.append(f'{path}: an object ({typ}) expected')
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in by_json:
            errors.append(f'{path}.{key}: no such field in {typ}')
            continue
        check(v, cls.openapi_types[by_json[key]], f'{path}.{key}', errors)
    # The model's own checks: required fields, and the few values it restricts.
    try:
        cls(**{by_json[k]: v for k, v in value.items() if k in by_json})
    except ValueError as e:
        errors.append(f'{path}: {e}')


def main():
    errors = []
    for file in sys.argv[1:]:
        with open(file) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for i, doc in enumerate(docs):
            where = f'{file}#{i}'
            prefix = GROUPS.get(doc.get('apiVersion'))
            kind = doc.get('kind')
            if not prefix or not kind:
                errors.append(f'{where}: apiVersion {doc.get("apiVersion")!r} / kind {kind!r} not known here')
                continue
            check(doc, f'{prefix}{kind}', where, errors)
    print(json.dumps(errors))


main()
