"""pydantic v2 models as request and response types (``pip install 'busrpc[pydantic]'``).

- a model validates the request before the handler runs: a request that does not
  validate is answered ``malformed_request``, with pydantic's reasons;
- JSON goes through pydantic's own ``model_validate_json`` and ``model_dump_json``, by
  alias, so ``{"orderId": 7, ...}`` is what other languages send;
- MessagePack works too (``codec=busrpc.MSGPACK``), and models can sit inside other types
  (``list[Receipt]``, a msgspec Struct's field).

busrpc imports pydantic only because this module declares its models.

    python examples/pydantic_models.py [URL]
"""

from __future__ import annotations

import asyncio
import datetime
import sys

import pydantic

import busrpc


class Order(pydantic.BaseModel):
    order_id: int = pydantic.Field(alias="orderId", gt=0)
    items: list[str] = pydantic.Field(min_length=1)
    placed: datetime.datetime


class Receipt(pydantic.BaseModel):
    order_id: int
    count: int
    placed: datetime.datetime


@busrpc.service("shop")
class Shop:
    @busrpc.rpc
    async def place(self, order: Order) -> Receipt:
        return Receipt(order_id=order.order_id, count=len(order.items), placed=order.placed)

    @busrpc.rpc
    async def place_all(self, orders: list[Order]) -> list[Receipt]:
        return [await self.place(order) for order in orders]


async def main(bus: busrpc.MessageBus) -> None:
    placed = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    order = Order(orderId=7, items=["tea", "cake"], placed=placed)
    async with busrpc.Server(bus, Shop()):
        shop = busrpc.client(Shop, bus, timeout=5)
        receipt = await shop.place(order)
        print(receipt.model_dump_json())
        assert receipt == Receipt(order_id=7, count=2, placed=placed)

        packed = busrpc.client(Shop, bus, timeout=5, codec=busrpc.MSGPACK)
        assert await packed.place_all([order, order]) == [receipt, receipt]

        # model_construct skips validation on this side: the server still validates.
        empty = Order.model_construct(order_id=8, items=[], placed=placed)
        try:
            await shop.place(empty)
        except busrpc.RpcError as exc:
            print(f"{exc.code.value}: {exc.message}")
            assert exc.code is busrpc.ErrorCode.MALFORMED_REQUEST
            assert "items: List should have at least 1 item" in exc.message
        else:
            raise AssertionError("an order without items was accepted")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
