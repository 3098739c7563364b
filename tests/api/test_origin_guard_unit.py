"""The Host/Origin guard (core/api/origin.py) called in-process, one ASGI request at a
time, against the threat model in its docstring and docs/api.md ("Browsers and
loopback"): loopback names and --allowed-hosts are answered, every other Host gets 400
(DNS rebinding); a state change from a foreign Origin or with ``Sec-Fetch-Site:
cross-site`` gets 403 (CSRF); only --cors-allow-origins get CORS headers.

test_origin_guard.py checks the same rules through a real server with the WebUI; these
run in milliseconds, so the mutation run (docs/mutation.md) can use them."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from core.api.origin import OriginGuardMiddleware, OriginPolicy, host_name, normalise_origin, origin_host

LISTED = "http://tools.example:3000"
EVIL = "http://evil.example"


class InnerApp:
    """A real ASGI app standing for the API and the WebUI: it answers 200 and, like
    Gradio, adds its own CORS headers echoing any Origin."""

    def __init__(self, start_headers: bool = True) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.start_headers = start_headers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()  # the connect event
            await send({"type": "websocket.accept"})
            return
        if scope["type"] != "http":
            return
        request = await receive()
        echoed = dict(scope["headers"]).get(b"origin", b"*")
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if self.start_headers:  # optional in ASGI
            start["headers"] = [
                (b"content-type", b"text/plain"),
                (b"Access-Control-Allow-Origin", echoed),
                (b"access-control-allow-credentials", b"true"),
            ]
        await send(start)
        await send({"type": "http.response.body", "body": b"inner" + request["body"]})


def call(
    method: str = "GET",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    kind: str = "http",
    policy: OriginPolicy | None = None,
    inner: InnerApp | None = None,
) -> tuple[list[dict[str, Any]], InnerApp]:
    """One request through the guard; the messages it sent back and the inner app."""
    inner = inner or InnerApp()
    guard = OriginGuardMiddleware(inner, policy or OriginPolicy.build(["mybox.lan"], [LISTED]))
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [("Host", "localhost")])
    scope: dict[str, Any] = {
        "type": kind,
        "path": "/sdapi/v1/txt2img",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in pairs],
    }
    if kind == "http":
        scope["method"] = method
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if kind == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent, inner


def status(sent: list[dict[str, Any]]) -> int:
    return sent[0]["status"]


def response_headers(sent: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return list(sent[0]["headers"])


def detail(sent: list[dict[str, Any]]) -> str:
    return json.loads(sent[1]["body"])["detail"]


# --- Host header parsing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  LocalHost:7860 ", "localhost"),
        ("localhost.", "localhost"),  # the fully qualified form names the same host
        ("localhost.:80", "localhost"),
        ("my_box-1.lan", "my_box-1.lan"),
        ("[::1]", "::1"),
        ("[::1]:7860", "::1"),
        ("[0:0:0:0:0:0:0:1]:80", "::1"),
        ("[::1]7860", None),  # a port must follow a colon
        ("[::1]:", None),
        ("[::1]:x", None),
        ("[::1]:x80", None),
        ("[evil.example]", None),  # brackets hold an IPv6 address, nothing else
        ("[::1", None),
        ("]", None),
        ("localhost:", None),
        ("localhost:80x", None),
        ("local host", None),
        ("evil.example/", None),
        ("evil.example@localhost", None),
        (".", None),
        (":80", None),
    ],
)
def test_host_names_as_a_browser_sends_them(value, expected):
    assert host_name(value) == expected


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://localhost:7860", "localhost"),
        (" https://MyBox.LAN ", "mybox.lan"),
        ("http://[::1]:7860", "::1"),
        ("http://[0:0::1]", "::1"),
        ("http://127.0.0.1.evil.example", "127.0.0.1.evil.example"),
        ("null", None),  # sandboxed frames, file:// pages
        ("file:///etc/passwd", None),
        ("ftp://localhost", None),  # not a web origin
        ("ws://localhost", None),
        ("http://", None),
        ("http://[::1", None),  # urlsplit raises
        ("http://local host", None),
    ],
)
def test_origin_host(origin, expected):
    assert origin_host(origin) == expected


def test_origins_compare_without_case_spaces_or_a_trailing_slash():
    assert normalise_origin("  HTTP://Tools.Example:3000/ ") == "http://tools.example:3000"
    assert normalise_origin("http://MyBoX/") == "http://mybox"


# --- the policy -----------------------------------------------------------------------


def test_loopback_is_always_answered_and_nothing_else_by_default():
    policy = OriginPolicy.build()
    assert policy.allowed_hosts == {"localhost", "127.0.0.1", "::1"}
    assert not policy.any_host and policy.cors_origins == frozenset()
    assert not policy.host_allowed("evil.example") and not policy.host_allowed(None)


def test_allowed_hosts_are_normalised_and_blank_entries_skipped():
    policy = OriginPolicy.build([" MyBox.LAN:7860 ", "", "  ", "[fe80::1]"])
    assert policy.allowed_hosts == {"localhost", "127.0.0.1", "::1", "mybox.lan", "fe80::1"}
    assert not policy.any_host


@pytest.mark.parametrize("entry", ["bad host", "a/b", "[nope]", "x:y"])
def test_a_malformed_allowed_host_is_an_error_naming_the_flag_and_the_entry(entry):
    with pytest.raises(ValueError) as error:
        OriginPolicy.build(["ok.lan", entry])
    assert str(error.value) == f"--allowed-hosts: {entry.strip()!r} is not a host name"


def test_star_turns_the_host_check_off_but_a_missing_host_is_still_refused():
    policy = OriginPolicy.build([" * "])
    assert policy.any_host and policy.host_allowed("anything.example")
    assert not policy.host_allowed(None)  # a malformed Host header is never answered


@pytest.mark.parametrize(
    ("bind", "answered"),
    [
        ("192.168.1.5", "192.168.1.5"),
        (" 192.168.1.5 ", "192.168.1.5"),
        ("MyBox.lan", "mybox.lan"),
        ("fe80::1", "fe80::1"),  # an IPv6 bind address, named as [fe80::1] in Host
    ],
)
def test_the_bound_address_is_answered(bind, answered):
    assert answered in OriginPolicy.build([], [], bind).allowed_hosts


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "", "  "])
def test_wildcard_binds_add_no_name(bind):
    assert OriginPolicy.build([], [], bind).allowed_hosts == {"localhost", "127.0.0.1", "::1"}


def test_policy_from_settings_takes_hosts_origins_bind_and_extra_origins():
    settings = SimpleNamespace(
        allowed_hosts=["studio.lan"], cors_allow_origins=["http://A.example/", " "], host="10.0.0.2"
    )
    policy = OriginPolicy.from_settings(settings, ["http://b.example"])
    assert policy.allowed_hosts == {"localhost", "127.0.0.1", "::1", "studio.lan", "10.0.0.2"}
    assert policy.cors_origins == {"http://a.example", "http://b.example"}
    bare = OriginPolicy.from_settings(SimpleNamespace())
    assert bare == OriginPolicy.build()


def test_cors_is_only_for_the_listed_origins():
    policy = OriginPolicy.build([], [LISTED])
    assert policy.cors_allowed("HTTP://tools.example:3000/")
    assert not policy.cors_allowed("http://tools.example")  # another port is another origin
    assert not policy.cors_allowed(None)


def test_same_site_origins():
    policy = OriginPolicy.build(["mybox.lan"], [LISTED])
    assert policy.same_site_origin("http://localhost:9999", "127.0.0.1")  # a loopback page
    assert policy.same_site_origin("http://mybox.lan", "localhost")  # an allowed name
    assert policy.same_site_origin("http://other.lan", "other.lan")  # the request's own Host
    assert policy.same_site_origin(LISTED, "localhost")  # listed by the user
    assert not policy.same_site_origin(EVIL, "localhost")
    assert not policy.same_site_origin("null", None)
    assert not policy.same_site_origin("null", "localhost")


# --- the middleware: Host (DNS rebinding) ---------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "localhost:x", "[::2]", ""])
def test_a_foreign_host_gets_400_and_the_app_never_runs(host):
    sent, inner = call("GET", {"Host": host})
    assert status(sent) == 400 and inner.scopes == []
    assert detail(sent) == (
        f"Host {host!r} is not allowed. Easel answers requests for localhost, 127.0.0.1 and [::1], "
        "and for the names given with --allowed-hosts (EASEL_ALLOWED_HOSTS): a foreign Host is how "
        "DNS rebinding reaches a local server."
    )
    assert not [k for k, _ in response_headers(sent) if k.startswith(b"access-control-")]


def test_no_host_header_at_all_is_refused():
    sent, inner = call("GET", [("Accept", "*/*")])
    assert status(sent) == 400 and inner.scopes == []
    assert detail(sent).startswith("Host '' is not allowed.")


def test_the_first_host_header_counts_and_names_are_case_insensitive():
    # a second Host header cannot smuggle an allowed name past the first
    sent, _ = call("GET", [("HOST", "evil.example"), ("Host", "localhost")])
    assert status(sent) == 400
    sent, _ = call("GET", [("Host", "localhost"), ("Host", "evil.example")])
    assert status(sent) == 200


def test_a_long_foreign_host_is_cut_in_the_message():
    sent, _ = call("GET", {"Host": "e" * 300})
    assert f"Host {'e' * 100!r} is not allowed" in detail(sent)


def test_a_foreign_host_on_a_websocket_closes_the_handshake():
    sent, inner = call(headers={"Host": "evil.example"}, kind="websocket")
    assert inner.scopes == []
    assert sent == [
        {
            "type": "websocket.close",
            "code": 1008,
            "reason": (
                "Host 'evil.example' is not allowed. Easel answers requests for localhost, 127.0.0.1 "
                "and [::1], and for the names given with --allowed-hosts (EASEL_ALLOWED_HOSTS): a "
                "foreign Host is how DNS rebinding reaches a local server."
            )[:120],  # a close reason is limited to 123 bytes
        }
    ]


def test_lifespan_and_other_scopes_pass_through_untouched():
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> None: ...

    async def send(message: Any) -> None: ...

    scope = {"type": "lifespan"}
    asyncio.run(OriginGuardMiddleware(app, OriginPolicy.build())(scope, receive, send))
    assert seen == [(scope, receive, send)]


# --- the middleware: cross-site state changes (CSRF) ----------------------------------


@pytest.mark.parametrize("method", ["POST", "post", "PUT", "DELETE", "PATCH"])
def test_a_state_change_from_a_foreign_origin_gets_403(method):
    sent, inner = call(method, {"Host": "localhost", "Origin": EVIL})
    assert status(sent) == 403 and inner.scopes == []
    assert detail(sent) == (
        f"cross-site request refused: Origin {EVIL!r} is not this server. Pages on other sites may not "
        "change anything here (CSRF); list trusted origins with --cors-allow-origins "
        "(EASEL_CORS_ALLOW_ORIGINS)."
    )


def test_a_long_foreign_origin_is_cut_in_the_message():
    sent, _ = call("POST", {"Host": "localhost", "Origin": "http://" + "e" * 300})
    assert f"Origin {('http://' + 'e' * 300)[:100]!r} is not this server" in detail(sent)


@pytest.mark.parametrize("fetch_site", ["cross-site", " Cross-Site "])
def test_sec_fetch_site_cross_site_without_origin_gets_403(fetch_site):
    sent, inner = call("POST", {"Host": "localhost", "Sec-Fetch-Site": fetch_site})
    assert status(sent) == 403 and inner.scopes == []
    assert detail(sent) == (
        "cross-site request refused (Sec-Fetch-Site: cross-site): pages on other sites may not "
        "change anything here (CSRF); list trusted origins with --cors-allow-origins."
    )


def test_a_loopback_origin_marked_cross_site_is_refused():
    # http://localhost:3000 is another site's page on this machine (a dev server)
    sent, _ = call(
        "POST", {"Host": "localhost", "Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"}
    )
    assert status(sent) == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost"},  # curl and A1111 client libraries send no Origin
        {"Host": "localhost", "Sec-Fetch-Site": "same-origin"},
        {"Host": "localhost", "Sec-Fetch-Site": "same-site"},
        {"Host": "127.0.0.1:7860", "Origin": "http://127.0.0.1:7860"},
        {"Host": "mybox.lan", "Origin": "http://mybox.lan:7860"},
        {"Host": "localhost", "Origin": LISTED, "Sec-Fetch-Site": "cross-site"},  # listed by the user
    ],
)
def test_same_site_and_non_browser_writes_reach_the_app(headers):
    sent, inner = call("POST", headers)
    assert status(sent) == 200 and len(inner.scopes) == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get"])
def test_reads_from_anywhere_reach_the_app(method):
    # a cross-site page can send a GET but cannot read the answer without CORS
    sent, inner = call(method, {"Host": "localhost", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert status(sent) == 200 and len(inner.scopes) == 1
    assert not [k for k, _ in response_headers(sent) if k.lower().startswith(b"access-control-")]


def test_a_cross_site_websocket_is_refused():
    # cross-site WebSocket hijacking: the handshake is a GET, but it opens a channel
    sent, inner = call(headers={"Host": "localhost", "Origin": EVIL}, kind="websocket")
    assert inner.scopes == [] and sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    assert sent[0]["reason"].startswith("cross-site request refused: Origin")
    sent, inner = call(headers={"Host": "localhost", "Sec-Fetch-Site": "cross-site"}, kind="websocket")
    assert inner.scopes == [] and sent[0]["type"] == "websocket.close"


def test_a_same_site_websocket_reaches_the_app_unwrapped():
    sent, inner = call(headers={"Host": "localhost", "Origin": "http://localhost:7860"}, kind="websocket")
    assert sent == [{"type": "websocket.accept"}] and len(inner.scopes) == 1


def test_with_the_host_check_off_the_pages_own_host_may_still_post():
    """--allowed-hosts '*': the WebUI opened as http://gpu-box:7860 posts with that
    Origin; it is the request's own Host, so it is this server, not a foreign site."""
    policy = OriginPolicy.build(["*"])
    sent, inner = call("POST", {"Host": "gpu-box:7860", "Origin": "http://gpu-box:7860"}, policy=policy)
    assert status(sent) == 200 and len(inner.scopes) == 1
    sent, _ = call("POST", {"Host": "gpu-box:7860", "Origin": EVIL}, policy=policy)
    assert status(sent) == 403


