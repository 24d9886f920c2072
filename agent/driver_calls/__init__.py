"""Typed coroutines for the driver methods the agent serves; `ComputeClient` inherits them.

Each is a declared signature that `driver_call` turns into a `ComputeClient.call` of the
method of its name, sending every argument under its parameter's name. Its handler's
signature is the contract (tests/agent/test_client_contract.py checks every one):

- `host` first (the agent to ask), then exactly the handler's parameters after `self`, with
  the same names, order, types and defaults, and the handler's result type;
- then the client's own keyword-only options: `rpc_timeout` (seconds; the client's default
  when None) and `message_id` (an idempotency key, see `ComputeClient.call`).

How a call is addressed gives three cases:

- a host handler's own `host` parameter (`host_maintenance_mode`) is the target host itself;
- an instance method goes to the actor of its `instance` argument's uuid; one that takes no
  instance (`poll_rebooting_instances`) is addressed by a keyword-only `uuid`;
- a method both scopes serve (`get_info`) takes the host handler's parameters, then the
  instance handler's others keyword-only, all optional: given the instance's, the call goes
  to that instance's actor; otherwise to the host.

Every one raises the agent's error as its own class, `CallTimeout` when no reply came within
`rpc_timeout`, and retries `AgentInitializing` within it. Cancelling one stops the wait, not
the work: an agent that started the method finishes it (send it again under the same
`message_id` to learn the outcome).
"""

from __future__ import annotations

from agent.driver_calls.caller import Caller
from agent.driver_calls.devices import InstanceDeviceCalls
from agent.driver_calls.host import HostDriverCalls
from agent.driver_calls.lifecycle import InstanceLifecycleCalls
from agent.driver_calls.queries import InstanceQueryCalls

__all__ = [
    "Caller",
    "DriverCalls",
    "HostDriverCalls",
    "InstanceDeviceCalls",
    "InstanceLifecycleCalls",
    "InstanceQueryCalls",
]


class DriverCalls(HostDriverCalls, InstanceLifecycleCalls, InstanceDeviceCalls, InstanceQueryCalls):
    """Every served driver method, host-scoped and per instance."""
