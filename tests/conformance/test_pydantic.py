"""pydantic v2 models as request and response types, on every bus, in JSON and msgpack."""

from __future__ import annotations

import datetime

import msgspec
import pydantic
import pytest

import busrpc
from busrpc import Codec, Headers, Message, MessageBus
from busrpc._core import JSON, MSGPACK

CODECS = [pytest.param(JSON, id="json"), pytest.param(MSGPACK, id="msgpack")]


class Order(pydantic.BaseModel):
    order_id: int = pydantic.Field(alias="orderId", gt=0)
    items: list[str]
    placed: datetime.datetime
    note: bytes = b""


class Receipt(pydantic.BaseModel):
    order_id: int
    total_items: int
    placed: datetime.datetime
    note: bytes


class Batch(msgspec.Struct):
    """A msgspec Struct that carries pydantic models."""

    orders: list[Order]


@busrpc.service("shop")
class Shop:
    @busrpc.rpc
    async def place(self, order: Order) -> Receipt:
        return Receipt(
            order_id=order.order_id,
            total_items=len(order.items),
            placed=order.placed,
            note=order.note,
        )

    @busrpc.rpc
    async def count(self, batch: Batch) -> list[Receipt]:
        return [await self.place(order) for order in batch.orders]

    @busrpc.rpc(multi=True)
    async def ping(self, order: Order) -> Receipt:
        return await self.place(order)


PLACED = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
ORDER = Order(orderId=7, items=["tea", "cake"], placed=PLACED, note=b"\x00\xff")
RECEIPT = Receipt(order_id=7, total_items=2, placed=PLACED, note=b"\x00\xff")


@pytest.mark.parametrize("codec", CODECS)
async def test_pydantic_models_round_trip(
    bus: MessageBus, peer_bus: MessageBus, ns: str, codec: Codec
) -> None:
    if codec is JSON:  # pydantic's JSON writes bytes as UTF-8 text
        order, receipt = ORDER.model_copy(update={"note": b"hi"}), RECEIPT
        receipt = receipt.model_copy(update={"note": b"hi"})
    else:  # msgpack keeps bytes as bytes
        order, receipt = ORDER, RECEIPT
    async with busrpc.Server(peer_bus, Shop(), namespace=ns, server_id="s1"):
        shop = busrpc.client(Shop, bus, namespace=ns, codec=codec)
        assert await shop.place(order) == receipt
        assert await shop.count(Batch(orders=[order, order])) == [receipt, receipt]
        responses = [r async for r in shop.ping(order, expect=1)]
    assert [r.result for r in responses] == [receipt]


async def test_a_request_that_fails_validation_is_malformed(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Shop(), namespace=ns):
        shop = busrpc.client(Shop, bus, namespace=ns)
        bad = Order.model_construct(order_id=0, items=["tea"], placed=PLACED)  # gt=0
        with pytest.raises(busrpc.RpcError) as info:
            await shop.place(bad)
    assert info.value.code is busrpc.ErrorCode.MALFORMED_REQUEST
    assert "orderId: Input should be greater than 0" in info.value.message


async def test_a_plain_json_request_is_validated_by_alias(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    reply_to = f"{ns}.replies.1"
    good = b'{"orderId": 3, "items": ["x"], "placed": "2024-05-01T12:30:00Z"}'
    bad = b'{"orderId": 3, "items": "x", "placed": "2024-05-01T12:30:00Z"}'
    async with (
        busrpc.Server(peer_bus, Shop(), namespace=ns),
        bus.subscribe(reply_to) as replies,
    ):
        await bus.publish(Message(f"{ns}.shop.place", good, reply=reply_to))
        ok = await replies.receive()
        await bus.publish(Message(f"{ns}.shop.place", bad, reply=reply_to))
        failed = await replies.receive()
    assert Headers.ERROR not in ok.headers
    assert msgspec.json.decode(ok.data) == {
        "order_id": 3,
        "total_items": 1,
        "placed": "2024-05-01T12:30:00Z",
        "note": "",
    }
    assert failed.headers[Headers.ERROR] == "malformed_request"
    assert b"items: Input should be a valid array" in failed.data
