"""``fama bindings [--url URL] [--hoa ADDR] [--coa ADDR] [--dpid DPID]`` (fama_ryu/cli.py).

The command reads ``GET /fama/v1/bindings`` from the controller's REST API
and prints it as a table.  Here the API is a tiny stdlib ``http.server`` on
127.0.0.1 (an ephemeral port, served from a thread) that answers canned
bodies and records every request line, so the tests see exactly what the
command asks for and how it renders each answer.  The command runs in
process through ``cli.main([...])`` with capsys.

Exit codes (cli.py): 0 success, 2 unusable input (an HTTP error, no
connection, a body that is not the bindings list).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fama_ryu import cli

EXIT_OK, EXIT_USAGE = 0, 2
HEADER = "HOA  COA  DAR  SEQ  LIFETIME_S  REMAINING_S"
HEADERS = HEADER.split()
PATH = "/fama/v1/bindings"

ROWS: list[dict[str, Any]] = [
    {
        "hoa": "2001:db8:a::1234",
        "coa": "2001:db8:b::100",
        "dar": "dara",
        "dpid": "000000000000000a",
        "sequence": 7,
        "lifetime_s": 400,
        "registered_at": 1700000000.25,
        "expires_at": 1700000400.25,
        "remaining_s": 123.456,
    },
    {
        "hoa": "2001:db8:a2:0:1111:2222:3333:4444",
        "coa": "2001:db8:c::1",
        "dar": "dar-with-a-long-name",
        "dpid": "000000000000000b",
        "sequence": 65535,
        "lifetime_s": 86400,
        "registered_at": 1700000000.0,
        "expires_at": 1700086400.0,
        "remaining_s": 59.5,
    },
    {
        "hoa": "2001:db8:a::5",
        "coa": "2001:db8:d::77",
        "dar": "x",
        "dpid": "0000000000000001",
        "sequence": 0,
        "lifetime_s": 4,
        "registered_at": 1700000000.0,
        "expires_at": 1700000004.0,
        "remaining_s": 0.4,
    },
]


@dataclass
class CannedApi:
    """What the fake REST API answers, and the request targets it received."""

    url: str
    status: int = 200
    body: bytes = b"[]"
    content_type: str = "application/json"
    delay: threading.Event | None = None  # when set: wait on it before answering
    targets: list[str] = field(default_factory=list)

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type

    @property
    def query(self) -> dict[str, list[str]]:
        [target] = self.targets
        return parse_qs(urlsplit(target).query, keep_blank_values=True)


@pytest.fixture
def api() -> Iterator[CannedApi]:
    canned: CannedApi | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
            assert canned is not None
            canned.targets.append(self.path)
            if canned.delay is not None:
                canned.delay.wait(5.0)
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the server's access log out of the captured stderr

    class QuietServer(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (the timeout test) is no test failure

    server = QuietServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    canned = CannedApi(url=f"http://{host}:{port}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="canned-api", daemon=True
    )
    thread.start()
    try:
        yield canned
    finally:
        if canned.delay is not None:
            canned.delay.set()
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["bindings", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A port nothing listens on: bound once to learn it, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---------------------------------------------------------------- the table


def test_bindings_are_printed_as_an_aligned_table(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(200, ROWS)
    code, out, err = run(capsys, "--url", api.url)
    assert (code, err) == (EXIT_OK, "")
    assert api.targets == [PATH]  # no filter: no query string at all
    assert out == (
        "HOA                                COA              DAR                   SEQ    "
        "LIFETIME_S  REMAINING_S\n"
        "2001:db8:a::1234                   2001:db8:b::100  dara                  7      "
        "400         123\n"
        "2001:db8:a2:0:1111:2222:3333:4444  2001:db8:c::1    dar-with-a-long-name  65535  "
        "86400       60\n"
        "2001:db8:a::5                      2001:db8:d::77   x                     0      "
        "4           0\n"
    )


def test_every_column_starts_where_its_header_does(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(200, ROWS)
    _, out, _ = run(capsys, "--url", api.url)
    header, *lines = out.splitlines()
    assert header.split() == HEADERS
    starts = [header.index(name) for name in HEADERS]
    assert len(lines) == len(ROWS)
    for line, row in zip(lines, ROWS, strict=True):
        assert line == line.rstrip()  # no trailing blanks
        cells = line.split()
        assert cells[:5] == [
            row["hoa"],
            row["coa"],
            row["dar"],
            str(row["sequence"]),
            str(row["lifetime_s"]),
        ]
        assert [line.index(cell, start) for cell, start in zip(cells, starts, strict=True)] == (
            starts
        )
        # Columns are separated by at least two blanks.
        for start in starts[1:]:
            assert line[start - 2 : start] == "  "


@pytest.mark.parametrize(
    ("remaining", "shown"),
    [(0, "0"), (0.4, "0"), (0.6, "1"), (123.456, "123"), (299.999, "300"), (3600.0, "3600")],
)
def test_remaining_seconds_are_rounded_to_whole_seconds(
    api: CannedApi, capsys: pytest.CaptureFixture[str], remaining: float, shown: str
) -> None:
    api.answer(200, [{**ROWS[0], "remaining_s": remaining}])
    code, out, _ = run(capsys, "--url", api.url)
    assert code == EXIT_OK
    assert out.splitlines()[1].split()[-1] == shown


def test_an_empty_list_prints_only_the_header(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(200, [])
    code, out, err = run(capsys, "--url", api.url)
    assert (code, out, err) == (EXIT_OK, HEADER + "\n", "")


# ---------------------------------------------------------------- the request


def test_filters_are_forwarded_as_urlencoded_query_parameters(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(200, ROWS[:1])
    code, out, _ = run(
        capsys,
        "--url",
        api.url,
        "--hoa",
        "2001:db8:a::1234",
        "--coa",
        "2001:db8:b::100",
        "--dpid",
        "000000000000000a",
    )
    assert code == EXIT_OK and len(out.splitlines()) == 2
    [target] = api.targets
    path, _, query = target.partition("?")
    assert path == PATH
    assert query == "hoa=2001%3Adb8%3Aa%3A%3A1234&coa=2001%3Adb8%3Ab%3A%3A100&dpid=000000000000000a"
    assert api.query == {
        "hoa": ["2001:db8:a::1234"],
        "coa": ["2001:db8:b::100"],
        "dpid": ["000000000000000a"],
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--hoa", "2001:db8:a::1"], {"hoa": ["2001:db8:a::1"]}),
        (["--coa", "2001:db8:b::100"], {"coa": ["2001:db8:b::100"]}),
        (["--dpid", "a"], {"dpid": ["a"]}),
        # Passed through verbatim: the server, not the CLI, judges a value.
        (["--hoa", "not an address&dpid=1"], {"hoa": ["not an address&dpid=1"]}),
    ],
)
def test_only_the_given_filters_are_sent(
    api: CannedApi,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    expected: dict[str, list[str]],
) -> None:
    code, _, _ = run(capsys, "--url", api.url, *options)
    assert code == EXIT_OK
    assert urlsplit(api.targets[0]).path == PATH
    assert api.query == expected


def test_a_trailing_slash_in_the_url_is_ignored(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "--url", api.url + "/")
    assert code == EXIT_OK
    assert api.targets == [PATH]


# ---------------------------------------------------------------- failures


def test_an_http_error_exits_2_with_the_body_on_stderr(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = {"error": "hoa is not an IPv6 address", "parameter": "hoa"}
    api.answer(400, problem)
    code, out, err = run(capsys, "--url", api.url, "--hoa", "nope")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("fama: ")
    assert "HTTP 400" in err
    assert json.dumps(problem) in err  # the API's own explanation, verbatim
    assert err.count("\n") == 1


def test_a_refused_connection_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code, out, err = run(capsys, "--url", f"http://127.0.0.1:{port}")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith(f"fama: cannot read http://127.0.0.1:{port}{PATH}")
    assert "refused" in err.lower()
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "body",
    [b"not json{", b"", b"<html>oops</html>", b'[{"hoa": "2001:db8:a::1",'],
)
def test_a_body_that_is_not_json_exits_2(
    api: CannedApi, capsys: pytest.CaptureFixture[str], body: bytes
) -> None:
    api.answer(200, body)
    code, out, err = run(capsys, "--url", api.url)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith(f"fama: cannot read {api.url}{PATH}")


def test_a_server_that_does_not_answer_in_time_exits_2(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.delay = threading.Event()
    code, out, err = run(capsys, "--url", api.url, "--timeout", "0.3")
    assert (code, out) == (EXIT_USAGE, "")
    assert "timed out" in err


@pytest.mark.parametrize(
    "body",
    [
        {"error": "not a list"},
        [{"hoa": "2001:db8:a::1"}],
        ["2001:db8:a::1"],
    ],
    ids=["object", "row-missing-keys", "row-not-an-object"],
)
def test_json_that_is_not_a_bindings_list_exits_2(
    api: CannedApi, capsys: pytest.CaptureFixture[str], body: Any
) -> None:
    api.answer(200, body)
    code, out, err = run(capsys, "--url", api.url)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("fama: ")