# --- the middleware: CORS -------------------------------------------------------------


def test_the_inner_apps_cors_headers_are_dropped_for_a_foreign_origin():
    sent, _ = call("GET", {"Host": "mybox.lan", "Origin": EVIL})
    assert response_headers(sent) == [(b"content-type", b"text/plain")]
    assert sent[1] == {"type": "http.response.body", "body": b"inner"}


def test_a_listed_origin_gets_exactly_its_own_cors_headers():
    sent, _ = call("GET", {"Host": "localhost", "Origin": LISTED})
    assert response_headers(sent) == [
        (b"content-type", b"text/plain"),
        (b"access-control-allow-origin", LISTED.encode()),
        (b"vary", b"Origin"),
    ]


def test_a_response_start_without_headers_still_gets_cors():
    # "headers" is optional in an ASGI http.response.start message
    sent, _ = call("GET", {"Host": "localhost", "Origin": LISTED}, inner=InnerApp(start_headers=False))
    assert response_headers(sent) == [(b"access-control-allow-origin", LISTED.encode()), (b"vary", b"Origin")]
    sent, _ = call("GET", {"Host": "localhost"}, inner=InnerApp(start_headers=False))
    assert response_headers(sent) == []


def test_no_origin_gets_no_cors_headers():
    sent, _ = call("GET", {"Host": "localhost"})
    assert response_headers(sent) == [(b"content-type", b"text/plain")]


