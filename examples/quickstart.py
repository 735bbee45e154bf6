"""Quick start: declare a service, serve it, call it. Ten lines of busrpc.

python examples/quickstart.py                         # in-process (memory://)
python examples/quickstart.py nats://127.0.0.1:4222   # over a real NATS server
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return Greeting(text=f"hello {req.name}")


async def main(bus: busrpc.MessageBus) -> None:
    async with busrpc.Server(bus, Greeter()):  # live once entered; drains on exit
        greeter = busrpc.client(Greeter, bus)  # typed as Greeter: mypy checks calls
        reply = await greeter.say_hello(Hello(name="ada"), timeout=2)
        print(reply.text)
        assert reply == Greeting(text="hello ada")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
