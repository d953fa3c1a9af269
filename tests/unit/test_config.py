"""Unit tests for fama_ryu.config: the domain file, the [fama] options, check-config."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from fama_ryu import cga, cli
from fama_ryu.config import (
    DEFAULT_RA_INTERVAL_S,
    DEFAULT_STORE_PATH,
    ConfigError,
    DarConfig,
    DomainConfig,
    NextHop,
    UnreadableConfigError,
    apply_listen_defaults,
    load_domain,
    parse_domain,
    register_opts,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "etc" / "fama-domain.yaml"
LEGACY_SAMPLE = REPO / "etc" / "fama-domain-legacy.yaml"
SAMPLE_CONF = REPO / "etc" / "fama.conf"


def dar_entry(number: int) -> dict[str, Any]:
    """A valid ``dars`` entry for DAR ``number``, with every optional key left out."""
    return {
        "name": f"dar{number}",
        "dpid": number,
        "access_ports": [1],
        "core_port": 2,
        "gre_port": "gre1",
        "router_mac": f"02:00:00:00:d0:{number:02x}",
        "access_prefixes": [f"2001:db8:{number}::/64"],
        "anchor_address": f"2001:db8:{number}::1",
        "core_next_hop": {"address": "2001:db8:ffff::ff", "mac": "02:00:00:00:ff:ff"},
    }


def domain_data(count: int = 2) -> dict[str, Any]:
    return {"dars": [dar_entry(number) for number in range(1, count + 1)]}


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_domain(data, "test.yaml")
    return raised.value.errors


def assert_error(data: object, location: str, fragment: str) -> None:
    errors = errors_of(data)
    matching = [e for e in errors if e.startswith(f"{location}: ") and fragment in e]
    assert matching, f"no error at {location!r} containing {fragment!r} in {errors}"


def with_dar_value(key: str, value: object, index: int = 0) -> dict[str, Any]:
    data = domain_data()
    data["dars"][index][key] = value
    return data


def without_dar_key(key: str) -> dict[str, Any]:
    data = domain_data()
    del data["dars"][0][key]
    return data


def write(tmp_path: Path, text: str, name: str = "domain.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- valid input


def test_minimal_domain_parses_with_defaults() -> None:
    domain = parse_domain(domain_data(), "test.yaml")
    first = domain.dars[0]
    assert first == DarConfig(
        name="dar1",
        dpid=1,
        access_ports=(1,),
        core_port=2,
        gre_port="gre1",
        router_mac="02:00:00:00:d0:01",
        access_prefixes=(ipaddress.IPv6Network("2001:db8:1::/64"),),
        anchor_address=ipaddress.IPv6Address("2001:db8:1::1"),
        link_local=ipaddress.IPv6Address("fe80::ff:fe00:d001"),
        core_next_hop=NextHop(ipaddress.IPv6Address("2001:db8:ffff::ff"), "02:00:00:00:ff:ff"),
    )
    assert (first.return_routability, first.binding_limit, first.max_lifetime_s) == (
        False,
        100_000,
        3600,
    )
    assert first.min_key_bits == cga.MIN_KEY_BITS
    assert first.ra_interval_s == DEFAULT_RA_INTERVAL_S
    assert domain.tombstone_ttl_s == 86400
    assert domain.legacy_home_agent is None


def test_every_optional_key_is_parsed() -> None:
    data = domain_data()
    data["domain"] = {"tombstone_ttl_s": 600, "legacy_home_agent": "dar2"}
    data["dars"][0].update(
        link_local="fe80::d0:1",
        router_mac="02:AB:00:00:D0:01",
        core_next_hop={"address": "fe80::1", "mac": "02:00:00:00:FF:FF"},
        return_routability=True,
        binding_limit=1,
        max_lifetime_s=4,
        min_key_bits=2040,
        ra_interval_s=[3, 4.5],
    )
    domain = parse_domain(data, "test.yaml")
    first = domain.dars[0]
    assert first.link_local == ipaddress.IPv6Address("fe80::d0:1")
    assert first.router_mac == "02:ab:00:00:d0:01"
    assert first.core_next_hop == NextHop(ipaddress.IPv6Address("fe80::1"), "02:00:00:00:ff:ff")
    assert first.return_routability is True
    assert (first.binding_limit, first.max_lifetime_s, first.min_key_bits) == (1, 4, 2040)
    assert first.ra_interval_s == (3.0, 4.5)
    assert (domain.tombstone_ttl_s, domain.legacy_home_agent) == (600.0, "dar2")


def test_null_optional_keys_take_their_defaults() -> None:
    data = domain_data()
    data["domain"] = {"tombstone_ttl_s": None, "legacy_home_agent": None}
    data["dars"][0].update(link_local=None, ra_interval_s=None, binding_limit=None)
    domain = parse_domain(data, "test.yaml")
    assert domain.dars[0].binding_limit == 100_000
    assert domain.dars[0].ra_interval_s == DEFAULT_RA_INTERVAL_S


@pytest.mark.parametrize(
    ("dpid", "expected"),
    [(1, 1), ("0000000000000001", 1), ("0x1", 1), ("00000000000000fF", 255), ((1 << 64) - 1,) * 2],
)
def test_dpid_forms(dpid: object, expected: int) -> None:
    domain = parse_domain(with_dar_value("dpid", dpid), "test.yaml")
    assert domain.dars[0].dpid == expected
    assert domain.dars[0].dpid_text == f"{expected:016x}"


def test_yaml_numbers_are_not_octal_or_base_60(tmp_path: Path) -> None:
    # Unquoted, YAML 1.1 would read the dpid as octal 8, the MAC and the
    # address as base-60 integers.
    text = SAMPLE.read_text(encoding="utf-8")
    text = text.replace("dpid: 0x0000000000000001", "dpid: 0000000000000010")
    text = text.replace('router_mac: "02:00:00:00:d0:01"', "router_mac: 12:00:00:00:00:01")
    text = text.replace('address: "2001:db8:ffff::ff"', "address: 2001:1:2:3:4:5:6:7", 1)
    domain = load_domain(write(tmp_path, text))
    assert domain.dars[0].dpid == 16
    assert domain.dars[0].router_mac == "12:00:00:00:00:01"
    assert domain.dars[0].core_next_hop.address == ipaddress.IPv6Address("2001:1:2:3:4:5:6:7")


def test_yaml_hex_integer_dpid(tmp_path: Path) -> None:
    text = SAMPLE.read_text(encoding="utf-8").replace("dpid: 0x0000000000000001", "dpid: 0x10")
    assert load_domain(write(tmp_path, text)).dars[0].dpid == 16


def test_dar_by_dpid() -> None:
    domain = parse_domain(domain_data(3), "test.yaml")
    assert domain.dar_by_dpid(2) is domain.dars[1]
    assert domain.dar_by_dpid(9) is None


# ---------------------------------------------------------------- sample files


def test_sample_domain_file_validates() -> None:
    domain = load_domain(SAMPLE)
    assert [dar.name for dar in domain.dars] == ["dar1", "dar2", "dar3"]
    assert [dar.dpid for dar in domain.dars] == [1, 2, 3]
    for number, dar in enumerate(domain.dars, start=1):
        assert dar.access_prefixes == (ipaddress.IPv6Network(f"2001:db8:{number}::/64"),)
        assert dar.anchor_address == ipaddress.IPv6Address(f"2001:db8:{number}::1")
        assert dar.access_ports == (f"d{number}-acc",)
        assert (dar.core_port, dar.gre_port) == (f"d{number}-core", f"d{number}-gre")
    assert domain.legacy_home_agent is None


def test_legacy_sample_file_validates() -> None:
    domain = load_domain(LEGACY_SAMPLE)
    assert domain.legacy_home_agent == "dar1"
    assert len(domain.dars) == 3


def test_sample_conf_sets_fama_and_ryu_options(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf.register_cli_opts([cfg.StrOpt("ofp-listen-host", default=""), cfg.IntOpt("wsapi-port")])
    conf(["--config-file", str(SAMPLE_CONF)])
    assert conf.fama.domain_file == "etc/fama-domain.yaml"
    assert conf.ofp_listen_host == "127.0.0.1"
    assert conf.wsapi_port == 8080
    monkeypatch.chdir(REPO)  # domain_file is relative to the working directory
    assert len(load_domain(Path(conf.fama.domain_file)).dars) == 3


# ---------------------------------------------------------------- home-agent view


def test_home_agent_config_packs_own_prefixes() -> None:
    domain = load_domain(SAMPLE)
    dar3 = domain.dars[2]
    config = dar3.home_agent_config(domain)
    anchor = ipaddress.IPv6Address("2001:db8:3::1").packed
    assert config.name == "dar3"
    assert config.anchor_address == anchor
    assert config.home_prefixes == (anchor[:8],)
    assert config.own_addresses == {anchor, dar3.link_local.packed}
    assert config.return_routability is True
    assert (config.max_lifetime_s, config.binding_limit) == (3600, 10000)
    assert (config.min_key_bits, config.max_key_bits) == (cga.MIN_KEY_BITS, cga.MAX_KEY_BITS)


def test_legacy_home_agent_serves_every_prefix_others_only_their_own() -> None:
    domain = load_domain(LEGACY_SAMPLE)
    prefixes = [ipaddress.IPv6Address(f"2001:db8:{n}::").packed[:8] for n in (1, 2, 3)]
    assert domain.dars[0].home_agent_config(domain).home_prefixes == tuple(prefixes)
    assert domain.dars[1].home_agent_config(domain).home_prefixes == (prefixes[1],)
    assert domain.dars[2].home_agent_config(domain).home_prefixes == (prefixes[2],)


def test_legacy_home_agent_lists_its_own_prefixes_first() -> None:
    data = domain_data(3)
    data["domain"] = {"legacy_home_agent": "dar2"}
    domain = parse_domain(data, "test.yaml")
    home_prefixes = domain.dars[1].home_agent_config(domain).home_prefixes
    second, first, third = (ipaddress.IPv6Address(f"2001:db8:{n}::").packed[:8] for n in (2, 1, 3))
    assert home_prefixes == (second, first, third)


def test_home_agent_config_of_a_foreign_dar_is_refused() -> None:
    domain = parse_domain(domain_data(), "test.yaml")
    other = parse_domain(domain_data(3), "other.yaml").dars[2]
    with pytest.raises(ValueError, match="not part of this domain"):
        other.home_agent_config(domain)


# ---------------------------------------------------------------- structure and keys


def test_unknown_keys_get_a_suggestion() -> None:
    data = domain_data()
    data["domian"] = {}
    data["dars"][0]["acess_ports"] = data["dars"][0].pop("access_ports")
    data["dars"][1]["core_next_hop"]["adress"] = "2001:db8:ffff::1"
    errors = errors_of(data)
    assert "domian: unknown key; did you mean 'domain'?" in errors
    assert "dars[0].acess_ports: unknown key; did you mean 'access_ports'?" in errors
    assert "dars[1].core_next_hop.adress: unknown key; did you mean 'address'?" in errors


def test_unknown_domain_key_without_close_match_lists_the_known_ones() -> None:
    data = domain_data()
    data["domain"] = {"zzz": 1}
    assert_error(data, "domain.zzz", "expected one of: tombstone_ttl_s, legacy_home_agent")


def test_odd_unknown_keys_are_quoted_in_the_location() -> None:
    data = domain_data()
    data["dars"][0]["core port"] = 3
    data["x\ny"] = 1
    errors = errors_of(data)
    assert "dars[0]['core port']: unknown key; did you mean 'core_port'?" in errors
    assert "['x\\ny']: unknown key; expected one of: domain, dars" in errors


def test_non_text_key_is_rejected() -> None:
    data = domain_data()
    data["dars"][0][7] = "x"
    assert_error(data, "dars[0]", "key 7 is not text")


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "dpid",
        "access_ports",
        "core_port",
        "gre_port",
        "router_mac",
        "access_prefixes",
        "anchor_address",
        "core_next_hop",
    ],
)
def test_required_dar_keys(key: str) -> None:
    assert_error(without_dar_key(key), f"dars[0].{key}", "required key is missing")


def test_required_key_with_null_value() -> None:
    assert_error(with_dar_value("anchor_address", None), "dars[0].anchor_address", "no value")


def test_required_dars_and_next_hop_address() -> None:
    assert_error({"domain": {}}, "dars", "required key is missing")
    data = with_dar_value("core_next_hop", {"mac": "02:00:00:00:ff:ff"})
    assert_error(data, "dars[0].core_next_hop.address", "required key is missing")


@pytest.mark.parametrize("document", [None, [], "dars", 5])
def test_document_must_be_a_mapping(document: object) -> None:
    assert_error(document, "(top level)", "expected a mapping")


def test_dars_must_be_a_non_empty_list_of_mappings() -> None:
    assert_error({"dars": {}}, "dars", "expected a list of DARs, got a mapping")
    assert_error({"dars": []}, "dars", "at least one DAR is required")
    data = domain_data()
    data["dars"].append("dar3")
    assert_error(data, "dars[2]", "expected a mapping, got the text 'dar3'")
    assert_error({"dars": [dar_entry(1)], "domain": [1]}, "domain", "expected a mapping")


# ---------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("name", 5, "expected a name, got the number 5"),
        ("dpid", [1], "expected an integer or hex text, got a list of 1 items"),
        ("dpid", True, "expected an integer or hex text, got the boolean true"),
        ("access_ports", 1, "expected a list of ports, got the number 1"),
        ("access_ports", [], "got an empty list"),
        ("core_port", True, "expected a port number or port name, got the boolean true"),
        ("gre_port", 1.5, "expected a port number or port name"),
        ("router_mac", 5, "expected a MAC address"),
        ("access_prefixes", "2001:db8:1::/64", "expected a list of /64 prefixes"),
        ("anchor_address", 1, "expected an IPv6 address as text, got the number 1"),
        ("link_local", b"\xfe\x80", "got a value of type bytes"),
        ("core_next_hop", "2001:db8:ffff::ff", "expected a mapping, got the text"),
        ("return_routability", "yes", "expected true or false, got the text 'yes'"),
        ("binding_limit", "10", "expected an integer, got the text '10'"),
        ("max_lifetime_s", 60.0, "expected an integer, got the number 60.0"),
        ("min_key_bits", None, ""),  # null: default, not an error; checked below
        ("ra_interval_s", [200], "expected [MinRtrAdvInterval, MaxRtrAdvInterval]"),
        ("ra_interval_s", ["3", 4], "two numbers of seconds"),
    ],
)
def test_wrong_types_are_reported(key: str, value: object, fragment: str) -> None:
    data = with_dar_value(key, value)
    if value is None:
        assert parse_domain(data, "test.yaml").dars[0].min_key_bits == cga.MIN_KEY_BITS
        return
    assert_error(data, f"dars[0].{key}", fragment)


@pytest.mark.parametrize("dpid", ["xyz", "0x", "1_0", "00000000000000001", " 1"])
def test_dpid_text_must_be_hex(dpid: str) -> None:
    assert_error(with_dar_value("dpid", dpid), "dars[0].dpid", "is not a datapath id")


@pytest.mark.parametrize("dpid", [0, -1, 1 << 64, "0x0", 1 << 5000])
def test_dpid_range(dpid: object) -> None:
    assert_error(with_dar_value("dpid", dpid), "dars[0].dpid", "is outside 1..2^64-1")


@pytest.mark.parametrize("name", ["", "dar 1", "-dar", "x" * 65, "dår"])
def test_name_characters(name: str) -> None:
    assert_error(with_dar_value("name", name), "dars[0].name", "is not a name")


# ---------------------------------------------------------------- uniqueness


def test_names_must_be_unique() -> None:
    data = with_dar_value("name", "dar1", index=1)
    assert_error(data, "dars[1].name", "'dar1' is already used by dars[0]")


def test_dpids_must_be_unique() -> None:
    data = with_dar_value("dpid", "0x1", index=1)
    assert_error(data, "dars[1].dpid", "0000000000000001 is already used by dars[0]")


def test_prefixes_must_not_overlap_between_dars() -> None:
    data = domain_data(3)
    data["dars"][2]["access_prefixes"] = ["2001:db8:3::/64", "2001:db8:1::/64"]
    assert_error(
        data, "dars[2].access_prefixes[1]", "2001:db8:1::/64 is already an access prefix of dars[0]"
    )


def test_anchor_addresses_must_be_unique() -> None:
    data = domain_data()
    data["dars"][1]["access_prefixes"] = ["2001:db8:1::/64"]
    data["dars"][1]["anchor_address"] = "2001:db8:1::1"
    assert_error(data, "dars[1].anchor_address", "2001:db8:1::1 is already used by dars[0]")


def test_router_macs_must_be_unique() -> None:
    data = with_dar_value("router_mac", "02:00:00:00:D0:01", index=1)
    assert_error(data, "dars[1].router_mac", "02:00:00:00:d0:01 is already used by dars[0]")


# ---------------------------------------------------------------- addresses and prefixes


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("2001:db8:1::/48", "is a /48; access prefixes must be /64"),
        ("2001:db8:1::", "is a /128; access prefixes must be /64"),
        ("2001:db8:1::1/64", "has host bits set"),
        ("nonsense/64", "not an IPv6 prefix"),
        ("fe80::/64", "not a global unicast prefix: link-local"),
        ("ff05::/64", "not a global unicast prefix: multicast"),
        ("fec0::/64", "not a global unicast prefix: site-local"),
        ("::/64", "not a global unicast prefix: ::/64"),
        ("2001:db8:1::%eth0/64", "zone index"),
    ],
)
def test_access_prefix_rules(prefix: str, fragment: str) -> None:
    data = with_dar_value("access_prefixes", [prefix])
    assert_error(data, "dars[0].access_prefixes[0]", fragment)


def test_prefix_listed_twice_in_one_dar() -> None:
    data = with_dar_value("access_prefixes", ["2001:db8:1::/64", "2001:db8:1::/64"])
    assert_error(data, "dars[0].access_prefixes[1]", "is listed twice")


def test_anchor_must_be_inside_the_first_prefix() -> None:
    data = domain_data()
    data["dars"][1]["access_prefixes"] = ["2001:db8:1:1::/64", "2001:db8:2::/64"]
    data["dars"][1]["anchor_address"] = "2001:db8:2::5"
    assert (
        "dars[1].anchor_address: 2001:db8:2::5 is not inside the first access prefix "
        "2001:db8:1:1::/64 (P1)"
    ) in errors_of(data)


def test_anchor_must_not_be_the_subnet_router_anycast_address() -> None:
    data = with_dar_value("anchor_address", "2001:db8:1::")
    assert_error(data, "dars[0].anchor_address", "Subnet-Router anycast")


@pytest.mark.parametrize(
    ("address", "fragment"),
    [("2001:db8:1::g", "not an IPv6 address"), ("2001:db8:1::1%eth0", "zone index")],
)
def test_anchor_address_syntax(address: str, fragment: str) -> None:
    assert_error(with_dar_value("anchor_address", address), "dars[0].anchor_address", fragment)


def test_link_local_must_be_in_fe80_10() -> None:
    data = with_dar_value("link_local", "2001:db8:1::2")
    assert_error(data, "dars[0].link_local", "is not a link-local address (fe80::/10)")


@pytest.mark.parametrize("address", ["ff02::2", "::", "::1"])
def test_core_next_hop_must_be_unicast(address: str) -> None:
    data = with_dar_value("core_next_hop", {"address": address, "mac": "02:00:00:00:ff:ff"})
    assert_error(data, "dars[0].core_next_hop.address", "is not a unicast address")


def test_core_next_hop_mac_is_required() -> None:
    data = with_dar_value("core_next_hop", {"address": "2001:db8:ffff::ff"})
    assert_error(data, "dars[0].core_next_hop.mac", "required key is missing")


def test_core_next_hop_must_not_be_the_anchor() -> None:
    data = with_dar_value("core_next_hop", {"address": "2001:db8:1::1", "mac": "02:00:00:00:ff:ff"})
    assert_error(data, "dars[0].core_next_hop.address", "is the anchor address itself")


def test_core_next_hop_may_be_numbered_in_the_anchor_prefix() -> None:
    """OVS 3.1 takes the tunnel's outer source from the route to the next hop."""
    data = with_dar_value(
        "core_next_hop", {"address": "2001:db8:1::fffe", "mac": "02:00:00:00:ff:ff"}
    )
    parse_domain(data, "test")


