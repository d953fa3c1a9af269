"""Configuration of fama-ryu: the domain file and the ``[fama]`` options.

Two independent parts:

* The **domain file** (YAML) describes every Distributed Anchor Router
  (DAR) of one FAMA domain.  :func:`load_domain` / :func:`parse_domain`
  turn it into frozen dataclasses (:class:`DomainConfig`,
  :class:`DarConfig`) with parsed types, after checking everything that
  can be checked without a switch.  Every problem is collected and raised
  together as one :class:`ConfigError`, each message starting with the
  location of the offending value (``dars[1].anchor_address: ...``).
  This part uses neither Ryu nor oslo.config.
* :func:`register_opts` registers the ``[fama]`` oslo.config group that
  ``fama-controller --config-file etc/fama.conf`` reads, and
  :func:`apply_listen_defaults` makes Ryu's listeners default to loopback.

Domain file schema (keys marked ``?`` are optional; ``null`` means the
default)::

    domain:                          # ? the whole section
      tombstone_ttl_s: 86400         # ? seconds a deregistered HoA's last sequence
                                     #   number is remembered, 1 .. 31536000
      legacy_home_agent: dar1        # ? draft Appendix A.5 legacy fallback: the ONE DAR
                                     #   that is also home agent for every other prefix
    dars:                            # one or more
      - name: dar1                   # letters, digits, "_", ".", "-"; at most 64; unique
        dpid: 0x0000000000000001     # 1 .. 2^64-1, unique; an integer (decimal or 0x-hex)
                                     #   or text of 1..16 hex digits ("0000000000000001", "0x1")
        access_ports: [d1-acc]       # one or more OpenFlow ports facing mobile nodes
        core_port: d1-core           # uplink to the core
        gre_port: d1-gre             # the flow-based GRE port of P14
        router_mac: "02:00:00:00:d0:01"   # unicast, unique; stored lower-case
        access_prefixes: ["2001:db8:1::/64"]   # /64s (RFC 3972, RFC 4862), unique in
                                     #   the domain; not link-local, site-local,
                                     #   multicast or ::/64
        anchor_address: "2001:db8:1::1"        # A_d, inside the FIRST access prefix (P1),
                                     #   not its Subnet-Router anycast address
        link_local: "fe80::d0:1"     # ? in fe80::/10; default: modified EUI-64 of router_mac
        core_next_hop:
          address: "2001:db8:ffff::ff"  # unicast, not the anchor address
          mac: "02:00:00:00:ff:ff"      # the next hop's MAC
        return_routability: false    # ? care-of test required (P13); default false
        binding_limit: 10000         # ? >= 1; default 100000: a new binding beyond it
                                     #   gets BA 130 (updates still work)
        rsa_verifications_per_s: 1000           # ? 1 .. 1000000; default 1000: RSA
                                     #   signature checks per second for this DAR
        rsa_verifications_per_source_per_s: 100 # ? 1 .. 1000000; default 100: the same
                                     #   per source /64; over either, silent drop
        max_lifetime_s: 3600         # ? 4 .. 86400 (P12); default 3600
        min_key_bits: 1024           # ? 1024 .. 2040 (P8); default 1024
        punt_pps:                    # ? packets per second the switch's punt meters let
                                     #   reach the controller, 1 .. 1000000 each
          domain_mobility: 1000      # ? Mobility Headers from the domain's access prefixes
          mobility: 500              # ? Mobility Headers from any other source
          neighbor_discovery: 500    # ? RS, NA, NS for the DAR's own addresses
          resolve: 100               # ? packets for access-prefix hosts with no route
        ra_interval_s: [198, 600]    # ? [MinRtrAdvInterval, MaxRtrAdvInterval], seconds,
                                     #   RFC 4861 §6.2.1: Max 4..1800, Min 3..0.75*Max;
                                     #   default [198, 600] (the RFC 4861 defaults)

A dpid written as text is always hex, as OVS prints it: ``dpid: 10`` is
ten, ``dpid: "10"`` (or an unquoted ``0000000000000010``) is sixteen.

A port is an OpenFlow port number (1 .. 0xfffffeff) or a port name (1..15
printable ASCII characters, no spaces), resolved when the switch connects.
Within a DAR no port may have two roles; a number and a name that denote
the same port cannot be told apart before the switch connects.

YAML is read differently from plain YAML 1.1 in two ways, to avoid silent
misreadings: only decimal numbers without leading zeros and ``0x`` hex
numbers are integers, so an unquoted ``0000000000000010`` is the text of a
hex dpid (not octal 8) and unquoted MACs or IPv6 addresses are never
base-60 numbers; and a duplicate key in a mapping is an error.  Unknown
keys are errors too, with the closest known key suggested.  YAML errors
are located as ``line L, column C``, all others by their key path.

Legacy fallback (``domain.legacy_home_agent``): the named DAR is home agent
for every access prefix of the domain, so a mobile node that keeps one
home agent, as in plain Mobile IPv6, can register any of its addresses
there.  Every other DAR keeps its ordinary FAMA role for its own prefixes
only (P1) and is never home agent for a foreign prefix.  See
:meth:`DarConfig.home_agent_config`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias, TypeGuard

import yaml
from oslo_config import cfg

from fama_ryu import cga
from fama_ryu.binding_cache import DEFAULT_TOMBSTONE_TTL_S
from fama_ryu.home_agent import (
    DEFAULT_RSA_VERIFICATIONS_PER_S,
    DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S,
    LIFETIME_UNIT_S,
    MAX_CGA_BINDING_LIFETIME_S,
    HomeAgentConfig,
)
from openflow_pipelines.dar_config import MAX_PUNT_PPS, PuntRates

PortRef: TypeAlias = int | str
"""An OpenFlow port number, or a port name resolved when the switch connects."""

MAX_DPID = (1 << 64) - 1
MAX_PORT_NUMBER = 0xFFFFFEFF  # OpenFlow 1.3 reserves OFPP_MAX (0xffffff00) and above
MAX_PORT_NAME_LENGTH = 15  # ofp_port.name is 16 bytes, NUL-terminated
MAX_NAME_LENGTH = 64
DEFAULT_BINDING_LIMIT = 100_000
MAX_RSA_VERIFICATIONS_PER_S = 1_000_000
DEFAULT_MAX_LIFETIME_S = 3600
MAX_TOMBSTONE_TTL_S = 365 * 86400  # tombstones stay in memory and in the store until then
DEFAULT_RA_INTERVAL_S = (198.0, 600.0)  # RFC 4861 §6.2.1: Max 600, Min 0.33 * Max
RA_MAX_INTERVAL_BOUNDS_S = (4, 1800)  # RFC 4861 §6.2.1 MaxRtrAdvInterval
RA_MIN_INTERVAL_FLOOR_S = 3  # RFC 4861 §6.2.1 MinRtrAdvInterval, at most 0.75 * Max
ACCESS_PREFIX_LENGTH = 64  # RFC 3972 CGAs and RFC 4862 SLAAC both need a /64

TOP_LEVEL = "(top level)"


class ConfigError(Exception):
    """An invalid domain file: ``errors`` lists every problem found.

    Each entry reads ``location: problem``; ``str()`` gives one line per
    entry, prefixed with ``source`` (usually the file name) when known.
    """

    def __init__(self, errors: list[str], source: str = "") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + error for error in self.errors)


class UnreadableConfigError(ConfigError):
    """The domain file could not be read at all (missing, no permission, a directory)."""


@dataclass(frozen=True)
class NextHop:
    """The core router a DAR sends non-local traffic to."""

    address: ipaddress.IPv6Address
    mac: str


@dataclass(frozen=True)
class DarConfig:
    """One DAR: the switch it runs on, its ports, prefixes and home-agent limits."""

    name: str
    dpid: int
    access_ports: tuple[PortRef, ...]
    core_port: PortRef
    gre_port: PortRef
    router_mac: str
    access_prefixes: tuple[ipaddress.IPv6Network, ...]
    anchor_address: ipaddress.IPv6Address
    link_local: ipaddress.IPv6Address
    core_next_hop: NextHop
    return_routability: bool = False
    binding_limit: int = DEFAULT_BINDING_LIMIT
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S
    min_key_bits: int = cga.MIN_KEY_BITS
    ra_interval_s: tuple[float, float] = DEFAULT_RA_INTERVAL_S
    rsa_verifications_per_s: int = DEFAULT_RSA_VERIFICATIONS_PER_S
    rsa_verifications_per_source_per_s: int = DEFAULT_RSA_VERIFICATIONS_PER_SOURCE_PER_S
    punt_rates: PuntRates = PuntRates()
    # Every access prefix of the domain (set by parse_domain): Mobility
    # Headers from there take this DAR's domain punt meter.  Derived from the
    # other DARs, so not part of this DAR's identity.
    domain_prefixes: tuple[ipaddress.IPv6Network, ...] = field(default=(), compare=False)

    @property
    def dpid_text(self) -> str:
        """The datapath id as 16 hex digits, the form OVS and logs show."""
        return f"{self.dpid:016x}"

    def home_agent_config(self, domain: DomainConfig) -> HomeAgentConfig:
        """What this DAR's home agent needs, in the packed form it works with.

        Home prefixes are this DAR's access prefixes (the anchor's first).
        If this DAR is the domain's legacy home agent, the access prefixes
        of every other DAR follow, in file order; the other DARs keep only
        their own (module docstring, "Legacy fallback").
        """
        if self not in domain.dars:
            raise ValueError(f"DAR {self.name!r} is not part of this domain")
        prefixes = list(self.access_prefixes)
        if domain.legacy_home_agent == self.name:
            prefixes += [
                prefix
                for other in domain.dars
                if other.name != self.name
                for prefix in other.access_prefixes
            ]
        return HomeAgentConfig(
            name=self.name,
            anchor_address=self.anchor_address.packed,
            home_prefixes=tuple(prefix.network_address.packed[:8] for prefix in prefixes),
            own_addresses=frozenset({self.anchor_address.packed, self.link_local.packed}),
            max_lifetime_s=self.max_lifetime_s,
            binding_limit=self.binding_limit,
            min_key_bits=self.min_key_bits,
            max_key_bits=cga.MAX_KEY_BITS,
            return_routability=self.return_routability,
            local_prefixes=tuple(
                prefix.network_address.packed[:8] for prefix in self.access_prefixes
            ),
            rsa_verifications_per_s=self.rsa_verifications_per_s,
            rsa_verifications_per_source_per_s=self.rsa_verifications_per_source_per_s,
        )


@dataclass(frozen=True)
class DomainConfig:
    """Every DAR of one FAMA domain, plus the domain-wide settings."""

    dars: tuple[DarConfig, ...]
    tombstone_ttl_s: float = DEFAULT_TOMBSTONE_TTL_S
    legacy_home_agent: str | None = None

    def dar_by_dpid(self, dpid: int) -> DarConfig | None:
        """The DAR running on switch ``dpid``, or None for a switch not in the file."""
        return next((dar for dar in self.dars if dar.dpid == dpid), None)


def load_domain(path: Path) -> DomainConfig:
    """Read, parse and validate a domain file.

    Raises :class:`UnreadableConfigError` when the file cannot be read and
    :class:`ConfigError` for anything wrong with its content.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([f"{TOP_LEVEL}: not UTF-8 text (byte {error.start})"], source) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise UnreadableConfigError([f"cannot read the file: {reason}"], source) from None
    try:
        data = yaml.load(text, Loader=_DomainLoader)
    except yaml.YAMLError as error:
        raise ConfigError([_yaml_error_message(error, text)], source) from None
    except RecursionError:
        raise ConfigError([f"{TOP_LEVEL}: YAML nested too deeply"], source) from None
    if data is None:
        raise ConfigError([f"{TOP_LEVEL}: the file is empty (no YAML document)"], source)
    return parse_domain(data, source)


