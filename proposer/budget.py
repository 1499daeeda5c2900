"""Token and dollar accounting, and the budgets that stop a proposer (DESIGN §9).

Most gains of an autoresearch run come in its first 20–30 experiments; after that a run costs
money for little. A run therefore stops on whichever comes first: an iteration count, a token
count, a dollar amount, or a *plateau* — N experiments in a row that were not kept. Budgets are
checked before each iteration, so the iteration in progress when a budget runs out finishes
(it may overshoot by one iteration's cost).

Prices: `PRICES` (US dollars per million tokens, the public Anthropic price list as of
2025-11): base input, output, prompt-cache writes (5-minute cache: 1.25 × input) and cache reads
(0.1 × input). A model is priced by the longest matching name prefix; an unknown model is priced
as the most expensive known one (`FALLBACK_PRICE`), so a budget in dollars errs on the safe side,
unless a price is given (``poi propose --price IN,OUT``; cache writes then cost 1.25 × IN and
cache reads 0.1 × IN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4": Price(15.00, 75.00, 18.75, 1.50),
    "claude-3-opus": Price(15.00, 75.00, 18.75, 1.50),
    "claude-sonnet-4": Price(3.00, 15.00, 3.75, 0.30),
    "claude-3-7-sonnet": Price(3.00, 15.00, 3.75, 0.30),
    "claude-3-5-sonnet": Price(3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": Price(1.00, 5.00, 1.25, 0.10),
    "claude-3-5-haiku": Price(0.80, 4.00, 1.00, 0.08),
    "claude-3-haiku": Price(0.25, 1.25, 0.30, 0.03),
}
FALLBACK_PRICE = PRICES["claude-opus-4"]


def parse_price(text: str) -> Price:
    """``"IN,OUT"`` in dollars per million tokens, e.g. ``"3,15"``."""
    try:
        value_in, value_out = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"price {text!r}: expected IN,OUT dollars per million tokens, "
                         "e.g. 3,15") from None
    if value_in < 0 or value_out < 0:
        raise ValueError(f"price {text!r}: prices cannot be negative")
    return Price(value_in, value_out, round(value_in * 1.25, 9), round(value_in * 0.1, 9))


def price_of(model: str) -> tuple[Price, bool]:
    """The price of ``model`` and whether it was known (False: priced at `FALLBACK_PRICE`)."""
    matches = [prefix for prefix in PRICES if model.startswith(prefix)]
    if not matches:
        return FALLBACK_PRICE, False
    return PRICES[max(matches, key=len)], True


@dataclass
class Usage:
    """Tokens one iteration (or a whole run) used, as the Messages API reports them."""

    input_tokens: int = 0
    """Uncached input tokens."""
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests: int = 0
    retries: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_input_tokens
                + self.cache_read_input_tokens)

    def add_response(self, usage: object, price: Price) -> None:
        """Add one response's ``usage`` (an SDK object or a dict) and its cost at ``price``."""
        get = (usage.get if isinstance(usage, dict)
               else lambda name, default=0: getattr(usage, name, default))
        counts = {name: int(get(name, 0) or 0) for name in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens")}
        self.input_tokens += counts["input_tokens"]
        self.output_tokens += counts["output_tokens"]
        self.cache_creation_input_tokens += counts["cache_creation_input_tokens"]
        self.cache_read_input_tokens += counts["cache_read_input_tokens"]
        self.requests += 1
        self.cost_usd += (counts["input_tokens"] * price.input
                          + counts["output_tokens"] * price.output
                          + counts["cache_creation_input_tokens"] * price.cache_write
                          + counts["cache_read_input_tokens"] * price.cache_read) / MILLION

    def __iadd__(self, other: Usage) -> Usage:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def to_json(self) -> dict:
        return {"input": self.input_tokens, "output": self.output_tokens,
                "cache_write": self.cache_creation_input_tokens,
                "cache_read": self.cache_read_input_tokens, "requests": self.requests,
                "retries": self.retries}


@dataclass
class Budget:
    """Limits on one run; None means no limit. `stop_reason` says why to stop, or None."""

    max_iterations: int | None = None
    max_tokens: int | None = None
    max_dollars: float | None = None
    plateau: int | None = None
    """Stop after this many evaluated experiments in a row that were not kept."""
    iterations: int = 0
    used: Usage = field(default_factory=Usage)
    streak: int = 0
    """Evaluated experiments since the last keep."""

    def charge(self, usage: Usage, status: str, evaluated: bool) -> None:
        """Account for one iteration: its usage, and (if something was evaluated) its status."""
        self.used += usage
        if evaluated:
            self.iterations += 1
            self.streak = 0 if status == "keep" else self.streak + 1

    def stop_reason(self, pending: Usage | None = None) -> str | None:
        """Why the run must stop now (``pending``: usage of the iteration in progress)."""
        tokens = self.used.total_tokens + (pending.total_tokens if pending else 0)
        dollars = self.used.cost_usd + (pending.cost_usd if pending else 0.0)
        if self.max_iterations is not None and self.iterations >= self.max_iterations:
            return f"iteration budget reached ({self.iterations} of {self.max_iterations})"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"token budget reached ({tokens:,} of {self.max_tokens:,} tokens)"
        if self.max_dollars is not None and dollars >= self.max_dollars:
            return f"dollar budget reached (${dollars:.2f} of ${self.max_dollars:.2f})"
        if self.plateau is not None and self.streak >= self.plateau:
            return f"plateau: {self.streak} experiments in a row without a keep"
        return None
