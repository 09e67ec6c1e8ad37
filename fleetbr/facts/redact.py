"""Secret values taken out of network config file contents before they are shown.

The facts carry the text of the netplan, networkd and ifupdown files (the backends rewrite them
from it); ``--json facts``, the API's and Nornir's results show it. A Wi-Fi ``wpa-psk``, a
netplan ``password``, a WireGuard ``PrivateKey`` must not travel with it: every value of a key
whose name looks secret is replaced by :data:`REDACTED`. This is for output only: the typed
:class:`~fleetbr.facts.model.HostFacts` keeps the text the backends need.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from fleetbr.errors import ValidationError
from fleetbr.validate import bounded_yaml, split_lines

REDACTED = "<redacted>"
WITHHELD_YAML = "<withheld: not YAML fleetbr can read, it may hold secrets>\n"
# Over-matching is harmless here (an output shows a little less); missing a secret is not.
SECRET_KEY = re.compile(r"pass|psk|secret|key|token|private|shared|auth|identity|cert|pin\b", re.I)
YAML_VALUES = 10_000  # as the facts parser's bound for a netplan file
# One "key value", "key=value" or "key: value" line, possibly commented out or a YAML list item.
_LINE = re.compile(
    r"""^(?P<lead>\s*(?:[#;]+\s*)?(?:-\s+)?)(?P<q>["']?)(?P<key>[^\s=:"'#;]+)(?P=q)"""
    r"""(?P<sep>\s*[=:]\s*|\s+)(?P<value>\S.*)$"""
)


def redacted_contents(contents: Mapping[str, str]) -> dict[str, str]:
    """path -> text with every secret-looking value replaced (YAML files by ``.yaml``)."""
    return {path: _redact(path, text) for path, text in contents.items()}


def _redact(path: str, text: str) -> str:
    return redact_yaml(text) if path.endswith(".yaml") else redact_lines(text)


def redact_lines(text: str) -> str:
    """ifupdown and systemd-networkd text: the value of a secret-looking key is replaced, in
    comments too; continuation lines (a trailing backslash) of a replaced value go as well."""
    out: list[str] = []
    continued = False
    for line in split_lines(text):
        if continued:
            out.append(REDACTED)
            continued = line.endswith("\\")
            continue
        match = _LINE.match(line)
        if match and SECRET_KEY.search(match["key"]):
            out.append(line[: match.start("value")] + REDACTED)
            continued = line.endswith("\\")
        else:
            out.append(line)
    return "\n".join(out)


def redact_yaml(text: str) -> str:
    """Netplan YAML: a document with secret-looking keys is shown re-serialised with their values
    replaced (comments dropped); one without is shown as it is, commented-out secrets replaced.
    Text that does not load as bounded YAML is withheld whole."""
    try:
        document = bounded_yaml(text, YAML_VALUES, "netplan file")
    except (yaml.YAMLError, ValidationError):
        return WITHHELD_YAML
    cleaned, found = _redact_node(document)
    if not found:
        return redact_lines(text)
    return yaml.safe_dump(cleaned, sort_keys=False, default_flow_style=False)


def _redact_node(node: object) -> tuple[object, bool]:
    if isinstance(node, dict):
        out: dict[object, object] = {}
        found = False
        for key, value in node.items():
            if SECRET_KEY.search(str(key)):
                out[key], found = REDACTED, True
            else:
                out[key], inner = _redact_node(value)
                found = found or inner
        return out, found
    if isinstance(node, list):
        items = [_redact_node(item) for item in node]
        return [item for item, _ in items], any(inner for _, inner in items)
    return node, False