@pytest.mark.parametrize(
    ("mac", "fragment"),
    [
        ("01:00:5e:00:00:01", "is a multicast MAC address"),
        ("33:33:00:00:00:01", "is a multicast MAC address"),
        ("00:00:00:00:00:00", "not a usable MAC address"),
        ("02:00:00:00:d0", "is not a MAC address"),
        ("02-00-00-00-d0-01", "is not a MAC address"),
    ],
)
def test_router_mac_rules(mac: str, fragment: str) -> None:
    assert_error(with_dar_value("router_mac", mac), "dars[0].router_mac", fragment)


def test_next_hop_mac_must_be_unicast() -> None:
    data = with_dar_value("core_next_hop", {"address": "fe80::1", "mac": "ff:ff:ff:ff:ff:ff"})
    assert_error(data, "dars[0].core_next_hop.mac", "is a multicast MAC address")


# ---------------------------------------------------------------- ports


def test_port_cannot_be_access_and_core() -> None:
    assert_error(
        with_dar_value("core_port", 1), "dars[0].core_port", "port 1 is also an access port"
    )


def test_port_cannot_be_access_and_gre() -> None:
    data = with_dar_value("access_ports", [1, "gre1"])
    assert_error(data, "dars[0].gre_port", "port 'gre1' is also an access port")


