"""The wire protocol, spoken by hand: what a non-busrpc client sends and receives.

A request is a message on ``greeter.say_hello`` whose body is the JSON request and whose
reply subject is an inbox the caller listens on. Nothing else is needed: no header, no
envelope. This is what ``nats req greeter.say_hello '{"name":"ada"}'`` does. The optional
``.d<unix-ms>`` last token of a ``_INBOX.`` reply subject carries the caller's deadline.
See docs/protocol.md.

    python examples/wire.py [URL]
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time

import msgspec

import busrpc
from busrpc import Headers, Message


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return Greeting(text=f"hello {req.name}")

    @busrpc.rpc(multi=True)
    async def ping(self, req: Hello) -> Greeting:
        return Greeting(text="pong")


async def main(bus: busrpc.MessageBus) -> None:
    inbox = f"_INBOX.{secrets.token_hex(4)}"  # any subject we alone listen on
    async with (
        busrpc.Server(bus, Greeter(), server_id="srv-1") as server,
        bus.subscribe(f"{inbox}.>") as replies,
    ):

        async def request(subject: str, data: bytes, reply: str, **headers: str) -> Message:
            await bus.publish(Message(subject, data, headers, reply))
            async with asyncio.timeout(5):
                return await replies.receive()

        # 1. Plain JSON in, plain JSON out, no headers either way.
        deadline_ms = int((time.time() + 5) * 1000)
        reply = await request("greeter.say_hello", b'{"name":"ada"}', f"{inbox}.1.d{deadline_ms}")
        print("reply:", reply.data, reply.headers)
        assert json.loads(reply.data) == {"text": "hello ada"}
        assert not reply.headers

        # 2. A body that does not decode: an error reply (NATS micro headers + JSON body).
        reply = await request("greeter.say_hello", b'{"nom":"ada"}', f"{inbox}.2")
        print("error:", reply.headers, reply.data)
        assert reply.headers[Headers.ERROR] == "malformed_request"
        assert reply.headers[Headers.NATS_ERROR_CODE] == "400"
        assert reply.headers[Headers.SERVER] == "srv-1"
        assert json.loads(reply.data)["code"] == "malformed_request"

        # 3. MessagePack in: the reply uses the request's codec and says so.
        packed = msgspec.msgpack.encode({"name": "bob"})
        reply = await request(
            "greeter.say_hello", packed, f"{inbox}.3", **{"Content-Type": "application/msgpack"}
        )
        assert reply.headers == {"Content-Type": "application/msgpack"}
        assert msgspec.msgpack.decode(reply.data) == {"text": "hello bob"}

        # 4. A multi method's reply names the server that sent it.
        reply = await request("greeter.ping", b'{"name":"x"}', f"{inbox}.4")
        assert reply.headers == {Headers.SERVER: "srv-1"}

        # 5. A deadline already in the past: the server drops the request unanswered
        #    and counts it. (The next reply shows it was read: one subscription, in order.)
        await bus.publish(
            Message("greeter.say_hello", b'{"name":"late"}', reply=f"{inbox}.5.d1000000000000")
        )
        reply = await request("greeter.say_hello", b'{"name":"eve"}', f"{inbox}.6")
        assert reply.subject == f"{inbox}.6"
        assert server.statistics().expired == 1

        # 6. Nobody listening: an immediate "no responders" reply, never a timeout.
        reply = await request("greeter.nothing_here", b"{}", f"{inbox}.7")
        print("no responders:", reply.headers)
        assert reply.headers[Headers.NATS_ERROR_CODE] == "503"
        assert reply.headers[Headers.ERROR] == "unavailable"


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
