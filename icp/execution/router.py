"""A small in-process driver: one subnet's canisters, a FIFO of messages, a clock.

``Router`` is the test and embedding harness for the execution layer (the real
scheduler and XNet streams live in ``icp.messaging``).  It delivers the
outputs of ``execute_message`` — requests, responses, ingress results — in
FIFO order, answers calls to ``aaaaa-aa`` through ``management``, rejects
calls to unknown canisters with DESTINATION_INVALID, fires due global timers
on ``tick``, and draws ``raw_rand`` bytes from a seeded SHA-256 tape.  Time is
injected (``time`` attribute, nanoseconds) and only moves when told to.

Spec: interface spec §"Abstract behavior" (message routing on one subnet),
digest §1.9 (ordering between a pair of canisters is preserved by the FIFO).
"""

from __future__ import annotations

import hashlib
from collections import deque

import attrs

from icp.execution.canister import CanisterOrigin, CanisterState, IngressOrigin, Origin
from icp.execution.errors import CanisterError, ErrorCode, RejectCode
from icp.execution.executor import (
    CanisterRequest,
    CanisterResponse,
    ExecutionEnvironment,
    IngressMessage,
    IngressResult,
    Message,
    Output,
    charge_idle_resources,
    execute_global_timer,
    execute_heartbeat,
    execute_message,
    execute_query,
    reject_of,
)
from icp.execution.management import SubnetExecutionState, execute_management_call
from icp.execution.system_api import Reject, Response

MANAGEMENT = b""


class Router:
    """Drive one subnet's execution in process (deterministic)."""

    def __init__(
        self,
        env: ExecutionEnvironment,
        *,
        time: int = 1_700_000_000_000_000_000,
        seed: bytes = b"icp",
    ) -> None:
        self.env = env
        self.time = time
        self.subnet = SubnetExecutionState()
        self.queue: deque[Message] = deque()
        self.results: dict[bytes, Response] = {}
        self._seed = seed
        self._rand_counter = 0
        self._msg_counter = 0
        self.executed = 0
        self._charged_until = time

    # ---- helpers -----------------------------------------------------------
    def canister(self, canister_id: bytes) -> CanisterState:
        """Return a canister's state (KeyError if absent)."""
        return self.subnet.canisters[canister_id]

    def put(self, state: CanisterState) -> None:
        """Replace a canister's state."""
        self.subnet = attrs.evolve(
            self.subnet, canisters={**self.subnet.canisters, state.canister_id: state}
        )

    def _random(self) -> bytes:
        self._rand_counter += 1
        return hashlib.sha256(self._seed + self._rand_counter.to_bytes(8, "big")).digest()

    # ---- submission --------------------------------------------------------
    def submit(
        self, sender: bytes, receiver: bytes, method: str, arg: bytes, size_bytes: int = 0
    ) -> bytes:
        """Enqueue an ingress message; return its message id."""
        self._msg_counter += 1
        mid = hashlib.sha256(b"ingress" + self._msg_counter.to_bytes(8, "big")).digest()
        self.queue.append(IngressMessage(mid, sender, receiver, method, arg, size_bytes))
        return mid

    def update(self, sender: bytes, receiver: bytes, method: str, arg: bytes) -> Response:
        """Submit an ingress update and run until it has an answer."""
        mid = self.submit(sender, receiver, method, arg)
        self.run()
        return self.results[mid]

    def query(self, sender: bytes, receiver: bytes, method: str, arg: bytes) -> Response:
        """Run a non-replicated query."""
        st = self.subnet.canisters.get(receiver)
        if st is None:
            return reject_of(
                CanisterError(
                    RejectCode.DESTINATION_INVALID,
                    "Canister not found",
                    ErrorCode.CANISTER_NOT_FOUND,
                )
            )
        return execute_query(
            st, sender, method, arg, self.time, self.env, resolve=self.subnet.canisters.get
        )

    # ---- running -----------------------------------------------------------
    def run(self, max_steps: int = 100_000) -> int:
        """Deliver messages until the queue is empty; return how many ran."""
        steps = 0
        while self.queue and steps < max_steps:
            self.step()
            steps += 1
        return steps

    def step(self) -> None:
        """Deliver one message."""
        msg = self.queue.popleft()
        self.executed += 1
        if isinstance(msg, CanisterResponse):
            st = self.subnet.canisters.get(msg.originator)
            if st is None:
                return
            st, outs = execute_message(st, msg, self.time, self.env)
            self.put(st)
            self._route(outs)
            return
        if msg.receiver == MANAGEMENT:
            self._management(msg)
            return
        st = self.subnet.canisters.get(msg.receiver)
        if st is None:
            err = CanisterError(
                RejectCode.DESTINATION_INVALID,
                f"Canister {_text(msg.receiver)} not found",
                ErrorCode.CANISTER_NOT_FOUND,
            )
            self._route(_reject_outputs(msg, err))
            return
        st, outs = execute_message(st, msg, self.time, self.env)
        self.put(st)
        self._route(outs)

    def _management(self, msg: IngressMessage | CanisterRequest) -> None:
        cycles = msg.cycles if isinstance(msg, CanisterRequest) else 0
        try:
            res = execute_management_call(
                self.subnet, msg.sender, msg.method_name, msg.arg, cycles, self.time, self.env,
                from_canister=isinstance(msg, CanisterRequest), random_tape=self._random,
                origin=_origin(msg),
            )  # fmt: skip
        except CanisterError as err:
            self._route(_reject_outputs(msg, err))
            return
        self.subnet = res.subnet
        self._route(list(res.outputs))
        if res.deferred:
            return
        from icp.execution.system_api import Reply

        if isinstance(msg, CanisterRequest):
            self._route(
                [
                    CanisterResponse(
                        msg.sender, MANAGEMENT, msg.callback_id, Reply(res.reply), res.refund
                    )
                ]
            )
        else:
            self._route([IngressResult(msg.message_id, Reply(res.reply))])

    def _route(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, IngressResult):
                self.results[out.message_id] = out.response
            else:
                self.queue.append(out)

    # ---- time ---------------------------------------------------------------
    def advance_time(self, nanos: int) -> None:
        """Move the clock forward."""
        self.time += nanos

    def tick(self) -> None:
        """Charge idle resources, fire due timers and heartbeats, deliver all messages."""
        seconds = (self.time - self._charged_until) // 1_000_000_000
        if seconds > 0:
            self._charged_until += seconds * 1_000_000_000
            for cid in sorted(self.subnet.canisters):
                st, outs = charge_idle_resources(self.subnet.canisters[cid], seconds, self.env)
                self.put(st)
                self._route(outs)
        for cid in sorted(self.subnet.canisters):
            st = self.subnet.canisters[cid]
            st, outs = execute_global_timer(st, self.time, self.env)
            st, outs2 = execute_heartbeat(st, self.time, self.env)
            self.put(st)
            self._route(outs + outs2)
        self.run()


def _origin(msg: IngressMessage | CanisterRequest) -> Origin:
    if isinstance(msg, CanisterRequest):
        return CanisterOrigin(msg.sender, msg.callback_id)
    return IngressOrigin(msg.message_id, msg.sender)


def _text(cid: bytes) -> str:
    from icp.principal import Principal

    return Principal.from_bytes(cid).to_text()


def _reject_outputs(msg: IngressMessage | CanisterRequest, err: CanisterError) -> list[Output]:
    rej: Reject = reject_of(err)
    if isinstance(msg, CanisterRequest):
        return [CanisterResponse(msg.sender, msg.receiver, msg.callback_id, rej, msg.cycles)]
    return [IngressResult(msg.message_id, rej)]