def test_port_cannot_be_core_and_gre() -> None:
    assert_error(with_dar_value("gre_port", 2), "dars[0].gre_port", "port 2 is also the core port")


def test_access_port_listed_twice() -> None:
    assert_error(
        with_dar_value("access_ports", [1, 3, 1]), "dars[0].access_ports[2]", "listed twice"
    )


@pytest.mark.parametrize("port", [0, -1, 0xFFFFFF00, 0xFFFFFFFF, 1 << 40])
def test_port_number_range(port: int) -> None:
    assert_error(with_dar_value("core_port", port), "dars[0].core_port", "is outside 1..0xfffffeff")


def test_port_number_upper_bound_is_accepted() -> None:
    domain = parse_domain(with_dar_value("core_port", 0xFFFFFEFF), "test.yaml")
    assert domain.dars[0].core_port == 0xFFFFFEFF


@pytest.mark.parametrize("name", ["", "eth 0", "sixteen-chars-xx", "d1-é"])
def test_port_name_rules(name: str) -> None:
    data = with_dar_value("access_ports", [name])
    assert_error(data, "dars[0].access_ports[0]", "printable ASCII characters without spaces")


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("max_lifetime_s", 3, "3 is below the minimum 4 s (P12)"),
        ("max_lifetime_s", 86401, "86401 is outside 4..86400 s (P12)"),
        ("binding_limit", 0, "0 is below the minimum 1"),
        ("min_key_bits", 1023, "1023 is below the minimum 1024 (P8)"),
        ("min_key_bits", 2041, "2041 is outside 1024..2040 (P8)"),
    ],
)
def test_numeric_limits(key: str, value: int, fragment: str) -> None:
    assert_error(with_dar_value(key, value), f"dars[0].{key}", fragment)


