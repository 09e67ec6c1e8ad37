"""Secret values are taken out of config file contents in the facts' output, never out of the
text the backends rewrite (issue 20 item 7)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from fleetbr.backends import plan_backend
from fleetbr.facts.redact import REDACTED, WITHHELD_YAML, redact_lines, redact_yaml
from tests.unit.test_backends_plan import config, facts

SECRETS = ("s3cr3t-psk", "s3cr3t-pw", "s3cr3t-wep", "s3cr3t-old", "s3cr3t-more", "s3cr3t-key")

IFUPDOWN = """\
auto wlan0
iface wlan0 inet dhcp
    wpa-ssid lab
    wpa-psk s3cr3t-psk
    wpa-password s3cr3t-pw
    wireless-key s:s3cr3t-wep
#   wpa-psk s3cr3t-old
    wpa-passphrase first \\
        s3cr3t-more
    address 198.51.100.20/24
"""

NETDEV = """\
[NetDev]
Name=wg0
Kind=wireguard

[WireGuard]
PrivateKey = s3cr3t-key
ListenPort=51820

[WireGuardPeer]
PresharedKey=s3cr3t-psk
Endpoint=203.0.113.1:51820
"""

NETPLAN = """\
network:
  version: 2
  wifis:
    wlan0:
      dhcp4: true
      access-points:
        "lab":
          password: "s3cr3t-pw"
        other:
          auth: {key-management: psk, "pass\\x77ord": s3cr3t-psk}
  tunnels:
    wg0:
      mode: wireguard
      keys:
        private: s3cr3t-key
"""


def test_ifupdown_secrets_are_redacted_the_rest_kept() -> None:
    shown = redact_lines(IFUPDOWN)
    assert not any(secret in shown for secret in SECRETS), shown
    assert "    wpa-psk <redacted>\n" in shown and "#   wpa-psk <redacted>\n" in shown
    assert "    wpa-ssid lab\n" in shown and "    address 198.51.100.20/24\n" in shown
    assert len(shown.split("\n")) == len(IFUPDOWN.split("\n"))


def test_networkd_secrets_are_redacted_the_rest_kept() -> None:
    shown = redact_lines(NETDEV)
    assert "s3cr3t" not in shown
    assert "PrivateKey = <redacted>" in shown and "PresharedKey=<redacted>" in shown
    assert "ListenPort=51820" in shown and "Endpoint=203.0.113.1:51820" in shown


def test_netplan_secrets_are_redacted_even_behind_yaml_escapes() -> None:
    shown = redact_yaml(NETPLAN)
    assert "s3cr3t" not in shown
    doc = yaml.safe_load(shown)
    wlan0 = doc["network"]["wifis"]["wlan0"]
    assert wlan0["access-points"]["lab"]["password"] == REDACTED
    assert wlan0["access-points"]["other"]["auth"] == REDACTED
    assert doc["network"]["tunnels"]["wg0"] == {"mode": "wireguard", "keys": REDACTED}
    assert wlan0["dhcp4"] is True


def test_netplan_without_secrets_is_shown_as_written_bar_commented_ones() -> None:
    text = "# password: s3cr3t-old\nnetwork:\n  version: 2  # kept\n"
    assert redact_yaml(text) == "# password: <redacted>\nnetwork:\n  version: 2  # kept\n"


def test_yaml_that_does_not_load_is_withheld_whole() -> None:
    assert redact_yaml("network: [\n  password: s3cr3t-pw\n") == WITHHELD_YAML
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert redact_yaml(bomb) == WITHHELD_YAML


@pytest.mark.parametrize("levels", [70, 400, 5000])
def test_yaml_nested_too_deep_is_withheld_not_a_crash(levels: int) -> None:
    """A host's netplan file nested a few hundred levels deep raised RecursionError out of the
    facts parser (PyYAML's loader recurses); now it is withheld like any unusable YAML."""
    deep = "network: " + "[" * levels + "password: s3cr3t-pw" + "]" * levels + "\n"
    assert redact_yaml(deep) == WITHHELD_YAML


def test_facts_output_is_redacted_while_the_backend_rewrites_the_secret() -> None:
    f = facts("ifupdown")
    path = "/etc/network/interfaces"
    text = f.daemons.contents[path] + "\n" + IFUPDOWN
    f = dataclasses.replace(
        f, daemons=dataclasses.replace(f.daemons, contents={**f.daemons.contents, path: text})
    )
    shown = json.dumps(f.to_dict())
    assert not any(secret in shown for secret in SECRETS)
    assert "wpa-psk <redacted>" in f.to_dict()["daemons"]["contents"][path]
    # what the backend writes keeps the other stanzas byte for byte, secrets included
    (change,) = plan_backend("ifupdown", config(f), f).files
    assert "    wpa-psk s3cr3t-psk\n" in (change.content or "")
    assert f.daemons.contents[path] == text
