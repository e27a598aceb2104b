"""Webhook delivery: a loop that reads `iot_alerts` in a consumer group of its own and POSTs
each record to `IOT_ALERTS_WEBHOOK_URL`, committing its offset only after a 2xx.

Being a separate consumer of the topic, a slow or failing receiver delays deliveries and
never the detection: the processor keeps producing, the records wait in Kafka. A failing
request is retried with exponential backoff (up to `iot_alerts_webhook_max_backoff_seconds`)
for as long as it takes; the record is not skipped. Each delivered `event_id` is remembered
in Redis (`iot_alerts:delivered:<group>:<event_id>`, for `iot_alerts_delivered_ttl_days`),
so a record read again (a restart, a rebalance, a duplicate from the processor's outbox)
is not POSTed twice. The one window left, a crash between the receiver's 2xx and that
Redis write, is covered by the `Idempotency-Key` header (the event id) the receiver can
deduplicate on.
"""

from __future__ import annotations

import logging
import time

import httpx
import orjson
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from lakehouse.catalog import IOT_ALERTS
from lakehouse.settings import Settings
from streaming.alerts import metrics

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.1


class WebhookDelivery:
    """One member of the webhook delivery group; `run()` until `stop()` or `stop_after()`."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        if not settings.iot_alerts_webhook_url:
            raise ValueError("IOT_ALERTS_WEBHOOK_URL is not set: nowhere to deliver")
        self.settings = settings
        self.url = settings.iot_alerts_webhook_url
        self.prefix = f"iot_alerts:delivered:{settings.iot_alerts_webhook_group_id}"
        self.ttl = settings.iot_alerts_delivered_ttl_days * 86_400
        self.redis = client or redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=2
        )
        self.http = httpx.Client(timeout=settings.iot_alerts_webhook_timeout_seconds)
        self.delivered = 0
        self._stopping = False
        self._idle_stop: float | None = None
        self._last_activity = time.monotonic()
        self._carried: list[Message] = []
        self._consumer = Consumer(
            {
                **settings.kafka_config(),
                "group.id": settings.iot_alerts_webhook_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
                "fetch.wait.max.ms": 20,
                "logger": logging.getLogger("librdkafka"),
            }
        )

    def run(self) -> int:
        """Deliver records in order until stopped; return how many this run delivered."""
        self._consumer.subscribe([IOT_ALERTS.name])
        try:
            while not self._stopping:
                message = self._carried.pop(0) if self._carried else self._consumer.poll(0.2)
                now = time.monotonic()
                if message is None:
                    if self._idle_stop is not None and now - self._last_activity >= self._idle_stop:
                        break
                    continue
                self._last_activity = now
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka error: %s", error)
                    continue
                if self._deliver(message):
                    self._commit(message)
        finally:
            self._consumer.close()
            self.http.close()
        return self.delivered

    def stop(self) -> None:
        """Stop now; a record being retried is read again by the next run."""
        self._stopping = True

    def stop_after(self, idle: float | None) -> int:
        """Stop once nothing has arrived for `idle` seconds (now if None); the count."""
        if idle is None:
            self.stop()
        else:
            self._idle_stop = idle
        return self.delivered

    def _deliver(self, message: Message) -> bool:
        """POST one record until a 2xx; False if stopped before (not to be committed)."""
        value = message.value() or b""
        try:
            event_id = str(orjson.loads(value)["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("not an alert record at %d@%d: skipped", message.partition(),
                      message.offset())
            return True
        key = f"{self.prefix}:{event_id}"
        delay = FIRST_BACKOFF_SECONDS
        while not self._stopping:
            reason = self._attempt(key, event_id, value)
            if reason is None:
                return True
            metrics.DELIVERY_FAILURES.labels(reason).inc()
            log.warning("webhook delivery of %s failed (%s); retrying in %.1fs",
                        event_id, reason, delay)
            self._wait(delay)
            delay = min(delay * 2, self.settings.iot_alerts_webhook_max_backoff_seconds)
        return False

    def _attempt(self, key: str, event_id: str, value: bytes) -> str | None:
        """One try: None when delivered (now or before), else why not."""
        try:
            if self.redis.exists(key):
                metrics.ALREADY_DELIVERED.inc()
                return None
        except redis.RedisError as error:
            return f"redis: {type(error).__name__}"
        try:
            response = self.http.post(
                self.url, content=value,
                headers={"Content-Type": "application/json", "Idempotency-Key": event_id},
            )
        except httpx.HTTPError as error:
            return type(error).__name__
        if not response.is_success:
            return f"http {response.status_code}"
        self.delivered += 1
        metrics.DELIVERED.inc()
        try:
            self.redis.set(key, b"1", ex=self.ttl)
        except redis.RedisError as error:
            log.warning("delivered %s but could not remember it: %s", event_id, error)
        return None

    def _wait(self, seconds: float) -> None:
        """Back off without leaving the group: poll with the partitions paused, keeping
        anything already fetched for later, in order."""
        deadline = time.monotonic() + seconds
        assignment = self._consumer.assignment()
        self._consumer.pause(assignment)
        try:
            while not self._stopping and time.monotonic() < deadline:
                message = self._consumer.poll(min(0.1, max(deadline - time.monotonic(), 0)))
                if message is not None and message.error() is None:
                    self._carried.append(message)
        finally:
            self._consumer.resume(self._consumer.assignment())

    def _commit(self, message: Message) -> None:
        try:
            self._consumer.commit(message=message, asynchronous=False)
        except KafkaException as error:
            log.warning("delivery offset not committed (read again, not re-sent): %s", error)