@pytest.mark.parametrize(
    ("interval", "fragment"),
    [
        ([3, 3.9], "MaxRtrAdvInterval 3.9 s is outside 4..1800 s (RFC 4861 §6.2.1)"),
        ([200, 1801], "MaxRtrAdvInterval 1801 s is outside 4..1800 s"),
        ([2, 600], "MinRtrAdvInterval 2 s is outside 3..450 s"),
        ([451, 600], "MinRtrAdvInterval 451 s is outside 3..450 s"),
        ([200, float("nan")], "MaxRtrAdvInterval nan s"),
        ([200, 10**400], "MaxRtrAdvInterval 0x"),
        ([200, True], "two numbers of seconds"),
    ],
)
def test_ra_interval_bounds(interval: list[object], fragment: str) -> None:
    assert_error(with_dar_value("ra_interval_s", interval), "dars[0].ra_interval_s", fragment)


@pytest.mark.parametrize(
    ("ttl", "fragment"),
    [(0, "0 s is outside 1..31536000 s"), (-5.0, "is outside"), (True, "expected a number")],
)
def test_tombstone_ttl(ttl: object, fragment: str) -> None:
    data = domain_data()
    data["domain"] = {"tombstone_ttl_s": ttl}
    assert_error(data, "domain.tombstone_ttl_s", fragment)


