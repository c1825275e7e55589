"""Settings: one frozen, validated object from config.toml, `OMEGA_*` environment variables and the CLI.

Precedence, highest first: command-line flags (`--set section.field=value`, `--no-ui`, …) > environment
(`OMEGA_` prefix, `__` between levels: `OMEGA_IB__PORT=4002`) > the TOML file (`--config PATH`, else
`$OMEGA_CONFIG`, else `./config.toml`) > the defaults below. Unknown keys are errors everywhere: a typo in a
risk limit must never be silently ignored. `load_settings` turns every problem into a `ConfigError` whose
lines each name the file or variable, the dotted field, the value and what is allowed.
"""

from __future__ import annotations

import os
import stat
import tomllib
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from omega_tui.core.types import InstrumentSpec

ENV_PREFIX = "OMEGA_"
DEFAULT_CONFIG = Path("config.toml")


class ConfigError(Exception):
    """A configuration problem a user can fix; `lines` holds one actionable sentence per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _Section(BaseModel):
    # Attribute docstrings become field descriptions, which render_default_toml writes as comments.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "omega-tui"


class IBSettings(_Section):
    mode: Literal["sim", "gateway"] = "sim"
    """"sim" starts the embedded simulated IB Gateway; "gateway" connects to a real IB Gateway or TWS."""
    host: str = "127.0.0.1"
    """Gateway host (ignored in sim mode, which is always loopback)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 4002
    """Gateway API port: 4002 paper, 4001 live (TWS: 7497 paper, 7496 live). 0 in sim mode = any free port."""
    client_id: Annotated[int, Field(ge=0, le=2**31 - 1)] = 17
    """The API client id; must be unique per connection to one Gateway."""
    account: str = ""
    """Account to trade and sync; empty = the Gateway's only managed account."""
    readonly: bool = False
    """Connect read-only: no orders can be sent."""
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds to wait for the connection and its startup sync."""
    market_data_type: Annotated[int, Field(ge=1, le=4)] = 1
    """1 live, 2 frozen, 3 delayed, 4 delayed-frozen."""
    max_market_data_lines: Annotated[int, Field(ge=1, le=10_000)] = 100
    """The account's market-data line limit; more instruments than this is a config error."""
    reconnect_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    """First reconnect delay; doubles per attempt with jitter."""
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Cap on the reconnect delay."""


class InstrumentSettings(_Section):
    key: str = ""
    """Omega's name for the instrument (default: the symbol); must be unique."""
    symbol: Annotated[str, Field(min_length=1)]
    """The underlying symbol, e.g. AAPL, ES, EUR."""
    sec_type: Literal["STK", "FUT", "OPT", "CASH", "IND"] = "STK"
    """IB security type."""
    exchange: str = "SMART"
    """Routing exchange (SMART for stocks, the listing exchange for futures, IDEALPRO for FX)."""
    currency: str = "USD"
    """Trading currency."""
    primary_exchange: str = ""
    """Primary listing exchange, to disambiguate SMART-routed stocks."""
    expiry: str = ""
    """lastTradeDateOrContractMonth for futures and options, e.g. 202612."""
    strike: Annotated[float, Field(ge=0)] = 0.0
    """Option strike."""
    right: Literal["", "C", "P"] = ""
    """Option right."""
    multiplier: str = ""
    """Contract multiplier, if needed to disambiguate."""
    watch_only: bool = False
    """Stream and display only: skip the trading-permission check and never trade it."""

    @model_validator(mode="after")
    def _derivatives_need_expiry(self) -> InstrumentSettings:
        if self.sec_type in ("FUT", "OPT") and not self.expiry:
            raise ValueError(f'{self.sec_type} {self.symbol} needs an expiry (e.g. expiry = "202612")')
        if self.sec_type == "OPT" and (not self.right or self.strike <= 0):
            raise ValueError(f'option {self.symbol} needs right = "C" or "P" and a strike > 0')
        return self

    def spec(self) -> InstrumentSpec:
        return InstrumentSpec(
            key=self.key or self.symbol,
            symbol=self.symbol,
            sec_type=self.sec_type,
            exchange=self.exchange,
            currency=self.currency,
            primary_exchange=self.primary_exchange,
            expiry=self.expiry,
            strike=self.strike,
            right=self.right,
            multiplier=self.multiplier,
            watch_only=self.watch_only,
        )


