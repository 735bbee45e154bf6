"""A busrpc service called with plain nats-py: the wire protocol, without busrpc."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

import busrpc
from busrpc import MessageBus


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        self.calls.append(req.name)
        if req.name == "nobody":
            raise busrpc.RpcError("not_found", "no such person", {"name": req.name})
        return Greeting(text=f"hello {req.name}")


async def test_plain_request_gets_the_json_reply(server_bus: MessageBus, nc: Client) -> None:
    # The documented example, so no namespace: `nats req greeter.say_hello '{"name":"ada"}'`
    service = Greeter()
    async with busrpc.Server(server_bus, service):
        reply = await nc.request("greeter.say_hello", b'{"name":"ada"}', timeout=5)
    assert json.loads(reply.data) == {"text": "hello ada"}
    assert not reply.headers  # the fast path: body only
    assert service.calls == ["ada"]


async def test_malformed_body_gets_a_400_reply_and_the_server_keeps_serving(
    server_bus: MessageBus, nc: Client, ns: str
) -> None:
    subject = f"{ns}.greeter.say_hello"
    async with busrpc.Server(server_bus, Greeter(), namespace=ns):
        bad = await nc.request(subject, b"{not json", timeout=5)
        good = await nc.request(subject, b'{"name":"bob"}', timeout=5)
    assert bad.headers is not None
    assert bad.headers["Nats-Service-Error-Code"] == "400"
    assert bad.headers["Busrpc-Error"] == "malformed_request"
    assert bad.headers["Nats-Service-Error"]
    assert json.loads(bad.data)["code"] == "malformed_request"
    assert json.loads(good.data) == {"text": "hello bob"}


async def test_rpc_error_arrives_as_404_not_found(
    server_bus: MessageBus, nc: Client, ns: str
) -> None:
    async with busrpc.Server(server_bus, Greeter(), namespace=ns, server_id="srv1"):
        reply = await nc.request(f"{ns}.greeter.say_hello", b'{"name":"nobody"}', timeout=5)
    assert reply.headers is not None
    assert reply.headers["Nats-Service-Error-Code"] == "404"
    assert reply.headers["Nats-Service-Error"] == "no such person"
    assert reply.headers["Busrpc-Error"] == "not_found"
    assert reply.headers["Busrpc-Server"] == "srv1"
    assert json.loads(reply.data) == {
        "code": "not_found",
        "message": "no such person",
        "details": {"name": "nobody"},
    }


async def test_queue_group_is_the_service_name(server_bus: MessageBus, nc: Client, ns: str) -> None:
    subject = f"{ns}.greeter.say_hello"
    raw_calls: list[str] = []

    async def raw_member(msg: Msg) -> None:
        raw_calls.append(json.loads(msg.data)["name"])
        await msg.respond(b'{"text":"raw"}')

    service = Greeter()
    n = 100
    async with busrpc.Server(server_bus, service, namespace=ns):
        sub = await nc.subscribe(subject, queue="greeter", cb=raw_member)
        await nc.flush()  # the SUB must reach the broker before the requests do
        try:
            names = [str(i) for i in range(n)]
            replies = await asyncio.gather(
                *(nc.request(subject, b'{"name":"%s"}' % x.encode(), timeout=5) for x in names)
            )
        finally:
            await sub.unsubscribe()
    assert len(replies) == n
    assert service.calls and raw_calls, "both members of the group must get some requests"
    assert sorted(service.calls + raw_calls, key=int) == names, "each request handled once"
    texts = [json.loads(r.data)["text"] for r in replies]
    assert texts.count("raw") == len(raw_calls)


async def test_request_with_a_past_deadline_is_dropped(
    server_bus: MessageBus, nc: Client, ns: str
) -> None:
    subject = f"{ns}.greeter.say_hello"
    service = Greeter()
    async with busrpc.Server(server_bus, service, namespace=ns) as server:
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(
                subject, b'{"name":"late"}', timeout=0.5, headers={"Busrpc-Deadline": "1"}
            )
        future = str(int((time.time() + 60) * 1000))  # epoch ms, a minute from now
        good = await nc.request(
            subject, b'{"name":"on time"}', timeout=5, headers={"Busrpc-Deadline": future}
        )
        stats = server.statistics()
    assert json.loads(good.data) == {"text": "hello on time"}
    assert service.calls == ["on time"]
    assert stats.expired == 1