def parse_domain(data: object, source: str) -> DomainConfig:
    """Validate already-loaded YAML data; ``source`` names it in :class:`ConfigError`."""
    report = _Report()
    top = _parse_mapping(data, TOP_LEVEL, report, schema=_TOP_SCHEMA) or {}
    domain_settings: dict[str, Any] = top.get("domain") or {}
    drafts: list[_DarDraft] = top.get("dars") or []
    _check_across_dars(drafts, report)
    _check_legacy_home_agent(domain_settings.get("legacy_home_agent"), drafts, report)
    if report.errors:
        raise ConfigError(report.errors, source)
    domain_prefixes = tuple(
        prefix for draft in drafts for prefix in draft.fields.get("access_prefixes", ())
    )
    return DomainConfig(
        dars=tuple(DarConfig(**draft.fields, domain_prefixes=domain_prefixes) for draft in drafts),
        **domain_settings,
    )


# ---------------------------------------------------------------- YAML reading


# libyaml's parser when PyYAML has it: the pure-Python one spends 100 ms and
# more on a few hundred bytes of nested brackets (found by fuzz/fuzz_config.py).
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DomainLoader(_SAFE_LOADER):  # type: ignore[valid-type,misc]
    """SafeLoader without YAML 1.1's octal and base-60 integers, refusing duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                identity = (key_node.tag, key_node.value)
                if identity in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(identity)
        return super().construct_mapping(node, deep=deep)


# Digit-count limits keep int() away from Python's 4300-digit conversion limit.
_DomainLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]{0,40})|0x[0-9a-fA-F][0-9a-fA-F_]{0,40})$"),
    list("-+0123456789"),
)


def _yaml_error_message(error: yaml.YAMLError, text: str) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = " ".join(str(error.problem).split())
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(error, yaml.reader.ReaderError):  # a control character: no mark, an offset
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        return f"line {line}, column {column}: character #x{error.character:04x}: {error.reason}"
    return f"{TOP_LEVEL}: " + " ".join(str(error).split())


# ---------------------------------------------------------------- validation machinery


class _Report:
    """Collects ``location: problem`` lines, so every error is reported at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, location: str, problem: str) -> None:
        self.errors.append(f"{location}: {problem}")