def test_legacy_home_agent_must_name_a_dar() -> None:
    data = domain_data()
    data["domain"] = {"legacy_home_agent": "dar3"}
    assert_error(data, "domain.legacy_home_agent", "no DAR is named 'dar3'")
    data["domain"] = {"legacy_home_agent": "dar01"}
    assert_error(data, "domain.legacy_home_agent", "did you mean 'dar1'?")
    data["domain"] = {"legacy_home_agent": 1}
    assert_error(data, "domain.legacy_home_agent", "expected a name")


def test_legacy_home_agent_not_judged_when_a_dar_name_is_invalid() -> None:
    data = with_dar_value("name", 1)
    data["domain"] = {"legacy_home_agent": "dar1"}
    assert not [e for e in errors_of(data) if e.startswith("domain.")]


# ---------------------------------------------------------------- several errors


def test_every_error_is_reported_together() -> None:
    data = domain_data(3)
    data["dars"][0]["router_mac"] = "01:00:00:00:00:01"
    data["dars"][0]["max_lifetime_s"] = 0
    data["dars"][1]["name"] = "dar1"
    data["dars"][2]["anchor_address"] = "2001:db8:9::1"
    data["dars"][2]["colour"] = "blue"
    errors = errors_of(data)
    assert [error.split(":")[0] for error in errors] == [
        "dars[0].router_mac",
        "dars[0].max_lifetime_s",
        "dars[2].colour",
        "dars[2].anchor_address",
        "dars[1].name",
    ]


