"""Host and Origin checks (issue #23, point 2) on a real server with the WebUI mounted,
spoken to over raw sockets so that the Host, Origin and Sec-Fetch-Site headers are
exactly what a DNS-rebinding or CSRF page would send."""

from __future__ import annotations

import pytest

from core.api.origin import OriginPolicy, host_name, origin_host
from tests.api.conftest import WEBUI_ALLOWED_HOST, WEBUI_CORS_ORIGIN
from tests.api.rawhttp import raw_request

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:7860",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "[::2]:7860",
    "localhost:notaport",
    "",
]
# every kind of route: the A1111 API, the native API, the WebUI page, its config and
# Gradio's own endpoints
ROUTES = [
    ("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "width": 64, "height": 64}),
    ("POST", "/api/v1/jobs", {"prompt": "x", "steps": 1, "width": 64, "height": 64}),
    ("GET", "/api/v1/jobs", None),
    ("GET", "/", None),
    ("GET", "/config", None),
    ("GET", "/gradio_api/info", None),
    ("POST", "/gradio_api/call/read_user_lexicon", {"data": []}),
    ("POST", "/sdapi/v1/options", {"zh_prompt.mode": "off"}),
]
EVIL = "http://evil.example"


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_a_foreign_host_is_refused_everywhere(easel_webui, host, method, path, body):
    jobs = easel_webui.service.queue.count()
    response = raw_request(easel_webui.url, method, path, headers={"Host": host}, body=body)
    assert response.status == 400, response.text[:300]
    assert "--allowed-hosts" in response.text and "DNS rebinding" in response.text
    assert "access-control-allow-origin" not in response.headers
    assert easel_webui.service.queue.count() == jobs


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:1234",
        "127.0.0.1",
        "[::1]:80",
        "LOCALHOST.",
        WEBUI_ALLOWED_HOST,
        "MyBox.LAN:7860",
    ],
)
def test_loopback_and_the_allowed_names_are_answered(easel_webui, host):
    assert raw_request(easel_webui.url, "GET", "/api/v1/health", headers={"Host": host}).status == 200
    assert raw_request(easel_webui.url, "GET", "/config", headers={"Host": host}).status == 200


CROSS_SITE = [
    {"Origin": EVIL},
    {"Origin": "null"},  # sandboxed frames and file:// pages
    {"Origin": "http://127.0.0.1.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},  # no Origin, but the browser says where it came from
    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"},
]
WRITES = [
    ("POST", "/api/v1/jobs", {"prompt": "x", "steps": 1, "width": 64, "height": 64}),
    ("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "width": 64, "height": 64}),
    ("POST", "/sdapi/v1/options", {"zh_prompt.mode": "off"}),
    ("DELETE", "/api/v1/jobs/nope", None),
    ("POST", "/sdapi/v1/interrupt", None),
    ("POST", "/gradio_api/call/save_user_lexicon", {"data": ["小黄人\tminion\n"]}),
    ("POST", "/gradio_api/upload", b"--x--\r\n"),
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_cross_site_writes_are_refused_even_on_loopback(easel_webui, headers, method, path, body):
    jobs = easel_webui.service.queue.count()
    mode = easel_webui.host.get_setting("zh_prompt.mode")
    response = raw_request(easel_webui.url, method, path, headers=headers, body=body)
    assert response.status == 403, response.text[:300]
    assert "cross-site request refused" in response.text
    assert easel_webui.service.queue.count() == jobs
    assert easel_webui.host.get_setting("zh_prompt.mode") == mode


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, webuiapi and other non-browser clients send no Origin
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://127.0.0.1:7860"},  # the WebUI's own page (any port)
        {"Origin": f"http://{WEBUI_ALLOWED_HOST}", "Host": WEBUI_ALLOWED_HOST},
        {"Origin": WEBUI_CORS_ORIGIN, "Sec-Fetch-Site": "cross-site"},  # listed by the user
    ],
)
def test_same_site_and_non_browser_writes_still_work(easel_webui, headers):
    response = raw_request(easel_webui.url, "POST", "/sdapi/v1/options", headers=headers, body={})
    assert response.status == 200, response.text[:300]


def test_gradio_does_not_echo_foreign_origins(easel_webui):
    """Gradio's own CORS echoes any Origin with credentials when the Host is not
    localhost (here: the allowed LAN name); the guard drops those headers."""
    for path in ("/config", "/gradio_api/info", "/api/v1/health"):
        response = raw_request(
            easel_webui.url, "GET", path, headers={"Host": WEBUI_ALLOWED_HOST, "Origin": EVIL}
        )
        assert response.status == 200
        assert not [h for h in response.headers if h.startswith("access-control-")], response.headers


def test_cors_only_for_the_listed_origins(easel_webui):
    listed = raw_request(easel_webui.url, "GET", "/api/v1/health", headers={"Origin": WEBUI_CORS_ORIGIN})
    assert listed.headers.get("access-control-allow-origin") == WEBUI_CORS_ORIGIN
    assert "access-control-allow-credentials" not in listed.headers
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = raw_request(
        easel_webui.url, "OPTIONS", "/api/v1/jobs", headers={"Origin": WEBUI_CORS_ORIGIN, **preflight}
    )
    assert ok.status == 200 and ok.headers["access-control-allow-origin"] == WEBUI_CORS_ORIGIN
    for origin in (EVIL, "http://localhost:3000"):
        refused = raw_request(
            easel_webui.url, "OPTIONS", "/api/v1/jobs", headers={"Origin": origin, **preflight}
        )
        assert refused.status == 403 and "access-control-allow-origin" not in refused.headers
        plain = raw_request(easel_webui.url, "GET", "/api/v1/health", headers={"Origin": origin})
        assert plain.status == 200 and "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:7860", "localhost"),
        ("LocalHost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:7860", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("::1", None),  # IPv6 without brackets is not a Host header
        ("[::1", None),
        ("a b", None),
        ("evil.example:", None),
        ("", None),
    ],
)
def test_host_header_parsing(value, expected):
    assert host_name(value) == expected


def test_origin_parsing():
    assert origin_host("http://[::1]:7860") == "::1"
    assert origin_host("https://MyBox.lan") == "mybox.lan"
    assert origin_host("null") is None and origin_host("file://") is None


def test_allowed_hosts_from_the_environment_and_the_flag(monkeypatch):
    from core.cli.main import build_parser
    from core.config import Settings

    monkeypatch.setenv("EASEL_ALLOWED_HOSTS", "studio.lan, gpu-box")
    monkeypatch.setenv("EASEL_CORS_ALLOW_ORIGINS", "http://a.example")
    settings = Settings.from_env()
    assert settings.allowed_hosts == ["studio.lan", "gpu-box"]
    policy = OriginPolicy.from_settings(settings)
    assert policy.host_allowed("gpu-box") and not policy.host_allowed("evil.example")
    assert policy.cors_allowed("http://a.example/")
    args = build_parser().parse_args(
        ["serve", "--allowed-hosts", "x.lan", "--cors-allow-origins", "http://b"]
    )
    assert args.allowed_hosts == "x.lan" and args.cors_allow_origins == "http://b"
    with pytest.raises(ValueError, match="not a host name"):
        OriginPolicy.build(["bad host/"])
    assert OriginPolicy.build(["*"]).host_allowed("anything.example")
    # binding a specific address answers that address too; 0.0.0.0 is not a name
    assert OriginPolicy.build([], [], "192.168.1.5").host_allowed("192.168.1.5")
    assert not OriginPolicy.build([], [], "0.0.0.0").host_allowed("0.0.0.0")