_Parser = Callable[[object, str, _Report], Any]
"""Parses one value found at a location; returns None after reporting a problem."""


@dataclass(frozen=True)
class _Key:
    parse: _Parser
    required: bool = False


@dataclass
class _DarDraft:
    """The valid fields of one ``dars`` entry, named as :class:`DarConfig` fields."""

    location: str
    fields: dict[str, Any]


def _show(value: object) -> str:
    """A user value for a message: repr for text, never huge."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        text = f"{value:#x}"  # str() of a huge int can exceed Python's digit limit
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:56] + "..."


def _describe(value: object) -> str:
    """What a value of the wrong kind is, for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "a mapping"
    return f"a value of type {type(value).__name__}"


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PLAIN_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


def _child(location: str, key: str) -> str:
    # Odd keys (spaces, newlines, empty) are quoted so each error stays one readable line.
    if not _PLAIN_KEY_PATTERN.fullmatch(key):
        return f"{'' if location == TOP_LEVEL else location}[{_show(key)}]"
    return key if location == TOP_LEVEL else f"{location}.{key}"


def _suggestion(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; expected one of: " + ", ".join(known)


def _parse_mapping(
    value: object, location: str, report: _Report, *, schema: Mapping[str, _Key]
) -> dict[str, Any] | None:
    """Check keys against ``schema`` and parse each value; returns the valid ones."""
    if not isinstance(value, dict):
        report.add(location, f"expected a mapping, got {_describe(value)}")
        return None
    parsed: dict[str, Any] = {}
    for key, raw in value.items():
        if not isinstance(key, str):
            report.add(location, f"key {_show(key)} is not text")
            continue
        key_location = _child(location, key)
        spec = schema.get(key)
        if spec is None:
            report.add(key_location, "unknown key" + _suggestion(key, list(schema)))
        elif raw is None:
            if spec.required:
                report.add(key_location, "required, but has no value")
        else:
            result = spec.parse(raw, key_location, report)
            if result is not None:
                parsed[key] = result
    for key, spec in schema.items():
        if spec.required and key not in value:
            report.add(_child(location, key), "required key is missing")
    return parsed


def _parse_list(
    value: object, location: str, report: _Report, *, item: _Parser, what: str
) -> tuple[Any, ...] | None:
    """A non-empty list of distinct items; None if the list or any item is invalid."""
    if not isinstance(value, list | tuple):
        report.add(location, f"expected a list of {what}, got {_describe(value)}")
        return None
    if not value:
        report.add(location, f"expected at least one of {what}, got an empty list")
        return None
    items: list[Any] = []
    valid = True
    for index, raw in enumerate(value):
        item_location = f"{location}[{index}]"
        parsed = item(raw, item_location, report)
        if parsed is None:
            valid = False
        elif parsed in items:
            report.add(item_location, f"{_show(parsed)} is listed twice")
            valid = False
        else:
            items.append(parsed)
    return tuple(items) if valid else None


def _parse_integer_in(
    value: object, location: str, report: _Report, *, low: int, high: int | None, rule: str
) -> int | None:
    if not _is_integer(value):
        report.add(location, f"expected an integer, got {_describe(value)}")
        return None
    if value < low:
        report.add(location, f"{_show(value)} is below the minimum {low}{rule}")
        return None
    if high is not None and value > high:
        report.add(location, f"{_show(value)} is outside {low}..{high}{rule}")
        return None
    return value


# ---------------------------------------------------------------- field parsers

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DPID_TEXT_PATTERN = re.compile(r"(?:0x)?[0-9a-f]{1,16}", re.IGNORECASE)
_MAC_PATTERN = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", re.IGNORECASE)
_PORT_NAME_PATTERN = re.compile(r"[!-~]+")  # printable ASCII, no spaces


def _parse_name(value: object, location: str, report: _Report) -> str | None:
    # Names appear in logs, metric labels and REST paths: keep them plain.
    if not isinstance(value, str):
        report.add(location, f"expected a name, got {_describe(value)}")
        return None
    if len(value) > MAX_NAME_LENGTH or not _NAME_PATTERN.fullmatch(value):
        report.add(
            location,
            f"{_show(value)} is not a name (1..{MAX_NAME_LENGTH} letters, digits, "
            "'_', '.', '-', starting with a letter or digit)",
        )
        return None
    return value


def _parse_dpid(value: object, location: str, report: _Report) -> int | None:
    if isinstance(value, str):
        if not _DPID_TEXT_PATTERN.fullmatch(value):
            report.add(
                location,
                f"{_show(value)} is not a datapath id (1..16 hex digits, optionally after 0x)",
            )
            return None
        dpid = int(value, 16)
    elif _is_integer(value):
        dpid = value
    else:
        report.add(location, f"expected an integer or hex text, got {_describe(value)}")
        return None
    if not 1 <= dpid <= MAX_DPID:
        report.add(location, f"datapath id {_show(dpid)} is outside 1..2^64-1")
        return None
    return dpid


def _parse_port(value: object, location: str, report: _Report) -> PortRef | None:
    if _is_integer(value):
        if not 1 <= value <= MAX_PORT_NUMBER:
            report.add(
                location,
                f"port number {_show(value)} is outside 1..{MAX_PORT_NUMBER:#x} "
                "(OpenFlow 1.3 reserves the numbers above)",
            )
            return None
        return value
    if isinstance(value, str):
        if len(value) > MAX_PORT_NAME_LENGTH or not _PORT_NAME_PATTERN.fullmatch(value):
            report.add(
                location,
                f"port name {_show(value)} must be 1..{MAX_PORT_NAME_LENGTH} printable ASCII "
                "characters without spaces (OpenFlow port names are 16 bytes with a NUL)",
            )
            return None
        return value
    report.add(location, f"expected a port number or port name, got {_describe(value)}")
    return None


def _parse_mac(value: object, location: str, report: _Report) -> str | None:
    if not isinstance(value, str):
        report.add(
            location, f'expected a MAC address like "02:00:00:00:00:01", got {_describe(value)}'
        )
        return None
    if not _MAC_PATTERN.fullmatch(value):
        report.add(location, f"{_show(value)} is not a MAC address (six hex octets joined by ':')")
        return None
    mac = value.lower()
    if int(mac[:2], 16) & 0x01:
        report.add(location, f"{mac} is a multicast MAC address; a unicast one is needed")
        return None
    if mac == "00:00:00:00:00:00":
        report.add(location, "00:00:00:00:00:00 is not a usable MAC address")
        return None
    return mac


def _parse_address(value: object, location: str, report: _Report) -> ipaddress.IPv6Address | None:
    # ipaddress also accepts integers and bytes: only text is an address here.
    if not isinstance(value, str):
        report.add(location, f"expected an IPv6 address as text, got {_describe(value)}")
        return None
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError as error:
        report.add(location, f"not an IPv6 address: {error}")
        return None
    if address.scope_id is not None:
        report.add(location, f"{_show(value)}: a zone index (%...) is not allowed")
        return None
    return address


def _parse_unicast_address(
    value: object, location: str, report: _Report
) -> ipaddress.IPv6Address | None:
    address = _parse_address(value, location, report)
    if address is None:
        return None
    if address.is_multicast or address.is_unspecified or address.is_loopback:
        report.add(location, f"{address} is not a unicast address")
        return None
    return address


def _parse_link_local(
    value: object, location: str, report: _Report
) -> ipaddress.IPv6Address | None:
    address = _parse_address(value, location, report)
    if address is None:
        return None
    if not address.is_link_local:
        report.add(location, f"{address} is not a link-local address (fe80::/10)")
        return None
    return address


def _unsuitable_prefix_reason(network: ipaddress.IPv6Network) -> str | None:
    """Why a /64 cannot anchor mobile nodes' global addresses, or None if it can."""
    if network.is_multicast:
        return "multicast (ff00::/8)"
    if network.is_link_local:
        return "link-local (fe80::/10)"
    if network.is_site_local:
        return "site-local (fec0::/10, deprecated by RFC 3879)"
    if network.network_address.packed[:8] == bytes(8):
        return "::/64 (unspecified, loopback, IPv4-compatible and IPv4-mapped addresses)"
    return None


def _parse_access_prefix(
    value: object, location: str, report: _Report
) -> ipaddress.IPv6Network | None:
    if not isinstance(value, str):
        report.add(
            location, f'expected an IPv6 prefix like "2001:db8:1::/64", got {_describe(value)}'
        )
        return None
    try:
        network = ipaddress.IPv6Network(value)
    except ValueError as error:
        report.add(location, f"not an IPv6 prefix: {error}")
        return None
    if network.network_address.scope_id is not None:
        report.add(location, f"{_show(value)}: a zone index (%...) is not allowed")
        return None
    if network.prefixlen != ACCESS_PREFIX_LENGTH:
        report.add(
            location,
            f"{network} is a /{network.prefixlen}; access prefixes must be /64 "
            "(RFC 3972 CGAs and RFC 4862 SLAAC)",
        )
        return None
    reason = _unsuitable_prefix_reason(network)
    if reason is not None:
        report.add(location, f"{network} is not a global unicast prefix: {reason}")
        return None
    return network


def _parse_bool(value: object, location: str, report: _Report) -> bool | None:
    if not isinstance(value, bool):
        report.add(location, f"expected true or false, got {_describe(value)}")
        return None
    return value


def _parse_ra_interval(value: object, location: str, report: _Report) -> tuple[float, float] | None:
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_number, value))):
        report.add(
            location,
            "expected [MinRtrAdvInterval, MaxRtrAdvInterval], two numbers of seconds, "
            f"got {_describe(value)}",
        )
        return None
    min_s, max_s = value
    low, high = RA_MAX_INTERVAL_BOUNDS_S
    # Compared before any float() conversion, which overflows on huge integers.
    if not low <= max_s <= high:
        report.add(
            location,
            f"MaxRtrAdvInterval {_show(max_s)} s is outside {low}..{high} s (RFC 4861 §6.2.1)",
        )
        return None
    floor, ceiling = RA_MIN_INTERVAL_FLOOR_S, 0.75 * max_s
    if not floor <= min_s <= ceiling:
        report.add(
            location,
            f"MinRtrAdvInterval {_show(min_s)} s is outside {floor}..{ceiling:g} s "
            "(RFC 4861 §6.2.1: at least 3 s and at most 0.75 x MaxRtrAdvInterval)",
        )
        return None
    return float(min_s), float(max_s)