class InstrumentsSettings(_Section):
    watchlist: list[InstrumentSettings] = Field(
        default_factory=lambda: [
            InstrumentSettings(symbol="AAPL", primary_exchange="NASDAQ"),
            InstrumentSettings(symbol="MSFT", primary_exchange="NASDAQ"),
            InstrumentSettings(symbol="SPY", primary_exchange="ARCA"),
        ]
    )
    """The instruments to stream and trade."""

    @field_validator("watchlist")
    @classmethod
    def _unique_keys(cls, value: list[InstrumentSettings]) -> list[InstrumentSettings]:
        seen: set[str] = set()
        for item in value:
            key = item.key or item.symbol
            if key in seen:
                raise ValueError(f"instrument key {key!r} appears twice; give one of them a distinct key")
            seen.add(key)
        return value

    def specs(self) -> list[InstrumentSpec]:
        return [item.spec() for item in self.watchlist]


class MarketDataSettings(_Section):
    stale_after_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """A quote with no update for this long is marked stale."""
    max_jump_pct: Annotated[float, Field(gt=0, le=100)] = 10.0
    """A price that jumps more than this % from the last good one is refused as an outlier."""
    warmup_bars: bool = True
    """At startup, load each instrument's recent bars from IB's historical data (paced) for the models."""
    warmup_duration: str = "1800 S"
    """How much history the warm-up asks for, in IB's duration syntax ("1800 S", "1 D")."""
    warmup_bar_size: str = "1 min"
    """Bar size of the warm-up, in IB's syntax ("1 min", "5 mins")."""


class RiskSettings(_Section):
    trading_enabled: bool = True
    """Master switch: false = the risk engine denies every new order (monitoring only)."""
    max_daily_loss: Annotated[float, Field(gt=0)] = 2_000.0
    """Halt when the day's realised + unrealised P&L after commissions falls below minus this (account currency)."""
    on_max_loss: Literal["halt", "flatten"] = "flatten"
    """What a daily-loss breach does: halt (cancel orders) or flatten (also close positions)."""
    max_position_qty: Annotated[int, Field(gt=0)] = 1_000
    """Largest absolute position per instrument, counting working orders, in shares/contracts."""
    max_position_notional: Annotated[float, Field(gt=0)] = 250_000.0
    """Largest absolute position value per instrument, counting working orders."""
    max_order_qty: Annotated[int, Field(gt=0)] = 500
    """Fat-finger limit: largest single order quantity."""
    max_order_notional: Annotated[float, Field(gt=0)] = 100_000.0
    """Fat-finger limit: largest single order value."""
    max_orders_per_second: Annotated[float, Field(gt=0)] = 5.0
    """Order-rate limit over one second; orders beyond it are denied, not queued."""
    max_orders_per_minute: Annotated[float, Field(gt=0)] = 60.0
    """Order-rate limit over one minute."""
    price_collar_pct: Annotated[float, Field(gt=0, le=50)] = 2.0
    """A limit price must be within this % of the current quote's mid."""
    max_quote_age_s: Annotated[float, Field(gt=0)] = 5.0
    """No order against a quote older than this."""
    require_bracket: bool = True
    """Entries must carry both a take-profit and a stop-loss."""
    max_open_orders: Annotated[int, Field(gt=0)] = 50
    """Largest number of working orders, bracket children included."""
    critical_error_codes: list[int] = Field(default_factory=lambda: [1100, 2110, 504, 326, 100])
    """IB error codes that halt trading and disconnect."""
    day_reset_time: dtime = dtime(17, 0)
    """Local time at which the trading day's counters reset."""
    day_reset_tz: str = "America/New_York"
    """Time zone of day_reset_time."""
    warn_pct: Annotated[float, Field(gt=0, lt=100)] = 80.0
    """Gauges turn to warning at this % of a limit."""
    per_instrument_max_qty: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    """Overrides of max_position_qty by instrument key, e.g. { ES = 5 }."""

    @field_validator("day_reset_tz")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like America/New_York") from None
        return value


