"""How fast one delivery channel may send: a token bucket of `per_minute` messages, and after a failure a
doubling backoff (1 s, 2 s, ... up to `retry_max_sec`, or what the service asked for with Retry-After).
Pure: the dispatcher passes the clock in."""

from __future__ import annotations

from dataclasses import dataclass

FIRST_RETRY_SEC = 1.0


@dataclass
class ChannelPace:
    per_minute: int
    retry_max_sec: float
    tokens: float = -1.0
    """Messages that may go now; a full bucket to begin with."""
    refilled_at: float = 0.0
    blocked_until: float = 0.0
    backoff_sec: float = 0.0

    def available(self, now: float) -> int:
        """How many messages may be sent now (0 while backing off after a failure)."""
        if self.tokens < 0:
            self.tokens, self.refilled_at = float(self.per_minute), now
        elapsed = max(0.0, now - self.refilled_at)
        self.tokens = min(float(self.per_minute), self.tokens + elapsed * self.per_minute / 60.0)
        self.refilled_at = now
        return 0 if now < self.blocked_until else int(self.tokens)

    def spent(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)

    def succeeded(self) -> None:
        self.backoff_sec = 0.0

    def failed(self, now: float, retry_after_sec: float | None) -> float:
        """Back off; returns the seconds until the next try."""
        self.backoff_sec = min(self.retry_max_sec, max(FIRST_RETRY_SEC, self.backoff_sec * 2))
        wait = self.backoff_sec if retry_after_sec is None else min(self.retry_max_sec, max(0.0, retry_after_sec))
        self.blocked_until = now + wait
        return wait

    def next_chance(self, now: float) -> float:
        """Seconds until a message may go again (0: now)."""
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.tokens >= 1:
            return 0.0
        return (1.0 - self.tokens) * 60.0 / self.per_minute