def _parse_tombstone_ttl(value: object, location: str, report: _Report) -> float | None:
    if not _is_number(value):
        report.add(location, f"expected a number of seconds, got {_describe(value)}")
        return None
    if not 1 <= value <= MAX_TOMBSTONE_TTL_S:
        report.add(location, f"{_show(value)} s is outside 1..{MAX_TOMBSTONE_TTL_S} s")
        return None
    return float(value)


_NEXT_HOP_SCHEMA: dict[str, _Key] = {
    "address": _Key(_parse_unicast_address, required=True),
    # Required: the DAR rewrites every routed packet to this MAC (no
    # resolution of the next hop by Neighbor Discovery yet).
    "mac": _Key(_parse_mac, required=True),
}


def _parse_next_hop(value: object, location: str, report: _Report) -> NextHop | None:
    before = len(report.errors)
    fields = _parse_mapping(value, location, report, schema=_NEXT_HOP_SCHEMA)
    if fields is None or len(report.errors) != before:
        return None
    return NextHop(**fields)


_PUNT_PPS = partial(_parse_integer_in, low=1, high=MAX_PUNT_PPS, rule=" packets per second")
# Keys are the punt meters' names (docs/pipeline.md); absent keys keep PuntRates' defaults.
_PUNT_SCHEMA: dict[str, _Key] = {
    name: _Key(_PUNT_PPS)
    for name in ("domain_mobility", "mobility", "neighbor_discovery", "resolve")
}