class ExecutionSettings(_Section):
    adaptive_priority: Literal["Patient", "Normal", "Urgent"] = "Normal"
    """IB Adaptive algo priority for entry orders."""
    allow_market_orders: bool = False
    """Market orders are refused unless this is true (the checklist says avoid them)."""
    max_child_qty: Annotated[int, Field(gt=0)] = 200
    """Entries larger than this are sliced into child orders of at most this size."""
    slice_interval_ms: Annotated[int, Field(ge=0)] = 500
    """Delay between slices of a large entry."""
    orders_per_second: Annotated[float, Field(gt=0, le=45)] = 10.0
    """Client-side placement throttle (IB's limit is 50 messages/s for everything)."""
    cancel_all_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    """After a global cancel, re-send per-order cancels for orders not terminal by then."""
    flatten_offset_ticks: Annotated[int, Field(ge=0)] = 5
    """Flatten orders are limits this many ticks through the touch (marketable)."""
    flatten_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Give up repricing flatten orders (with a loud alert) after this long."""
    flatten_reprice_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    """Reprice unfilled flatten orders this often."""
    tif: Literal["DAY", "GTC"] = "DAY"
    """Time in force for entries and protective legs."""
    pacing_backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """First pause of the order submission queue after an IB pacing error (100); doubles per repeat."""
    pacing_backoff_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Cap on the submission queue's pacing pause."""
    reconcile_delay_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    """After an order anomaly, or a fill reported without its execution, reconcile with the broker this much later."""
    pnl_publish_ms: Annotated[int, Field(ge=1, le=10_000)] = 100
    """While quotes move, marked P&L is republished at most this often (order changes publish at once)."""


class SignalSettings(_Section):
    risk_per_trade: Annotated[float, Field(gt=0)] = 100.0
    """Money at risk per trade (entry to stop), which sizes the quantity."""
    stop_loss_ticks: Annotated[int, Field(gt=0)] = 20
    """Default stop distance from entry, in ticks."""
    take_profit_ticks: Annotated[int, Field(gt=0)] = 30
    """Default take-profit distance from entry, in ticks."""
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.55
    """Predictions below this confidence produce no intent."""
    max_qty: Annotated[int, Field(gt=0)] = 100
    """Largest quantity one signal asks for."""
    cooldown_s: Annotated[float, Field(ge=0)] = 30.0
    """Minimum time between two entries on one instrument."""
    entry_price: Literal["join", "mid"] = "join"
    """Entry limit: "join" the touch (buy at the bid, sell at the ask) or the mid rounded toward passive."""


class SchedulerSettings(_Section):
    decision_interval_ms: Annotated[int, Field(gt=0)] = 250
    """One decision per instrument this often."""
    deadline_ms: Annotated[float, Field(gt=0)] = 5.0
    """Latency budget of one decision, from its start."""
    reserve_ms: Annotated[float, Field(ge=0)] = 0.5
    """Part of the deadline kept for the signal generator, risk check and send."""
    quantile: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    """Conformal quantile of a model's measured latency used to decide feasibility."""
    min_samples: Annotated[int, Field(ge=1)] = 20
    """A model needs this many latency samples before it can be chosen."""
    window: Annotated[int, Field(ge=10)] = 512
    """Latency samples kept per model."""
    models: list[str] = Field(default_factory=lambda: ["microprice", "ewma_momentum", "logistic"])
    """Enabled models, by name (built-in or from the omega_tui.models entry points)."""
    regime_buckets: bool = True
    """Track accuracy per volatility regime bucket."""
    horizon_ms: Annotated[int, Field(gt=0)] = 1000
    """Predictions are scored against the mid this long after the decision (the shipped evaluation uses 1 s)."""
    prior_weight: Annotated[int, Field(ge=0)] = 50
    """The shipped evaluation's accuracy counts as at most this many live outcomes (per regime bucket)."""
    calibration_interval_ms: Annotated[int, Field(gt=0)] = 1000
    """A model the scheduler does not choose is re-measured off the hot path this often."""
    miss_target: Annotated[float, Field(gt=0, lt=1)] = 0.005
    """Long-run share of decisions allowed to miss the deadline; the headroom below the budget adapts to it."""
    headroom_step: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Headroom added per miss, as a share of deadline − reserve; each met decision takes this × miss_target off."""
    probe_interval_ms: Annotated[float, Field(gt=0)] = 5.0
    """A model whose latency bound misses the budget is re-measured off the hot path this often (≤ 5% busy)."""
    latency_max_age_ms: Annotated[int, Field(ge=0)] = 2000
    """Latency samples older than this leave when a newer one comes (the warm-up count stays); 0 = by count only."""


class UISettings(_Section):
    theme: str = "omega-dark"
    """Theme name: a file in themes/ (omega-dark, omega-light, omega-contrast) or a Textual theme."""
    refresh_hz: Annotated[float, Field(gt=0, le=60)] = 10.0
    """How often panes redraw from the hot state."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id → keys, e.g. { halt = "ctrl+k,f12" }."""
    themes_dir: Path | None = None
    """Extra directory of theme files (*.toml), loaded after the bundled themes/ (same name replaces)."""
    engine_stop_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    """Longest wait for the engine to stop when the UI quits; past it the engine is abandoned and the UI exits."""