def test_config_error_text_names_the_source() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_domain(with_dar_value("binding_limit", 0), "lab.yaml")
    assert str(raised.value) == "lab.yaml: dars[0].binding_limit: 0 is below the minimum 1"


# ---------------------------------------------------------------- reading files


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "dars:\n  - name: dar1\n    dpid: [1\n")
    with pytest.raises(ConfigError) as raised:
        load_domain(path)
    assert raised.value.errors[0].startswith("line 4, column 1: ")
    assert raised.value.source == str(path)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "dars:\n  - name: dar1\n    name: dar2\n")
    with pytest.raises(ConfigError) as raised:
        load_domain(path)
    assert raised.value.errors == ["line 3, column 5: found duplicate key 'name'"]


def test_unsafe_yaml_tag_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "dars: !!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match="line 1, column 7: could not determine a constructor"):
        load_domain(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_domain(write(tmp_path, text))
    assert raised.value.errors == ["(top level): the file is empty (no YAML document)"]


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableConfigError) as raised:
        load_domain(tmp_path / "absent.yaml")
    assert raised.value.errors == ["cannot read the file: No such file or directory"]


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableConfigError):
        load_domain(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"dars: [caf\xe9]\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_domain(path)


def test_control_character_has_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_domain(write(tmp_path, 'dars:\n  - name: "d\x00"\n'))
    [error] = raised.value.errors
    # libyaml says "control characters", PyYAML's Python reader "special characters".
    assert error.startswith("line 2, column 13: character #x0000: ")
    assert error.endswith(" characters are not allowed")


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_domain(write(tmp_path, "dars: " + "[" * 20000 + "]" * 20000 + "\n"))


def test_huge_yaml_integer_stays_text(tmp_path: Path) -> None:
    text = SAMPLE.read_text(encoding="utf-8").replace(
        "binding_limit: 10000", "binding_limit: " + "9" * 5000, 1
    )
    with pytest.raises(ConfigError) as raised:
        load_domain(write(tmp_path, text))
    assert raised.value.errors == [
        f"dars[0].binding_limit: expected an integer, got the text '{'9' * 55}..."
    ]


# ---------------------------------------------------------------- robustness

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_yamlish = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=4)
    ),
    max_leaves=25,
)
_keys = st.sampled_from(sorted(dar_entry(1)) + ["link_local", "ra_interval_s", "min_key_bits"])


