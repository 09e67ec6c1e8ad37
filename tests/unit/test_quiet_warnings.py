"""fleetbr keeps dependencies' deprecation noise off stderr, unless the user asks for warnings."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from fleetbr._quiet import quiet_dependency_warnings, show_dependency_warnings


class FakeCryptographyDeprecation(UserWarning):
    """Shaped like cryptography's CryptographyDeprecationWarning (a UserWarning subclass)."""


def _emit(module: str, message: str = "DSA is deprecated and support will be removed") -> None:
    warnings.warn_explicit(message, FakeCryptographyDeprecation, "x.py", 1, module=module)


def test_asyncssh_deprecations_are_quiet_others_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "warnoptions", [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_dependency_warnings()
        _emit("asyncssh.crypto.misc")
        _emit("asyncssh")
        _emit("fleetbr.transport.ssh")
        _emit("asyncssh.connection", "something else went wrong")
    assert [(str(w.message), w.filename) for w in seen] == [
        ("DSA is deprecated and support will be removed", "x.py"),
        ("something else went wrong", "x.py"),
    ]


def test_user_warning_options_and_verbose_show_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        monkeypatch.setattr(sys, "warnoptions", ["default"])
        quiet_dependency_warnings()
        _emit("asyncssh.crypto.misc")
        monkeypatch.setattr(sys, "warnoptions", [])
        quiet_dependency_warnings()
        show_dependency_warnings()
        _emit("asyncssh.crypto.dsa")
    assert len(seen) == 2


def test_importing_the_ssh_transport_prints_nothing() -> None:
    """Before: cryptography 51 made asyncssh 2.24 print 10 lines at import, in every command."""
    done = subprocess.run(
        [sys.executable, "-c", "import fleetbr.transport.ssh, fleetbr.cli"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stderr == ""