def _parse_punt_rates(value: object, location: str, report: _Report) -> PuntRates | None:
    before = len(report.errors)
    fields = _parse_mapping(value, location, report, schema=_PUNT_SCHEMA)
    if fields is None or len(report.errors) != before:
        return None
    return PuntRates(**{f"{name}_pps": rate for name, rate in fields.items()})


# Keys are DarConfig field names: absent optional keys take the dataclass defaults.
_DAR_SCHEMA: dict[str, _Key] = {
    "name": _Key(_parse_name, required=True),
    "dpid": _Key(_parse_dpid, required=True),
    "access_ports": _Key(partial(_parse_list, item=_parse_port, what="ports"), required=True),
    "core_port": _Key(_parse_port, required=True),
    "gre_port": _Key(_parse_port, required=True),
    "router_mac": _Key(_parse_mac, required=True),
    "access_prefixes": _Key(
        partial(_parse_list, item=_parse_access_prefix, what="/64 prefixes"), required=True
    ),
    "anchor_address": _Key(_parse_address, required=True),
    "link_local": _Key(_parse_link_local),
    "core_next_hop": _Key(_parse_next_hop, required=True),
    "return_routability": _Key(_parse_bool),
    "binding_limit": _Key(partial(_parse_integer_in, low=1, high=None, rule="")),
    # Lifetimes travel in 4-second units: below 4 s a grant would read as 0, a deregistration.
    "max_lifetime_s": _Key(
        partial(
            _parse_integer_in,
            low=LIFETIME_UNIT_S,
            high=MAX_CGA_BINDING_LIFETIME_S,
            rule=" s (P12)",
        )
    ),
    "min_key_bits": _Key(
        partial(_parse_integer_in, low=cga.MIN_KEY_BITS, high=cga.MAX_KEY_BITS, rule=" (P8)")
    ),
    "ra_interval_s": _Key(_parse_ra_interval),
    "rsa_verifications_per_s": _Key(
        partial(_parse_integer_in, low=1, high=MAX_RSA_VERIFICATIONS_PER_S, rule=" per second")
    ),
    "rsa_verifications_per_source_per_s": _Key(
        partial(_parse_integer_in, low=1, high=MAX_RSA_VERIFICATIONS_PER_S, rule=" per second")
    ),
    "punt_pps": _Key(_parse_punt_rates),  # DarConfig.punt_rates
}


