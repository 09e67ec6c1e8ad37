"""Keep dependencies' import-time deprecation noise off the operator's stderr.

asyncssh still names DSA, TripleDES and other algorithms that newer cryptography releases mark
deprecated; each name costs a ``CryptographyDeprecationWarning`` at import, ten lines before
every result. They say nothing about what fleetbr does (it never offers those algorithms). The
filter is narrow: only deprecation warnings attributed to asyncssh's own modules. It is not
installed when the user asked for warnings (``-W`` or ``PYTHONWARNINGS``), and ``-v`` removes it.
"""

from __future__ import annotations

import sys
import warnings

# Attributed to the line in asyncssh that touched a deprecated name (the warning's stacklevel).
_MODULE = r"asyncssh(\..*)?$"
_MESSAGE = r".*(is deprecated|will be removed)"


def quiet_dependency_warnings() -> None:
    """Ignore asyncssh's deprecation warnings unless the user asked for warnings explicitly."""
    if sys.warnoptions:
        return
    # CryptographyDeprecationWarning derives from UserWarning; naming it would import cryptography.
    warnings.filterwarnings("ignore", message=_MESSAGE, category=UserWarning, module=_MODULE)
    warnings.filterwarnings("ignore", message=_MESSAGE, category=DeprecationWarning,
                            module=_MODULE)  # fmt: skip


def show_dependency_warnings() -> None:
    """Undo :func:`quiet_dependency_warnings` (for ``-v``); call before asyncssh is imported."""
    # typeshed (mypy 2.4) types it as a Sequence; it is the module's list, changed in place
    warnings.filters[:] = [f for f in warnings.filters if not _is_ours(f)]  # type: ignore[index]


def _is_ours(entry: tuple[object, ...]) -> bool:
    action, message, _category, module, _lineno = entry
    pattern = getattr(module, "pattern", None)
    return action == "ignore" and pattern == _MODULE and getattr(message, "pattern", "") == _MESSAGE