def test_a_preflight_from_a_listed_origin():
    sent, inner = call(
        "OPTIONS", {"Host": "localhost", "Origin": LISTED, "Access-Control-Request-Method": "POST"}
    )
    assert inner.scopes == []  # answered by the guard itself
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"access-control-allow-origin", LISTED.encode()),
                (b"access-control-allow-methods", b"GET, POST, DELETE"),
                (b"access-control-allow-headers", b"Authorization, Content-Type"),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
                (b"content-length", b"0"),
            ],
        },
        {"type": "http.response.body", "body": b""},
    ]


@pytest.mark.parametrize("origin", [EVIL, "http://localhost:3000"])
def test_a_preflight_from_any_other_origin_gets_403(origin):
    sent, inner = call(
        "options", {"Host": "localhost", "Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert status(sent) == 403 and inner.scopes == []
    assert detail(sent) == f"CORS: origin {origin!r} is not in --cors-allow-origins"
    assert not [k for k, _ in response_headers(sent) if k.startswith(b"access-control-")]


def test_a_long_preflight_origin_is_cut_in_the_message():
    origin = "http://" + "e" * 300
    sent, _ = call(
        "OPTIONS", {"Host": "localhost", "Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert detail(sent) == f"CORS: origin {origin[:100]!r} is not in --cors-allow-origins"


def test_options_without_a_preflight_header_or_origin_reaches_the_app():
    for headers in (
        {"Host": "localhost", "Origin": LISTED},
        {"Host": "localhost", "Access-Control-Request-Method": "POST"},
    ):
        sent, inner = call("OPTIONS", headers)
        assert len(inner.scopes) == 1 and status(sent) == 200


def test_a_preflight_on_a_foreign_host_is_refused_first():
    sent, _ = call(
        "OPTIONS", {"Host": "evil.example", "Origin": LISTED, "Access-Control-Request-Method": "POST"}
    )
    assert status(sent) == 400
