"""Polite HTTP for arXiv: one request per ``min_interval`` seconds, bounded retries with backoff.

arXiv's terms allow one request every 3 s on one connection; its OAI-PMH endpoint answers
``503`` with ``Retry-After`` when a client goes too fast, and arxiv.org answers ``429``. This
client

* spaces the START of consecutive requests (retries included) by at least ``min_interval``;
* retries ``429``, ``5xx``, timeouts and connection errors up to ``max_retries`` times, waiting
  ``Retry-After`` (seconds or an HTTP date, capped at ``max_retry_after``) when the server sends
  one, else ``backoff_base * 2**attempt`` (capped at ``backoff_max``, with up to 25% jitter);
* raises :class:`HttpError` at once for other 4xx answers, and after the last retry.

All delays are parameters, so tests run the same code with millisecond waits.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import requests

log = logging.getLogger(__name__)

USER_AGENT = "astrollama-recipes/0.1 (data prep for astronomy LLMs; python-requests)"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class HttpError(RuntimeError):
    """A request that failed for good; ``status`` is the last HTTP status (None: no response)."""

    def __init__(self, message: str, status: int | None = None, url: str = ""):
        super().__init__(message)
        self.status = status
        self.url = url


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - now_dt).total_seconds())


class RateLimiter:
    """Enforces a minimum interval between the starts of consecutive requests (thread-safe)."""

    def __init__(
        self,
        min_interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.min_interval = max(0.0, float(min_interval))
        self._clock, self._sleep = clock, sleep
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            if self._last is not None:
                delay = self._last + self.min_interval - self._clock()
                if delay > 0:
                    self._sleep(delay)
            self._last = self._clock()


class HttpClient:
    """``requests`` with rate limiting and retries; see the module docstring for the policy."""

    def __init__(
        self,
        *,
        min_interval: float = 3.0,
        max_retries: int = 6,
        backoff_base: float = 5.0,
        backoff_max: float = 300.0,
        max_retry_after: float = 600.0,
        timeout: float | tuple[float, float] = (30.0, 180.0),
        user_agent: str = USER_AGENT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.limiter = RateLimiter(min_interval, sleep=sleep)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._sleep = sleep
        self.requests_made = 0

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(1.0, 1.25)

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with the retry policy; returns a 2xx response or raises :class:`HttpError`."""
        last = ""
        status: int | None = None
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            self.requests_made += 1
            wait: float | None = None
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                last, status = f"{type(exc).__name__}: {exc}", None
            else:
                if resp.ok:
                    return resp
                status = resp.status_code
                last = f"HTTP {status} {resp.reason or ''}".strip()
                if status not in RETRY_STATUS:
                    raise HttpError(f"{last} for {resp.url}", status=status, url=resp.url)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None:
                    wait = min(retry_after, self.max_retry_after)
            if attempt == self.max_retries:
                break
            wait = self._backoff(attempt) if wait is None else wait
            log.warning("%s (%s); retry %d/%d in %.1fs", last, url, attempt + 1, self.max_retries, wait)
            self._sleep(wait)
        raise HttpError(
            f"gave up after {self.max_retries + 1} attempts: {last} ({url})", status=status, url=url
        )
