"""Set `spec.version` of a GhostPayInstance in a GitOps repository's YAML file, changing nothing else.

The release workflow (.github/workflows/release.yaml) runs it on a checkout of the GitOps repository; committing the
change is what starts the operator's blue-green or canary release once ArgoCD (or Flux) syncs it. Only the
characters of the version's value are replaced, found through PyYAML's node positions, so comments, key order,
quoting elsewhere and every other document in the file stay byte for byte as they were (a load-and-dump would
lose the comments and reflow the file, which makes a noisy GitOps diff).

    python -m ghostpay_devtools.gitops FILE VERSION [--name NAME]

Prints `name=`, `image=`, `previous=` and `changed=true|false` lines (the format of $GITHUB_OUTPUT); exits 2 with a
message when the version would be refused by the CRD, or the file holds no (or more than one) matching instance.
Needs only PyYAML, so the workflow runs it without installing GhostPay.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# spec.version's schema in crds/ghostpayinstances.ghostpay.io.yaml (tests/test_gitops.py checks they agree).
VERSION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
VERSION_MAX_LENGTH = 128
KIND = "GhostPayInstance"
API_GROUP = "ghostpay.io/"


class BumpError(ValueError):
    """The file or the version cannot be used; the message says why."""


@dataclass(frozen=True)
class Bumped:
    text: str  # the whole file, the version replaced (the same text when it was already set)
    name: str  # the instance's metadata.name
    image: str  # its spec.image (the repository the tag must exist in)
    previous: str  # the spec.version it had


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key and isinstance(value_node, yaml.Node):
            return value_node
    return None


def _scalar(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def check_version(version: str) -> None:
    if len(version) > VERSION_MAX_LENGTH or not re.match(VERSION_PATTERN, version):
        raise BumpError(f"version {version!r} is not an image tag the CRD accepts ({VERSION_PATTERN}, at most 128)")


def bump(text: str, version: str, name: str | None = None) -> Bumped:
    """`text` with the matching instance's spec.version set to `version`, and what was found there."""
    check_version(version)
    found: list[tuple[str, yaml.Node, yaml.Node]] = []  # (name, spec, version node)
    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if document is None or _scalar(_get(document, "kind")) != KIND:
            continue
        if not _scalar(_get(document, "apiVersion")).startswith(API_GROUP):
            continue
        instance = _scalar(_get(_get(document, "metadata") or yaml.MappingNode("", []), "name"))
        if name is not None and instance != name:
            continue
        spec = _get(document, "spec")
        value = _get(spec, "version") if spec is not None else None
        if spec is None or not isinstance(value, yaml.ScalarNode):
            raise BumpError(f"{KIND} {instance!r} has no spec.version to set")
        found.append((instance, spec, value))
    wanted = f"{KIND} named {name!r}" if name else KIND
    if not found:
        raise BumpError(f"no {wanted} in the file")
    if len(found) > 1:
        names = ", ".join(instance for instance, _, _ in found)
        raise BumpError(f"{len(found)} of {wanted} in the file ({names}); choose one with --name")
    instance, spec, value = found[0]
    # Double-quoted: a tag such as 1.10 or 1e3 would otherwise read back as a number.
    start, end = value.start_mark.index, value.end_mark.index
    new_text = text[:start] + f'"{version}"' + text[end:] if value.value != version else text
    return Bumped(new_text, instance, _scalar(_get(spec, "image")), _scalar(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostpay_devtools.gitops", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="YAML file holding the GhostPayInstance")
    parser.add_argument("version", help="the image tag to release")
    parser.add_argument("--name", help="the instance's metadata.name, when the file holds several")
    arguments = parser.parse_args(argv)
    try:
        text = arguments.file.read_text()
        bumped = bump(text, arguments.version, arguments.name)
    except (OSError, yaml.YAMLError, BumpError) as error:
        print(f"gitops: {arguments.file}: {error}", file=sys.stderr)
        return 2
    changed = bumped.text != text
    if changed:
        arguments.file.write_text(bumped.text)
    print(f"name={bumped.name}\nimage={bumped.image}\nprevious={bumped.previous}\nchanged={str(changed).lower()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