def _eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """fe80::/64 plus the modified EUI-64 interface identifier (RFC 4291 Appendix A)."""
    octets = bytes.fromhex(mac.replace(":", ""))
    interface_id = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + interface_id)


def _check_dar_consistency(location: str, fields: dict[str, Any], report: _Report) -> None:
    """Checks that span several keys of one DAR; also derives the default link-local."""
    prefixes: tuple[ipaddress.IPv6Network, ...] = fields.get("access_prefixes", ())
    anchor: ipaddress.IPv6Address | None = fields.get("anchor_address")
    if prefixes and anchor is not None:
        first = prefixes[0]
        if anchor not in first:
            report.add(
                f"{location}.anchor_address",
                f"{anchor} is not inside the first access prefix {first} (P1)",
            )
        elif anchor == first.network_address:
            report.add(
                f"{location}.anchor_address",
                f"{anchor} is the Subnet-Router anycast address of {first} (RFC 4291 §2.6.1)",
            )

    access_ports: tuple[PortRef, ...] = fields.get("access_ports", ())
    core_port: PortRef | None = fields.get("core_port")
    gre_port: PortRef | None = fields.get("gre_port")
    if core_port is not None and core_port in access_ports:
        report.add(f"{location}.core_port", f"port {_show(core_port)} is also an access port")
    if gre_port is not None and gre_port in access_ports:
        report.add(f"{location}.gre_port", f"port {_show(gre_port)} is also an access port")
    if gre_port is not None and gre_port == core_port:
        report.add(f"{location}.gre_port", f"port {_show(gre_port)} is also the core port")

    # The next hop may sit inside the anchor's /64: Open vSwitch 3.1 takes a
    # tunnel's outer source from the route to the next hop, so numbering the
    # next hop there is how the outer source becomes A_d (docs/lab-notes.md).
    next_hop: NextHop | None = fields.get("core_next_hop")
    anchor = fields.get("anchor_address")
    if next_hop is not None and anchor is not None and next_hop.address == anchor:
        report.add(
            f"{location}.core_next_hop.address",
            f"{next_hop.address} is the anchor address itself",
        )

    if "link_local" not in fields and "router_mac" in fields:
        fields["link_local"] = _eui64_link_local(fields["router_mac"])