def assert_well_formed(error: ConfigError) -> None:
    assert error.errors
    assert all(": " in line and "\n" not in line for line in error.errors)


@given(_yamlish)
def test_random_structures_raise_only_config_error(data: object) -> None:
    try:
        parse_domain(data, "random")
    except ConfigError as error:
        assert_well_formed(error)


@given(st.lists(st.tuples(st.integers(0, 2), _keys, _yamlish), min_size=1, max_size=4))
def test_mutated_domains_raise_only_config_error(
    mutations: list[tuple[int, str, object]],
) -> None:
    data = domain_data(3)
    for index, key, value in mutations:
        data["dars"][index][key] = value
    try:
        parse_domain(copy.deepcopy(data), "mutated")
    except ConfigError as error:
        assert_well_formed(error)


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_random_files_raise_only_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("random") / "domain.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_domain(path)
    except ConfigError as error:
        assert_well_formed(error)


# ---------------------------------------------------------------- oslo.config


def test_fama_options_defaults_and_required_domain_file() -> None:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    with pytest.raises(cfg.RequiredOptError):
        conf([])
    conf.set_override("domain_file", "x.yaml", group="fama")
    conf([])
    assert conf.fama.domain_file == "x.yaml"
    assert conf.fama.store_path == DEFAULT_STORE_PATH == "/var/lib/fama/bindings.sqlite"
    assert conf.fama.metrics_port == 0
    assert conf.fama.metrics_host == "127.0.0.1"


