"""fleetbr for Nornir: tasks and the ``fleetbr`` connection plugin (docs/api.md).

```python
from nornir import InitNornir
from fleetbr.nornir import fleetbr_apply

nr = InitNornir(inventory={"plugin": "SimpleInventory", "options": {...}})
result = nr.run(task=fleetbr_apply, task_file="tasks/bridge.yaml", dry_run=True)
```

The connection plugin is registered through the ``nornir.plugins.connections`` entry point as
``fleetbr``; host settings come from ``connection_options.fleetbr`` as in fleetbr's inventory.
"""

from fleetbr.nornir.connection import CONNECTION_NAME, FleetbrConnection
from fleetbr.nornir.loop import run_coroutine
from fleetbr.nornir.tasks import (
    FleetbrResult,
    HostFailed,
    fleetbr_apply,
    fleetbr_check,
    fleetbr_facts,
    fleetbr_plan,
    host_result,
)

# Short names: nr.run(task=fleetbr.nornir.apply, ...).
facts = fleetbr_facts
plan = fleetbr_plan
apply = fleetbr_apply
check = fleetbr_check

__all__ = [
    "CONNECTION_NAME",
    "FleetbrConnection",
    "FleetbrResult",
    "HostFailed",
    "apply",
    "check",
    "facts",
    "fleetbr_apply",
    "fleetbr_check",
    "fleetbr_facts",
    "fleetbr_plan",
    "host_result",
    "plan",
    "run_coroutine",
]
