"""Namespaces: one broker, several isolated deployments of the same services.

A namespace prefixes every subject (``staging.settings.get``). Servers and clients must
use the same one; a client in another namespace finds no server.

    python examples/namespaces.py [URL]
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc


class Key(msgspec.Struct):
    name: str


class Value(msgspec.Struct):
    value: str


@busrpc.service("settings")
class Settings:
    def __init__(self, env: str) -> None:
        self.env = env

    @busrpc.rpc
    async def get(self, req: Key) -> Value:
        return Value(value=f"{req.name}@{self.env}")


async def main(bus: busrpc.MessageBus) -> None:
    async with (
        busrpc.Server(bus, Settings("staging"), namespace="staging"),
        busrpc.Server(bus, Settings("prod"), namespace="prod"),
    ):
        for env in ("staging", "prod"):
            settings = busrpc.client(Settings, bus, namespace=env)
            value = await settings.get(Key(name="db_url"), timeout=5)
            print(env, "->", value.value)
            assert value.value == f"db_url@{env}"

        try:
            await busrpc.client(Settings, bus).get(Key(name="db_url"), timeout=5)
        except busrpc.Unavailable as exc:
            print("no namespace ->", exc)
            assert exc.message == "no responders for settings.get"
        else:
            raise AssertionError("no server runs without a namespace")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