def test_metrics_port_is_a_port(tmp_path: Path) -> None:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf_file = write(tmp_path, "[fama]\ndomain_file = d.yaml\nmetrics_port = 70000\n", "f.conf")
    conf(["--config-file", str(conf_file)])
    with pytest.raises(ValueError):
        conf.fama.metrics_port  # noqa: B018  (oslo.config validates on access)


def ryu_like_conf() -> cfg.ConfigOpts:
    """A fresh ConfigOpts with Ryu's listen options, registered as Ryu does."""
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(
        [cfg.StrOpt("ofp-listen-host", default=""), cfg.StrOpt("wsapi-host", default="")]
    )
    return conf


def test_listen_defaults_become_loopback() -> None:
    conf = ryu_like_conf()
    apply_listen_defaults(conf)
    conf([])
    assert (conf.ofp_listen_host, conf.wsapi_host) == ("127.0.0.1", "127.0.0.1")


def test_listen_defaults_yield_to_explicit_values() -> None:
    conf = ryu_like_conf()
    apply_listen_defaults(conf)
    conf(["--ofp-listen-host", "192.0.2.1"])
    assert (conf.ofp_listen_host, conf.wsapi_host) == ("192.0.2.1", "127.0.0.1")


def test_listen_defaults_skip_options_not_registered() -> None:
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("ofp_listen_host", default=""))
    apply_listen_defaults(conf)  # wsapi_host is absent: no error
    conf([])
    assert conf.ofp_listen_host == "127.0.0.1"


# ---------------------------------------------------------------- fama check-config


def test_check_config_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(LEGACY_SAMPLE)]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{LEGACY_SAMPLE}: valid, 3 DAR(s)"
    assert lines[1] == (
        "dar1: dpid 0000000000000001, prefixes 2001:db8:1::/64, anchor 2001:db8:1::1, "
        "mode basic, legacy home agent for every prefix of the domain"
    )
    assert len(lines) == 4


def test_check_config_shows_return_routability(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(SAMPLE)]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines()[3].endswith("mode return-routability")


def test_check_config_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    text = text.replace('anchor_address: "2001:db8:2::1"', 'anchor_address: "2001:db8:9::1"')
    text = text.replace("max_lifetime_s: 3600", "max_lifetime_s: 1", 1)
    path = write(tmp_path, text)
    assert cli.main(["check-config", str(path)]) == cli.EXIT_NEGATIVE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}: dars[0].max_lifetime_s: 1 is below the minimum 4 s (P12)",
        f"{path}: dars[1].anchor_address: 2001:db8:9::1 is not inside the first access "
        "prefix 2001:db8:2::/64 (P1)",
    ]


def test_check_config_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert cli.main(["check-config", str(path)]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        f"fama: {path}: cannot read the file: No such file or directory\n"
    )


def test_domain_config_is_frozen() -> None:
    domain = parse_domain(domain_data(), "test.yaml")
    assert isinstance(domain, DomainConfig)
    with pytest.raises(AttributeError):
        domain.dars[0].name = "other"  # type: ignore[misc]