class StateSettings(_Section):
    dir: Path = Field(default_factory=default_state_dir)
    """Directory for the hot state, halt latch, risk day, journal, logs. Must not be writable by others."""
    flush_ms: Annotated[int, Field(ge=1, le=10_000)] = 20
    """Hot state write-behind period: other processes see values at most this old."""


class SimSettings(_Section):
    seed: int = 7
    """Seed of the simulated market: the same seed replays the same session."""
    speed: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    """Time scale of the simulated market (1 = real time)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Port of the embedded simulated gateway (0 = any free port)."""
    scenario: Path | None = None
    """Optional fault scenario file (TOML) to play."""
    extra_stocks: Annotated[int, Field(ge=0, le=10_000)] = 0
    """Synthetic US stocks (seeded, tradable) the simulator lists besides its fixed ones, for load tests."""


class ShutdownSettings(_Section):
    on_exit: Literal["cancel", "flatten", "leave"] = "cancel"
    """What happens to working orders and positions when the engine exits."""
    confirm_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """How long to wait for the broker to confirm the exit action."""


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level for the state directory's log file (and stderr in --no-ui)."""
    status_every_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    """In --no-ui, log a one-line status summary (state, connection, positions, orders, P&L) this often; 0 = never."""


class Settings(BaseSettings):
    """Every setting of Omega. Frozen: build a new one rather than mutate."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        use_attribute_docstrings=True,
    )

    ib: IBSettings = Field(default_factory=IBSettings)
    """Connection to IB: the embedded simulated gateway (mode = "sim") or a real IB Gateway / TWS."""
    instruments: InstrumentsSettings = Field(default_factory=InstrumentsSettings)
    """The watchlist: what to stream, verify at startup and trade."""
    market_data: MarketDataSettings = Field(default_factory=MarketDataSettings)
    """Market data normalization."""
    risk: RiskSettings = Field(default_factory=RiskSettings)
    """Risk limits and kill switches (checklist §6). Every order passes these checks."""
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    """How intents become orders: Adaptive limits, brackets, slicing, throttles, flatten."""
    signals: SignalSettings = Field(default_factory=SignalSettings)
    """The deterministic signal generator: sizing and protective legs."""
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    """TIP-Search: which model answers each decision under its latency deadline."""
    ui: UISettings = Field(default_factory=UISettings)
    """The workstation's look and keys."""
    state: StateSettings = Field(default_factory=StateSettings)
    """Where the engine keeps what must survive a restart."""
    sim: SimSettings = Field(default_factory=SimSettings)
    """The embedded simulated IB Gateway (used when ib.mode = "sim")."""
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)
    """What happens to orders and positions when the engine exits."""
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    """Logging."""

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        n = len(self.instruments.watchlist)
        if n > self.ib.max_market_data_lines:
            raise ValueError(
                f"instruments.watchlist has {n} instruments but ib.max_market_data_lines is "
                f"{self.ib.max_market_data_lines}; remove instruments or raise the limit"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the TOML file merged under the CLI overrides (see load_settings); the
        # environment sits between them, so we merge by hand there and only use env here.
        return (init_settings, env_settings)

    @property
    def instrument_specs(self) -> list[InstrumentSpec]:
        return self.instruments.specs()


# ---------------------------------------------------------------------------------------------- loading


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_keys() -> dict[str, str]:
    """Dotted field → environment variable name, for every `OMEGA_` variable that is set."""
    keys: dict[str, str] = {}
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX) and name.upper() != "OMEGA_CONFIG":
            keys[name[len(ENV_PREFIX) :].lower().replace("__", ".")] = name
    return keys


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: expected section.field=value, e.g. --set ib.port=4002"])
    dotted, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: treat as a string
    return dotted.strip().split("."), value


