"""The wired-up engine for one process: settings, Redis, broker and repositories."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker

from notifyd.publish import Publisher
from notifyd.runtime.broker import make_broker
from notifyd.runtime.connection import client_for, resolve_redis
from notifyd.runtime.embedded import EmbeddedRedis
from notifyd.runtime.secret_key import keyring_for
from notifyd.runtime.settings import Settings, load_settings
from notifyd.state.keys import Keys
from notifyd.state.sealing import Keyring, SealError
from notifyd.state.subscribers import SubscriberRepo, migrate_ids
from notifyd.state.target_digests import TargetDigests
from notifyd.state.tracking import Tracker
from notifyd.unsubscribe import LinkKeySource

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    url: str
    client: redis.Redis
    keys: Keys
    broker: RedisBroker
    subscribers: SubscriberRepo
    tracker: Tracker
    publisher: Publisher
    #: Seals the secrets kept in Redis (notifyd/state/sealing.py).
    keyring: Keyring
    #: The keys that sign unsubscribe, preference and confirmation links.
    link_keys: LinkKeySource
    #: Keyed digests that stand for targets in Redis key names (a Slack URL is a credential).
    target_digests: TargetDigests
    embedded: EmbeddedRedis | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or load_settings()
        url, embedded = resolve_redis(settings)
        client = client_for(url)
        try:
            keyring = keyring_for(settings)
        except BaseException:
            client.close()
            if embedded is not None:
                embedded.stop()
            raise
        keys = Keys(settings.namespace)
        target_digests = TargetDigests(client, keys, keyring)
        subscribers = SubscriberRepo(
            client,
            keys,
            allow_private_targets=settings.allow_private_targets,
            page_max_subscribers=settings.page_max_subscribers,
            dns_timeout_s=settings.subscribe_dns_timeout_s,
            keyring=keyring,
            digests=target_digests,
        )
        with contextlib.suppress(redis.ConnectionError):  # Redis down: the first use says so
            migrate_ids(client, keys)
            try:
                subscribers.seal_legacy()
            except SealError as exc:  # the index key is sealed with a key not configured here
                log.warning("secrets kept in clear by an older notifyd are not sealed yet: %s", exc)
        return cls(
            settings=settings,
            url=url,
            client=client,
            keys=keys,
            broker=make_broker(settings, url),
            subscribers=subscribers,
            tracker=Tracker(client, keys, ttl_s=settings.event_id_ttl_s),
            publisher=Publisher(client, keys, settings),
            keyring=keyring,
            link_keys=LinkKeySource(
                client,
                keys,
                keyring,
                settings.unsubscribe_secret.get_secret_value() if settings.unsubscribe_secret else None,
            ),
            target_digests=target_digests,
            embedded=embedded,
        )

    def require_durability(self) -> str:
        """Check that Redis can meet NOTIFYD_DURABILITY; raises DurabilityUnavailable (one line) if not."""
        return self.publisher.durability.check(self.client)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.broker.close()
        with contextlib.suppress(Exception):
            # dramatiq's RedisBroker.close() does nothing, and its client, built on a pool it
            # passes in, does not disconnect that pool on close(): the consumers' sockets stayed
            # open until the garbage collector reached the broker's reference cycle, which
            # closed some only after their socket warned "unclosed" (a ResourceWarning).
            self.broker.client.close()
            self.broker.client.connection_pool.disconnect()
        with contextlib.suppress(Exception):
            self.client.close()
        if self.embedded is not None:
            self.embedded.stop()