def _parse_dar(value: object, location: str, report: _Report) -> _DarDraft:
    fields = _parse_mapping(value, location, report, schema=_DAR_SCHEMA)
    if fields is None:
        return _DarDraft(location, {})
    if "punt_pps" in fields:
        fields["punt_rates"] = fields.pop("punt_pps")
    _check_dar_consistency(location, fields, report)
    return _DarDraft(location, fields)


def _parse_dars(value: object, location: str, report: _Report) -> list[_DarDraft] | None:
    if not isinstance(value, list | tuple):
        report.add(location, f"expected a list of DARs, got {_describe(value)}")
        return None
    if not value:
        report.add(location, "at least one DAR is required")
        return None
    return [_parse_dar(raw, f"{location}[{index}]", report) for index, raw in enumerate(value)]


_DOMAIN_SCHEMA: dict[str, _Key] = {
    "tombstone_ttl_s": _Key(_parse_tombstone_ttl),
    "legacy_home_agent": _Key(_parse_name),
}

_TOP_SCHEMA: dict[str, _Key] = {
    "domain": _Key(partial(_parse_mapping, schema=_DOMAIN_SCHEMA)),
    "dars": _Key(_parse_dars, required=True),
}


def _report_duplicates(
    drafts: list[_DarDraft], field: str, show: Callable[[Any], str], report: _Report
) -> None:
    first_user: dict[Any, str] = {}
    for draft in drafts:
        value = draft.fields.get(field)
        if value is None:
            continue
        if value in first_user:
            report.add(
                f"{draft.location}.{field}", f"{show(value)} is already used by {first_user[value]}"
            )
        else:
            first_user[value] = draft.location


