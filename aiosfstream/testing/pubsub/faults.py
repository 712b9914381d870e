"""Failure injection: make the next calls of an RPC fail with a chosen status and error code."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from .failures import RpcFailure

__all__ = ["FAULT_RPCS", "Fault", "FaultPlan"]

#: The RPCs a fault can be planned for.
FAULT_RPCS = ("Subscribe", "Publish", "GetTopic", "GetSchema", "PublishStream")


@dataclass
class Fault:
    """A planned failure; a Subscribe with *after_events* delivers that many events first."""

    rpc: str
    failure: RpcFailure
    times: int
    after_events: int = 0


class FaultPlan:
    """The faults waiting for their RPC, first planned first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        rpc: str,
        status: str | grpc.StatusCode,
        error_code: str | None,
        *,
        times: int = 1,
        after_events: int = 0,
    ) -> Fault:
        """Plan a fault; arguments as for :meth:`PubSubEmulator.fail_next`."""
        if rpc not in FAULT_RPCS:
            raise ValueError(f"rpc must be one of {', '.join(FAULT_RPCS)}, got {rpc!r}")
        code = _status(status)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive int, got {times!r}")
        if isinstance(after_events, bool) or not isinstance(after_events, int) or after_events < 0:
            raise ValueError(f"after_events must be an int >= 0, got {after_events!r}")
        if after_events and rpc != "Subscribe":
            raise ValueError("after_events applies to Subscribe only")
        if error_code is not None and not isinstance(error_code, str):
            raise TypeError(f"error_code must be a str or None, got {type(error_code).__name__}")
        message = f"Injected failure: {code.name}."
        fault = Fault(rpc, RpcFailure(code, error_code, message), times, after_events)
        self._faults.append(fault)
        return fault

    def take(self, rpc: str) -> Fault | None:
        """The next fault for *rpc*, used up once it has fired *times* times."""
        for fault in self._faults:
            if fault.rpc == rpc:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()


def _status(status: str | grpc.StatusCode) -> grpc.StatusCode:
    if isinstance(status, str):
        member = grpc.StatusCode.__members__.get(status.upper())
        if member is None:
            raise ValueError(f"status must name a grpc.StatusCode, got {status!r}")
        status = member
    elif not isinstance(status, grpc.StatusCode):
        raise TypeError(f"status must be a str or grpc.StatusCode, got {type(status).__name__}")
    if status is grpc.StatusCode.OK:
        raise ValueError("status must be a failure, not OK")
    return status
