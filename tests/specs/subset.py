"""Cut the parts of a provider's official OpenAPI document that the tests use.

    python tests/specs/subset.py openai   path/to/openai-openapi.yaml   [-o tests/specs/openai-openapi.yaml]
    python tests/specs/subset.py together path/to/together-openapi.yaml [-o tests/specs/together-openapi.yaml]

The subset keeps, unchanged:

* ``openapi``, ``info``, ``servers``, ``security`` and ``components.securitySchemes``;
* the whole path item (every method, parameter, request body and response) of each path
  in ``PATHS[provider]`` (an entry ending in ``/*`` also takes every path below it);
* every component reachable from those through ``$ref`` (and ``discriminator.mapping``),
  transitively, plus ``EXTRA[provider]`` (the error bodies the checker validates against);
* the ``tags`` the kept operations name.

Everything else (other paths, ``webhooks``, ``x-oaiMeta`` navigation) is left out. The
output is deterministic: keys keep the document's order. It fails when a ``$ref`` in the
subset does not resolve, or when a listed path is not in the document.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

HERE = Path(__file__).resolve().parent

#: The operations the emulator, the cassettes and the checks use (tests/emulator.py
#: route table, tests/test_provider_*.py), with the rest of their families.
PATHS = {
    "openai": [
        "/files", "/files/*",
        "/fine_tuning/jobs", "/fine_tuning/jobs/*",
        "/chat/completions",
        "/models", "/models/*",
    ],
    "together": [
        "/files", "/files/*",
        "/fine-tunes", "/fine-tunes/*",
        "/finetune/download",
        "/chat/completions",
        "/models",
    ],
}

#: Components kept even when no kept path refers to them (``ERROR_SCHEMAS`` in
#: tests/openapi_check.py).
EXTRA = {
    "openai": ["#/components/schemas/ErrorResponse"],
    "together": ["#/components/schemas/ErrorData"],
}

TOP_KEYS = ("openapi", "info", "servers", "security")

HEADER = """\
# Subset of the {title} OpenAPI document ({name}-openapi.yaml), as published: the paths the
# tests use and every component they reach through $ref, unchanged. Source, commit and
# licence (MIT): tests/specs/README.md. Regenerate: python tests/specs/subset.py {name} FULL.yaml
"""


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(ref: str) -> list[str]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref!r}")
    return [_unescape(t) for t in ref[2:].split("/")]


def _resolve(doc: Any, ref: str) -> Any:
    node = doc
    for token in _pointer(ref):
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise KeyError(f"$ref {ref!r} does not resolve (no {token!r})")
    return node


def refs_in(node: Any) -> Iterator[str]:
    """Every ``$ref`` value and ``discriminator.mapping`` target below ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k == "discriminator" and isinstance(v, dict) and isinstance(v.get("mapping"), dict):
                yield from (t for t in v["mapping"].values() if isinstance(t, str) and t.startswith("#/"))
                yield from refs_in({kk: vv for kk, vv in v.items() if kk != "mapping"})
            else:
                yield from refs_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs_in(v)


def _unit(ref: str) -> tuple[str, ...]:
    """The smallest whole part of the document that ``ref`` lands in: a component
    (``components/<kind>/<name>``) or a path item (``paths/<path>``)."""
    tokens = _pointer(ref)
    if tokens[0] == "components" and len(tokens) >= 3:
        return tuple(tokens[:3])
    if tokens[0] == "paths" and len(tokens) >= 2:
        return tuple(tokens[:2])
    raise ValueError(f"$ref {ref!r} points outside components and paths")


def select_paths(doc: dict, wanted: list[str]) -> list[str]:
    paths = list(doc.get("paths", {}))
    out = []
    for w in wanted:
        if w.endswith("/*"):
            base = w[:-2]
            hits = [p for p in paths if p.startswith(base + "/")]
        else:
            hits = [p for p in paths if p == w]
        if not hits:
            raise KeyError(f"{w!r} matches no path in the document")
        out += hits
    return [p for p in paths if p in set(out)]  # the document's order, each once


def subset(doc: dict, provider: str) -> dict:
    keep_paths = set(select_paths(doc, PATHS[provider]))
    units: set[tuple[str, ...]] = {("paths", p) for p in keep_paths}
    todo = [doc["paths"][p] for p in keep_paths]
    todo += [_resolve(doc, r) for r in EXTRA[provider]]
    units |= {_unit(r) for r in EXTRA[provider]}
    while todo:
        node = todo.pop()
        for ref in refs_in(node):
            _resolve(doc, ref)  # KeyError when it does not resolve
            unit = _unit(ref)
            if unit not in units:
                units.add(unit)
                todo.append(_resolve(doc, "#/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in unit)))

    out: dict = {k: doc[k] for k in TOP_KEYS if k in doc}
    used_tags = {t for p in keep_paths for op in doc["paths"][p].values()
                 if isinstance(op, dict) for t in op.get("tags", [])}
    if "tags" in doc:
        tags = [t for t in doc["tags"] if t.get("name") in used_tags]
        if tags:
            out["tags"] = tags
    out["paths"] = {p: v for p, v in doc["paths"].items() if ("paths", p) in units}
    components: dict = {}
    for kind, entries in doc.get("components", {}).items():
        if kind == "securitySchemes":
            components[kind] = entries
            continue
        kept = {name: v for name, v in entries.items() if ("components", kind, name) in units}
        if kept:
            components[kind] = kept
    out["components"] = components
    check(out)
    return out


def check(doc: dict) -> int:
    """Raise KeyError unless every reference in ``doc`` resolves within it; the count."""
    n = 0
    for ref in refs_in(doc):
        _resolve(doc, ref)
        n += 1
    return n


def dump(doc: dict, provider: str) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    body = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=False)
    return HEADER.format(title=doc["info"]["title"], name=provider) + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("provider", choices=sorted(PATHS))
    ap.add_argument("source", type=Path, help="the full published document (YAML)")
    ap.add_argument("-o", "--output", type=Path, help="default: tests/specs/<provider>-openapi.yaml")
    args = ap.parse_args(argv)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(args.source, "rb") as fh:
        doc = yaml.load(fh, Loader=loader)
    out = subset(doc, args.provider)
    text = dump(out, args.provider)
    again = yaml.load(text, Loader=loader)
    if again != out:  # the YAML round trip must not change a value
        raise SystemExit("the written YAML does not read back as the subset")
    dest = args.output or HERE / f"{args.provider}-openapi.yaml"
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    print(f"{dest}: {len(out['paths'])} of {len(doc['paths'])} paths, "
          f"{sum(len(v) for v in out['components'].values())} components, {len(text):,} bytes",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