def _check_across_dars(drafts: list[_DarDraft], report: _Report) -> None:
    _report_duplicates(drafts, "name", repr, report)
    _report_duplicates(drafts, "dpid", "{:016x}".format, report)
    _report_duplicates(drafts, "anchor_address", str, report)
    _report_duplicates(drafts, "router_mac", str, report)
    # All valid access prefixes are /64s, so two overlap exactly when they are equal.
    owner: dict[ipaddress.IPv6Network, str] = {}
    for draft in drafts:
        for index, prefix in enumerate(draft.fields.get("access_prefixes", ())):
            if prefix in owner:
                report.add(
                    f"{draft.location}.access_prefixes[{index}]",
                    f"{prefix} is already an access prefix of {owner[prefix]}",
                )
            else:
                owner[prefix] = draft.location


def _check_legacy_home_agent(name: str | None, drafts: list[_DarDraft], report: _Report) -> None:
    names: list[str] = [draft.fields["name"] for draft in drafts if "name" in draft.fields]
    # With no DAR list, or a DAR whose name is already reported, the answer is unknown.
    if name is None or not drafts or len(names) != len(drafts):
        return
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        report.add("domain.legacy_home_agent", f"no DAR is named {name!r}{hint}")


# ---------------------------------------------------------------- oslo.config options

FAMA_OPT_GROUP = "fama"
DEFAULT_STORE_PATH = "/var/lib/fama/bindings.sqlite"
LOOPBACK_HOST = "127.0.0.1"
# Ryu's OpenFlow and REST listeners default to every interface (0.0.0.0).
RYU_LISTEN_HOST_OPTS = ("ofp_listen_host", "wsapi_host")

FAMA_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "domain_file",
        required=True,
        help="YAML file describing the DARs of the domain (see fama_ryu.config); "
        "a relative path is taken from the working directory.",
    ),
    cfg.StrOpt(
        "store_path",
        default=DEFAULT_STORE_PATH,
        help="SQLite file that keeps bindings and tombstones across restarts.",
    ),
    cfg.PortOpt(
        "metrics_port",
        default=0,
        help="TCP port of the Prometheus metrics endpoint; 0 turns it off.",
    ),
    cfg.HostAddressOpt(
        "metrics_host",
        default=LOOPBACK_HOST,
        help="Address the metrics endpoint listens on.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[fama]`` options on ``conf`` (Ryu's ``cfg.CONF`` in the app)."""
    conf.register_opts(FAMA_OPTS, group=FAMA_OPT_GROUP)


def apply_listen_defaults(conf: cfg.ConfigOpts) -> None:
    """Make Ryu's listeners default to loopback; a config file or CLI value still wins.

    Only options already registered (by whichever Ryu modules are loaded)
    are touched, so this needs no Ryu import.
    """
    for name in RYU_LISTEN_HOST_OPTS:
        try:
            conf.set_default(name, LOOPBACK_HOST)
        except cfg.NoSuchOptError:
            continue