def resolve_config_path(config: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it explicitly (then it must exist)."""
    if config is not None:
        return Path(config), True
    env = os.environ.get("OMEGA_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG, False


def load_settings(
    config: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    **flag_overrides: Any,
) -> Settings:
    """Build the Settings, or raise ConfigError with one actionable line per problem.

    `overrides` are `section.field=value` strings (TOML values) from `--set`; `flag_overrides` are
    already-nested dicts from dedicated flags, e.g. `ib={"port": 4002}`. Both beat the environment.
    """
    path, explicit = resolve_config_path(config)
    file_data: dict[str, Any] = {}
    if path.exists():
        try:
            file_data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    elif explicit:
        raise ConfigError([f"{path}: config file not found (pass an existing file to --config or OMEGA_CONFIG)"])

    cli: dict[str, Any] = {}
    for text in overrides or []:
        parts, value = _parse_override(text)
        node = cli
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    cli = _deep_merge(cli, {k: v for k, v in flag_overrides.items() if v})

    env_keys = _env_keys()
    # The environment beats the file but loses to the CLI: drop file keys the env sets, so the env
    # source fills them, and pass CLI values as init kwargs, which pydantic-settings ranks first.
    file_minus_env = _drop_dotted(file_data, set(env_keys))
    try:
        return Settings(**_deep_merge(file_minus_env, cli))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env_keys, cli)) from None


def _drop_dotted(data: dict[str, Any], dotted: set[str], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name.lower() in dotted:
            continue
        out[key] = _drop_dotted(value, dotted, name + ".") if isinstance(value, dict) else value
    return out


def _has_dotted(data: dict[str, Any], loc: list[str]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _describe(exc: ValidationError, path: Path, env_keys: dict[str, str], cli: dict[str, Any]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join(loc) or "(top level)"
        if _has_dotted(cli, loc):
            where = "command line"
        elif dotted.lower() in env_keys:
            where = f"environment {env_keys[dotted.lower()]}"
        else:
            where = str(path)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling against config.toml's documented keys)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        value = err.get("input")
        shown = "" if err["type"] in ("missing",) or isinstance(value, dict) else f" = {value!r}"
        lines.append(f"{where}: {dotted}{shown}: {msg}")
    return lines


# ------------------------------------------------------------------------------------------- state dir


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory (0700) or refuse one that other users can write to."""
    path = path.expanduser()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError([f"state.dir = {str(path)!r}: cannot be created: {exc.strerror}"]) from None
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            [
                f"state.dir = {str(path)!r}: writable by other users (mode {stat.S_IMODE(mode):o}); "
                f"other processes control the engine through it, so run `chmod 700 {path}` or choose another"
            ]
        )
    return path


# ------------------------------------------------------------------------------------- documentation

CONFIG_HEADER = """\
# Omega TUI configuration. Every setting is listed with its default and a one-line comment.
# Precedence, highest first: command-line flags (--set section.field=value) > environment variables
# (OMEGA_ prefix, __ between levels: OMEGA_IB__PORT=4002) > this file > built-in defaults.
# Unknown keys are errors. This file is generated by `python -m omega_tui.config > config.toml`
# and then edited; a test checks that it still documents every setting.
#
# To trade through a real IB Gateway instead of the embedded simulator, change ONE line:
#     [ib] mode = "gateway"        (port 4002 = paper Gateway, 4001 = live Gateway)
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dtime):
        return f'"{value.strftime("%H:%M")}"'
    if isinstance(value, Path | str):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _render_fields(model: BaseModel, skip: set[str] | None = None) -> list[str]:
    lines = []
    for name, info in type(model).model_fields.items():
        if skip and name in skip:
            continue
        value = getattr(model, name)
        lines.append(f"# {info.description or name}")
        if value is None:
            lines.append(f'# {name} = "…"  (unset)')
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return lines


def render_default_toml(header: str = "") -> str:
    """The documented default config.toml: every setting with its one-line comment."""
    defaults = Settings()
    out = [header.rstrip(), ""] if header else []
    for section, info in Settings.model_fields.items():
        model = getattr(defaults, section)
        out.append(f"# {info.description}" if info.description else f"# [{section}]")
        out.append(f"[{section}]")
        if section == "state":
            out.append(
                "# Hot state, halt latch, risk day, journal and logs live here (0700; refused if others can write)."
            )
            out.append(
                "# Default: $XDG_STATE_HOME/omega-tui, else ~/.local/state/omega-tui. Uncomment to choose another:"
            )
            out.append('# dir = "/var/lib/omega-tui"')
            out.extend(_render_fields(model, skip={"dir"}))
        elif section == "instruments":
            out.extend(_render_fields(model, skip={"watchlist"}))
            for item in model.watchlist:
                out.append("")
                out.append("[[instruments.watchlist]]")
                for name in ("symbol", "sec_type", "exchange", "currency", "primary_exchange"):
                    out.append(f"{name} = {_toml_value(getattr(item, name))}")
        else:
            out.extend(_render_fields(model))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # python -m omega_tui.config > config.toml
    import sys

    sys.stdout.write(render_default_toml(CONFIG_HEADER))
