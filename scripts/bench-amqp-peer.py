"""The peer of `make bench-amqp`: a mature client (aio-pika) doing the publisher's work.

Publishes MESSAGES persistent 256-byte messages to a fresh durable queue with publisher confirms,
first one at a time, then with WINDOW publishes in flight (the same window as Galley's run), and prints
two numbers: messages per second for each. The queue is deleted at the end. Loopback only.

    python bench-amqp-peer.py AMQP_URL MESSAGES WINDOW
"""

import asyncio
import sys
import time
import uuid

import aio_pika


async def main(url: str, messages: int, window: int) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"galley-bench-peer.{uuid.uuid4().hex}", durable=True)
        body = b"x" * 256

        def message(index: int) -> aio_pika.Message:
            return aio_pika.Message(
                body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=f"bench-{index}"
            )

        exchange = channel.default_exchange
        started = time.perf_counter()
        for index in range(messages):
            await exchange.publish(message(index), routing_key=queue.name, mandatory=True)
        sequential = messages / (time.perf_counter() - started)

        started = time.perf_counter()

        async def publisher(worker: int) -> None:
            for index in range(worker, messages, window):
                await exchange.publish(message(index), routing_key=queue.name, mandatory=True)

        await asyncio.gather(*(publisher(worker) for worker in range(window)))
        windowed = messages / (time.perf_counter() - started)
        await queue.delete(if_unused=False, if_empty=False)
        print(f"{sequential:.0f} {windowed:.0f}")
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
