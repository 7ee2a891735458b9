"""Build the self-service objects over a runtime, for the API and for the workers alike."""

from __future__ import annotations

from dataclasses import dataclass

from notifyd.api.ratelimit import PublishLimiter
from notifyd.pipeline.steps import StepQueue
from notifyd.runtime.wiring import Runtime
from notifyd.selfservice.captcha import CaptchaVerifier, load_hook
from notifyd.selfservice.links import Links
from notifyd.selfservice.optin import OptIn
from notifyd.selfservice.pages import PageConfigRepo
from notifyd.selfservice.prefs import PrefsRepo


def links_for(runtime: Runtime) -> Links:
    return Links(runtime.client, runtime.keys, runtime.settings, runtime.link_keys)


def optin_for(runtime: Runtime, queue: StepQueue | None = None) -> OptIn:
    queue = queue or StepQueue(runtime.broker, runtime.keys)
    return OptIn(
        runtime.client,
        runtime.keys,
        runtime.subscribers,
        ttl_s=runtime.settings.confirm_ttl_s,
        send_confirmation=queue.confirmation,
    )


@dataclass
class SelfService:
    """What the self-service routes need, built once per app."""

    optin: OptIn
    links: Links
    pages: PageConfigRepo
    prefs: PrefsRepo
    limiter: PublishLimiter
    captcha: CaptchaVerifier | None


def selfservice_for(runtime: Runtime) -> SelfService:
    settings = runtime.settings
    return SelfService(
        optin=optin_for(runtime),
        links=links_for(runtime),
        pages=PageConfigRepo(runtime.client, runtime.keys),
        prefs=PrefsRepo(runtime.client, runtime.keys),
        limiter=PublishLimiter(
            runtime.client,
            runtime.keys.ns,
            settings.subscribe_rate,
            key_prefix=runtime.keys.subscribe_rate_prefix(),
        ),
        captcha=load_hook(settings.captcha_hook),
    )
