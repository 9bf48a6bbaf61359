"""The ``latency`` probe: pure helpers by table, then the real CLI against the emulator's delay,
jitter and drop faults, and against small TLS servers on loopback built in this file."""

from __future__ import annotations

import itertools
import shutil
import socket
import ssl
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_doctor import tlsinfo
from ollama_doctor.probes import latency
from tests.conftest import CliRun
from tests.support.canned import OLLAMA_ROOT, CannedServer
from tests.support.report import check_of

# ---------------------------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(("values", "expected"), [
    ([], None),
    ([5.0], {"n": 1, "min": 5.0, "median": 5.0, "p95": 5.0, "max": 5.0, "jitter": 0.0}),
    ([1.0, 2.0, 3.0, 4.0, 100.0],
     {"n": 5, "min": 1.0, "median": 3.0, "p95": 100.0, "max": 100.0, "jitter": 24.75}),
    ([10.0, 30.0, 10.0, 30.0],
     {"n": 4, "min": 10.0, "median": 20.0, "p95": 30.0, "max": 30.0, "jitter": 20.0}),
    # nearest rank: ceil(0.95 × 20) = 19th smallest
    ([float(v) for v in range(1, 21)],
     {"n": 20, "min": 1.0, "median": 10.5, "p95": 19.0, "max": 20.0, "jitter": 1.0}),
    ([0.123456, 0.123457], {"n": 2, "min": 0.12, "median": 0.12, "p95": 0.12, "max": 0.12,
                            "jitter": 0.0}),
])
def test_stats(values: list[float], expected: dict[str, float] | None) -> None:
    assert latency.stats(values) == expected


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1))
def test_median_is_statistics_median(values: list[float]) -> None:
    # latency.median stands in for statistics.median (not imported: see its docstring)
    assert latency.median(values) == statistics.median(values)


@pytest.mark.parametrize(("values", "expected"), [
    ([], 0.0), ([7.0], 0.0), ([1.0, 1.0, 1.0], 0.0), ([1.0, 3.0], 2.0),
    ([5.0, 1.0, 5.0], 4.0),  # the order taken matters, not the spread alone
    ([1.0, 5.0, 5.0], 2.0),
])
def test_jitter(values: list[float], expected: float) -> None:
    assert latency.jitter(values) == pytest.approx(expected)


@pytest.mark.parametrize(("host", "address", "expected"), [
    ("localhost", None, "loopback"),
    ("app.localhost", "127.0.0.1", "loopback"),
    ("127.0.0.1", None, "loopback"),
    ("127.3.2.1", None, "loopback"),
    ("::1", None, "loopback"),
    ("::ffff:127.0.0.1", None, "loopback"),
    ("10.1.2.3", None, "private"),
    ("172.16.0.1", None, "private"),
    ("172.31.255.255", None, "private"),
    ("172.32.0.1", None, "remote"),
    ("192.168.1.5", None, "private"),
    ("169.254.10.20", None, "private"),
    ("fe80::1", None, "private"),
    ("fd12:3456::1", None, "private"),
    ("100.64.0.1", None, "remote"),  # carrier-grade NAT: not a LAN
    ("203.0.113.9", None, "remote"),
    ("2001:db8::1", None, "remote"),
    ("gpu-box", "192.168.1.10", "private"),  # a name is classed by the address dialled
    ("host.docker.internal", "172.17.0.1", "private"),
    ("ollama.example.com", None, "remote"),
])
def test_target_class(host: str, address: str | None, expected: str) -> None:
    assert latency.target_class(host, address) == expected


@pytest.mark.parametrize(("klass", "override", "median", "jitter", "source"), [
    ("loopback", None, 50.0, 25.0, "default for a loopback target"),
    ("private", None, 200.0, 100.0, "default for a private-network target"),
    ("remote", None, 1000.0, 500.0, "default for a remote target"),
    ("remote", 80.0, 80.0, 40.0, "--latency-threshold"),
])
def test_thresholds(klass: str, override: float | None, median: float, jitter: float,
                    source: str) -> None:
    limits = latency.thresholds(klass, override)
    assert (limits["ttfb_median_ms"], limits["jitter_ms"], limits["source"]) == (
        median, jitter, source)
    assert limits["failed_error_share"] == 0.5


@pytest.mark.parametrize(("issuer", "expected"), [
    ("CN=Zscaler Intermediate Root CA (zscaler.net), O=Zscaler Inc.", "Zscaler"),
    ("CN=FortiGate CA, O=Fortinet", "Fortinet FortiGate"),
    ("CN=mitmproxy, O=mitmproxy", "mitmproxy"),
    ("CN=DO_NOT_TRUST_FiddlerRoot, O=DO_NOT_TRUST", "Fiddler"),
    ("CN=R11, O=Let's Encrypt, C=US", None),
    ("CN=ACME Inspection CA, O=ACME Corp", None),
])
def test_interceptor_for(issuer: str, expected: str | None) -> None:
    assert tlsinfo.interceptor_for(issuer) == expected


def test_format_name() -> None:
    assert tlsinfo.format_name([("commonName", "x"), ("organizationName", "Y Inc"),
                                ("countryName", "US"), ("title", "t")]) == \
        "CN=x, O=Y Inc, C=US, title=t"


@pytest.mark.parametrize("garbage", [
    b"", b"\x30", b"\x30\x82\xff\xff", b"\x04\x03abc", b"\x30\x03\x02\x01\x01",
    b"\x30\x84\xff\xff\xff\xff\x00", bytes(range(256)),
])
def test_parse_certificate_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        tlsinfo.parse_certificate(garbage)


# ---------------------------------------------------------------------------------------------
# certificates, made per test module with openssl (or the cryptography package)


@dataclass
class Pki:
    ca: Path  # "ACME Inspection CA": plays a TLS-intercepting proxy's CA
    leaf: Path  # CN=localhost, SAN localhost + 127.0.0.1, issued by the CA
    leaf_key: Path
    other: Path  # CN=other.example, SAN other.example only, issued by the CA
    other_key: Path


CA_SUBJECT = "CN=ACME Inspection CA, O=ACME Corp"


def _openssl(tmp: Path) -> Pki:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ACME Inspection CA/O=ACME Corp")
    for name, cn, san in (("leaf", "localhost", "DNS:localhost,IP:127.0.0.1"),
                          ("other", "other.example", "DNS:other.example")):
        (tmp / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\n"
            f"subjectKeyIdentifier=hash\nsubjectAltName={san}\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return Pki(tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key", tmp / "other.pem",
               tmp / "other.key")


def _cryptography(tmp: Path) -> Pki:  # pragma: no cover - used where openssl is missing
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def write(path: Path, cert: Any, key: Any) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME Inspection CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ACME Corp")])
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    write(tmp / "ca.pem", ca, ca_key)
    for name, cn, sans in (("leaf", "localhost", [x509.DNSName("localhost"),
                                                  x509.IPAddress(ipaddress.ip_address(
                                                      "127.0.0.1"))]),
                           ("other", "other.example", [x509.DNSName("other.example")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(tmp / f"{name}.pem", cert, key)
    return Pki(tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key", tmp / "other.pem",
               tmp / "other.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    if shutil.which("openssl"):
        return _openssl(tmp)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        pytest.skip("neither the openssl binary nor the cryptography package is available to "
                    "make test certificates")
    return _cryptography(tmp)  # pragma: no cover


def test_parse_certificate_matches_openssl(pki: Pki) -> None:
    leaf = tlsinfo.parse_certificate(ssl.PEM_cert_to_DER_cert(pki.leaf.read_text()))
    assert leaf["subject"] == "CN=localhost"
    assert leaf["common_name"] == "localhost"
    assert leaf["issuer"] == CA_SUBJECT
    assert leaf["san"] == ["DNS:localhost", "IP:127.0.0.1"]
    assert leaf["self_signed"] is False
    assert leaf["not_before"] < leaf["not_after"]
    ca = tlsinfo.parse_certificate(ssl.PEM_cert_to_DER_cert(pki.ca.read_text()))
    assert (ca["subject"], ca["issuer"], ca["self_signed"], ca["san"]) == (
        CA_SUBJECT, CA_SUBJECT, True, [])
    # the DER reader and ssl's own decoder (of a verified peer) give the same facts
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is not None:
        for path in (pki.leaf, pki.ca, pki.other):
            assert tlsinfo.cert_from_dict(decode(str(path))) == \
                tlsinfo.parse_certificate(ssl.PEM_cert_to_DER_cert(path.read_text()))


# ---------------------------------------------------------------------------------------------
# small servers: an Ollama look-alike over TLS, and the same in plain HTTP


@pytest.fixture
def ollama_server() -> Iterator[Callable[..., str]]:
    """``ollama_server(cert=…, key=…)`` → base URL of an Ollama look-alike answering ``/`` and
    ``/api/version`` (TLS when given a certificate), stopped at the end."""
    servers: list[CannedServer] = []

    def start(cert: Path | None = None, key: Path | None = None) -> str:
        tls = None
        if cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        servers.append(CannedServer(OLLAMA_ROOT, tls=tls, name="latency"))
        return servers[-1].start()

    yield start
    for server in servers:
        server.stop()


def worst(doc: dict[str, Any]) -> set[str]:
    """Causes at warning level or worse."""
    return {d["cause"] for d in doc["diagnosis"] if d["severity"] in ("warning", "error",
                                                                     "critical")}


# ---------------------------------------------------------------------------------------------
# TLS (S30 and the intercepting-proxy case)


def test_untrusted_issuer_is_named(cli: Callable[..., CliRun], pki: Pki,
                                   ollama_server: Callable[..., str]) -> None:
    url = ollama_server(pki.leaf, pki.leaf_key)
    run = cli("check", "--host", url, "--json")
    assert run.code == 1, run.stderr
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("tls-error", "critical", None)
    assert doc["summary"]["top_cause"] == "tls-error"
    check = check_of(doc, "latency")
    assert check["status"] == "fail"
    assert check["summary"] == (f"TLS verification failed: certificate issued by "
                                f"{CA_SUBJECT} — direct")
    (finding,) = check["findings"]
    port = url.rsplit(":", 1)[1]
    assert finding["cause"] == "tls-error"
    assert finding["message"] == (
        f"TLS verification of 127.0.0.1:{port} failed (unable to get local issuer "
        f"certificate): the certificate for 'localhost' was issued by '{CA_SUBJECT}', not a "
        "public CA this client trusts: typically a TLS-intercepting proxy (corporate gateway, "
        "antivirus) or a private CA.")
    commands = [c for step in finding["fix"] for c in step["commands"]]
    assert "export SSL_CERT_FILE=~/ca-bundle.pem" in commands
    assert "export REQUESTS_CA_BUNDLE=~/ca-bundle.pem" in commands
    assert f"openssl s_client -connect 127.0.0.1:{port} -showcerts </dev/null" in commands
    tls = check["facts"]["tls"]
    assert (tls["verified"], tls["verify_code"]) == (False, 20)
    assert tls["certificate"]["issuer"] == CA_SUBJECT
    # the diagnosis keeps the issuer in its evidence, whichever probe's sentence leads
    assert top["evidence"]["tls"]["certificate"]["issuer"] == CA_SUBJECT
    assert "latency" in top["probes"]


def test_trusted_private_ca_passes_and_records_tls(cli: Callable[..., CliRun], pki: Pki,
                                                   ollama_server: Callable[..., str]) -> None:
    url = ollama_server(pki.leaf, pki.leaf_key)
    run = cli("probe", "latency", "--host", url, "--samples", "3", "--latency-threshold",
              "1000", "--json", env={"SSL_CERT_FILE": str(pki.ca)})
    doc = run.json()
    check = check_of(doc, "latency")
    assert (check["status"], check["findings"]) == ("pass", [])
    facts = check["facts"]
    assert facts["ca_bundle"] == f"SSL_CERT_FILE={pki.ca}"
    # reachability verified against certifi alone and failed; the client's store verifies
    # reachability trusts the same store (SSL_CERT_FILE), so it no longer fails on TLS
    assert "reachability_tls" not in facts
    assert facts["tls"]["certificate"]["issuer"] == CA_SUBJECT
    assert facts["tls"]["certificate"]["san"] == ["DNS:localhost", "IP:127.0.0.1"]
    assert facts["tls"]["version"].startswith("TLS")
    fresh = facts["fresh"]["phases"]
    assert fresh["tls"]["n"] == 3 and fresh["connect"]["n"] == 3
    assert "tls" not in facts["kept_alive"]["phases"]  # a kept-alive connection shakes once
    assert facts["kept_alive"]["reconnects"] == 0


def test_trusted_private_ca_whole_run_is_healthy(cli: Callable[..., CliRun], pki: Pki,
                                                 ollama_server: Callable[..., str]) -> None:
    url = ollama_server(pki.leaf, pki.leaf_key)
    run = cli("check", "--host", url, "--samples", "2", "--latency-threshold", "1000",
              "--json", env={"SSL_CERT_FILE": str(pki.ca)})
    assert worst(run.json()) == set()
    assert run.code == 0


def test_localhost_name_gets_sni_and_resolve_phase(cli: Callable[..., CliRun], pki: Pki,
                                                   ollama_server: Callable[..., str]) -> None:
    url = ollama_server(pki.leaf, pki.leaf_key).replace("127.0.0.1", "localhost")
    run = cli("probe", "latency", "--host", url, "--samples", "2", "--latency-threshold",
              "1000", "--json", env={"SSL_CERT_FILE": str(pki.ca)})
    check = check_of(run.json(), "latency")
    assert check["status"] == "pass", check["summary"]
    facts = check["facts"]
    assert facts["target_class"] == "loopback"
    assert facts["fresh"]["phases"]["resolve"]["n"] == 2
    assert facts["tls"]["certificate"]["common_name"] == "localhost"


def test_certificate_for_another_name(cli: Callable[..., CliRun], pki: Pki,
                                      ollama_server: Callable[..., str]) -> None:
    url = ollama_server(pki.other, pki.other_key)
    run = cli("probe", "latency", "--host", url, "--json", env={"SSL_CERT_FILE": str(pki.ca)})
    assert run.code == 1
    doc = run.json()
    assert doc["diagnosis"][0]["cause"] == "tls-error"
    (finding,) = check_of(doc, "latency")["findings"]
    assert finding["message"].endswith(
        f"the certificate issued by '{CA_SUBJECT}' is for DNS:other.example, not 127.0.0.1.")
    assert finding["fix"][0]["commands"] == [
        f"export OLLAMA_HOST=https://other.example:{url.rsplit(':', 1)[1]}"]


def test_plain_http_to_a_tls_port(cli: Callable[..., CliRun], pki: Pki,
                                  ollama_server: Callable[..., str]) -> None:
    port = ollama_server(pki.leaf, pki.leaf_key).rsplit(":", 1)[1]
    run = cli("check", "--host", f"http://127.0.0.1:{port}", "--json")
    assert run.code == 1
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("wrong-port-scheme", "critical",
                                                            None)
    assert top["explanation"] == (
        f"http:// was spoken to 127.0.0.1:{port}, which speaks TLS (a handshake succeeded, "
        "certificate for 'localhost'): use https:// for this port.")
    assert top["fix"][0]["commands"][0] == f"export OLLAMA_HOST=https://127.0.0.1:{port}"
    # reachability's vaguer symptom is folded into the cause that explains it
    assert "server-unresponsive" not in {d["cause"] for d in doc["diagnosis"]}


def test_unloadable_ssl_cert_file(cli: Callable[..., CliRun],
                                  ollama_server: Callable[..., str], tmp_path: Path) -> None:
    url = ollama_server()
    missing = tmp_path / "nope.pem"
    run = cli("probe", "latency", "--host", url, "--samples", "1", "--latency-threshold",
              "1000", "--json", env={"SSL_CERT_FILE": str(missing)})
    assert run.code == 1
    top = run.json()["diagnosis"][0]
    assert (top["cause"], top["severity"]) == ("tls-error", "critical")
    assert top["explanation"].startswith(f"SSL_CERT_FILE={missing} cannot be loaded")


def test_healthy_plain_server_direct_call(ollama_server: Callable[..., str]) -> None:
    """The probe called as a function, as the benchmark does, without reachability's facts."""
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    url = ollama_server()
    ctx = Context(target=parse_target(url), options=Options(samples=4))
    ctx.deadline = ctx.clock() + 10
    outcome = latency.run(ctx)
    assert outcome.status.value == "pass", outcome.summary
    assert outcome.findings == []
    facts = outcome.facts
    assert (facts["fresh"]["count"], facts["kept_alive"]["count"]) == (4, 4)
    assert facts["failures"] == {"count": 0, "kinds": {}, "phases": {}, "first": None}
    assert facts["stopped_early"] is None
    assert "tls" not in facts and "ca_bundle" not in facts
    assert set(facts["fresh"]["phases"]) == {"connect", "processing", "transfer", "ttfb",
                                             "total"}


# ---------------------------------------------------------------------------------------------
# the emulator's delay, jitter and drop faults


def test_added_delay_is_measured(cli: Callable[..., CliRun],
                                 emulator: Callable[..., Any]) -> None:
    emu = emulator(latency="60")
    run = cli("probe", "latency", "--host", emu.url, "--samples", "3",
              "--latency-threshold", "400", "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert worst(doc) == set()  # healthy: under the limit, nothing at warning level
    facts = check_of(doc, "latency")["facts"]
    for series in ("fresh", "kept_alive"):
        for phase in ("ttfb", "processing"):
            median = facts[series]["phases"][phase]["median"]
            assert 60 <= median < 60 + 25, (series, phase, median)
    assert facts["fresh"]["phases"]["connect"]["median"] < 20

    run = cli("probe", "latency", "--host", emu.url, "--samples", "3",
              "--latency-threshold", "40", "--json")
    assert run.code == 0, run.stderr  # a warning does not fail the run
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("high-latency", "warning", None)
    assert doc["summary"]["top_cause"] == "high-latency"
    assert "above the 40 ms limit (--latency-threshold); most of it is processing" in \
        top["explanation"]
    assert check_of(doc, "latency")["status"] == "warn"


def test_default_loopback_threshold(cli: Callable[..., CliRun],
                                    emulator: Callable[..., Any]) -> None:
    emu = emulator(latency="70")
    doc = cli("probe", "latency", "--host", emu.url, "--samples", "2", "--json").json()
    check = check_of(doc, "latency")
    assert check["facts"]["threshold"]["source"] == "default for a loopback target"
    assert check["facts"]["threshold"]["ttfb_median_ms"] == 50
    assert doc["summary"]["top_cause"] == "high-latency"


def test_slower_than_the_client_timeout_is_an_error(cli: Callable[..., CliRun],
                                                    emulator: Callable[..., Any]) -> None:
    emu = emulator(latency="60")
    run = cli("probe", "latency", "--host", emu.url, "--samples", "2", "--latency-threshold",
              "1000", "--client-timeout", "0.03", "--json")
    assert run.code == 1
    top = run.json()["diagnosis"][0]
    assert (top["cause"], top["severity"]) == ("high-latency", "error")
    assert "took longer than your client's 0.03 s timeout" in top["explanation"]


def emulated_delays(seed: int, latency_ms: float, jitter_ms: float, count: int) -> list[float]:
    """The delays the emulator adds to its next ``count`` answers: one uniform(0, jitter) draw
    per request from ``Random(seed + 1)``, in arrival order (``emulator.py``)."""
    import random

    rng = random.Random(seed + 1)
    return [latency_ms + rng.uniform(0, jitter_ms) for _ in range(count)]


def emulated_drops(seed: int, rate: float, count: int) -> list[bool]:
    """Which of the next ``count`` requests the emulator drops: ``Random(seed)`` per request."""
    import random

    rng = random.Random(seed)
    return [rng.random() < rate for _ in range(count)]


# Requests of `probe latency`, in order: reachability's GET / and GET /api/version, the
# kept-alive warm-up, then fresh and kept-alive samples alternating.
BEFORE_SAMPLES = 3


def test_emulated_jitter(cli: Callable[..., CliRun], emulator: Callable[..., Any]) -> None:
    delays = emulated_delays(49, 10, 200, BEFORE_SAMPLES + 12)
    fresh_delays = delays[BEFORE_SAMPLES::2]  # 58, 204, 73, 27, 175, 74 ms
    kept_delays = delays[BEFORE_SAMPLES + 1::2]  # 105, 27, 145, 41, 206, 48 ms
    assert statistics.median(fresh_delays) + 60 < 140  # the median stays well under 140 ms
    assert min(latency.jitter(fresh_delays), latency.jitter(kept_delays)) > 70 + 40

    emu = emulator(latency="10", jitter="200", seed="49")
    doc = cli("probe", "latency", "--host", emu.url, "--samples", "6",
              "--latency-threshold", "140", "--json").json()
    facts = check_of(doc, "latency")["facts"]
    measured = facts["fresh"]["ttfb_ms"]
    assert len(measured) == 6
    # each answer waited at least its added delay, and not much more (a stall may hit one)
    assert all(got >= added for got, added in zip(measured, fresh_delays, strict=True))
    assert statistics.median(g - a for g, a in zip(measured, fresh_delays, strict=True)) < 15
    assert facts["fresh"]["phases"]["ttfb"]["jitter"] == pytest.approx(
        latency.jitter(measured), abs=0.02)
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"]) == ("high-latency", "warning")
    (reason,) = top["evidence"]["reasons"]  # the median is under 140 ms: jitter only
    assert reason.startswith("time to first byte varies by ")
    assert reason.endswith(" ms from one call to the next (jitter limit 70 ms for a loopback "
                           "target)")


def test_loopback_jitter_under_the_default_limit_is_a_note(
        cli: Callable[..., CliRun], emulator: Callable[..., Any]) -> None:
    """The same delays × 0.4 (median ~30 ms, jitter ~46 ms): over the 25 ms loopback jitter
    limit, but loopback has no path to blame, so the run stays healthy."""
    emu = emulator(latency="10", jitter="200", seed="49", time_scale=0.4)
    run = cli("probe", "latency", "--host", emu.url, "--samples", "6", "--json")
    assert run.code == 0
    doc = run.json()
    assert worst(doc) == set()
    assert doc["summary"]["status"] == "healthy"
    (note,) = [d for d in doc["diagnosis"] if d["cause"] == "high-latency"]
    assert note["severity"] == "info"
    (reason,) = note["evidence"]["reasons"]
    assert reason.endswith("(jitter limit 25 ms for a loopback target); on loopback there is "
                           "no network path, so the server or this machine is busy")


LIMITS = {k: latency.thresholds(k, None) for k in ("loopback", "private", "remote")}
EXPLICIT = latency.thresholds("loopback", 40)
W, E, N = "warning", "error", "info"  # N: a note


@pytest.mark.parametrize(("case", "fresh", "kept", "failed", "total", "klass", "limits",
                          "client_timeout", "expected"), [
    ("healthy remote", [100, 110, 105], [90, 95], [], 5, "remote", LIMITS["remote"], None, []),
    ("slow LAN", [250, 260, 270], [240, 245], [], 5, "private", LIMITS["private"], None,
     [(W, "the median time to first byte over fresh connections is 260.0 ms, above the "
          "200 ms limit (default for a private-network target)")]),
    ("jittery LAN", [10, 200, 10, 200], [10, 200, 10], [], 7, "private", LIMITS["private"],
     None, [(W, "time to first byte varies by 190.0 ms from one call to the next (jitter "
                "limit 100 ms for a private-network target)")]),
    ("one stall in one series", [10, 300, 10, 10], [10, 11, 10, 12], [], 8, "remote",
     {**LIMITS["remote"], "jitter_ms": 50}, None, []),
    ("loopback jitter, default limit", [5, 60, 5, 60], [5, 60, 5], [], 7, "loopback",
     LIMITS["loopback"], None,
     [(N, "time to first byte varies by 55.0 ms from one call to the next (jitter limit "
          "25 ms for a loopback target); on loopback there is no network path, so the "
          "server or this machine is busy")]),
    ("loopback jitter, explicit limit", [5, 35, 5, 35], [5, 35, 5], [], 7, "loopback",
     EXPLICIT, None,
     [(W, "time to first byte varies by 30.0 ms from one call to the next (jitter limit "
          "20 ms for a loopback target)")]),
    ("one failure", [20] * 9, [20] * 9, ["protocol"], 10, "private", LIMITS["private"], None,
     [(W, "1 of 10 requests to GET /api/version failed (closed without a complete answer "
          "×1)")]),
    ("half failed", [20] * 5, [20] * 5, ["protocol", "read-timeout", "protocol",
                                         "http-502", "reset"], 10, "remote", LIMITS["remote"],
     None, [(E, "5 of 10 requests to GET /api/version failed (closed without a complete "
                "answer ×2, no answer in time ×1, HTTP 502 ×1, connection reset ×1)")]),
    ("slower than the client", [50, 300, 60, 250], [40, 45], [], 6, "remote",
     LIMITS["remote"], 0.1,
     [(E, "2 of 6 first bytes took longer than your client's 0.1 s timeout (slowest 300 ms)")]),
    ("worst first", [300, 310], [300], ["refused"], 4, "loopback", LIMITS["loopback"], None,
     [(W, "1 of 4 requests to GET /api/version failed (refused ×1)"),
      (W, "the median time to first byte over fresh connections is 305.0 ms, above the 50 ms "
          "limit (default for a loopback target)")]),
])
def test_latency_reasons(case: str, fresh: list[float], kept: list[float], failed: list[str],
                         total: int, klass: str, limits: dict[str, Any],
                         client_timeout: float | None,
                         expected: list[tuple[str, str]]) -> None:
    reasons = latency.latency_reasons(
        fresh_ttfb=[float(v) for v in fresh], kept_ttfb=[float(v) for v in kept],
        every_ttfb=[float(v) for v in (*fresh, *kept)], failed_kinds=failed, total=total,
        klass=klass, limits=limits, client_timeout_s=client_timeout)
    assert [(sev.value, text) for sev, text in reasons] == expected, case


@pytest.mark.parametrize(("rate", "seed", "dropped", "severity"), [
    ("0.5", 19, 13, "error"),  # 13 of 16: calls break
    ("0.2", 33, 1, "warning"),  # one lost call: may fail
    ("0.3", 6, 4, "warning"),  # three kept-alive calls follow a dropped one: they reconnect
])
def test_dropped_requests_are_counted(cli: Callable[..., CliRun], emulator: Callable[..., Any],
                                      rate: str, seed: int, dropped: int,
                                      severity: str) -> None:
    plan = emulated_drops(seed, float(rate), BEFORE_SAMPLES + 16)
    assert not any(plan[:BEFORE_SAMPLES]) and sum(plan[BEFORE_SAMPLES:]) == dropped
    emu = emulator(drop_rate=rate, seed=str(seed))
    run = cli("probe", "latency", "--host", emu.url, "--samples", "8",
              "--latency-threshold", "1000", "--json")
    doc = run.json()
    check = check_of(doc, "latency")
    facts = check["facts"]
    assert facts["failures"]["count"] == dropped
    # the emulator closes the connection without a word: httpx's RemoteProtocolError
    assert facts["failures"]["kinds"] == {"protocol": dropped}
    assert facts["failures"]["phases"] == {"processing": dropped}
    assert facts["fresh"]["count"] + facts["kept_alive"]["count"] == 16
    assert facts["fresh"]["ok"] + facts["kept_alive"]["ok"] == 16 - dropped
    # a kept-alive request after a dropped one (or a dropped warm-up) opens a new connection
    kept = [plan[BEFORE_SAMPLES - 1], *plan[BEFORE_SAMPLES + 1::2]]
    assert facts["kept_alive"]["reconnects"] == sum(
        1 for before, now in itertools.pairwise(kept) if before and not now) == {
        19: 0, 33: 0, 6: 3}[seed]
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("high-latency", severity, None)
    assert (f"{dropped} of 16 requests to GET /api/version failed (closed without a complete "
            f"answer ×{dropped})") in top["explanation"]
    assert run.code == (1 if severity == "error" else 0)
    assert check["status"] == ("fail" if severity == "error" else "warn")


def test_stops_at_the_run_deadline(cli: Callable[..., CliRun],
                                   emulator: Callable[..., Any]) -> None:
    emu = emulator(latency="100")
    started = time.perf_counter()
    run = cli("probe", "latency", "--host", emu.url, "--samples", "50", "--timeout", "1",
              "--latency-threshold", "1000", "--json")
    wall = time.perf_counter() - started
    check = check_of(run.json(), "latency")
    stopped = check["facts"]["stopped_early"]
    assert stopped is not None and stopped["wanted"] == 50
    assert "stopped early" in check["summary"]
    assert check["facts"]["failures"]["count"] == 0  # the deadline is not the path's fault
    assert check["facts"]["fresh"]["count"] >= 1
    assert check["duration_ms"] < 2000  # the run's deadline is 2 × --timeout
    assert wall < 10


def test_https_to_the_plain_port(cli: Callable[..., CliRun],
                                 emulator: Callable[..., Any]) -> None:
    emu = emulator()
    port = emu.url.rsplit(":", 1)[1]
    # the emulator, like Go's server, answers a TLS hello with a plain 400 at once
    run = cli("check", "--host", f"https://127.0.0.1:{port}", "--timeout", "1", "--json")
    assert run.code == 1
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("wrong-port-scheme", "critical",
                                                            None)
    assert doc["summary"]["top_cause"] == "wrong-port-scheme"
    check = check_of(doc, "latency")
    assert check["summary"] == f"port {port} answers plain HTTP, not TLS — direct"
    assert check["facts"]["tls"]["plain_http"].startswith("HTTP/1.")
    assert check["findings"][0]["fix"][0]["commands"][0] == \
        f"export OLLAMA_HOST=http://127.0.0.1:{port}"
    handshake = check["facts"]["tls"].get("handshake_error")
    assert handshake is None or handshake["kind"] in ("tls-plain", "protocol")


def test_skips_when_nothing_listens(cli: Callable[..., CliRun]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    doc = cli("probe", "latency", "--host", f"127.0.0.1:{port}", "--json").json()
    check = check_of(doc, "latency")
    assert check["status"] == "skip"
    assert check["summary"].startswith("skipped: reachability did not pass")
    assert [d["cause"] for d in doc["diagnosis"]] == ["server-not-running"]


def test_silent_server_costs_no_extra_timeout(cli: Callable[..., CliRun]) -> None:
    """Accepts (the kernel's backlog) and never answers: not a TLS question, and no second
    timeout spent on it (bench_check's silent-server target is 1.3 × --timeout)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        doc = cli("check", "--host", f"127.0.0.1:{port}", "--timeout", "0.5", "--json").json()
    check = check_of(doc, "latency")
    assert check["status"] == "skip"
    assert "tls" not in check["facts"]  # no TLS look, which would wait out another timeout
    assert doc["diagnosis"][0]["cause"] == "server-unresponsive"
    assert "tls-error" not in {d["cause"] for d in doc["diagnosis"]}


def test_https_to_a_plain_test_server(cli: Callable[..., CliRun],
                                      ollama_server: Callable[..., str]) -> None:
    """The same as against the emulator, with this file's server (answers 400 to a hello)."""
    port = ollama_server().rsplit(":", 1)[1]
    doc = cli("check", "--host", f"https://127.0.0.1:{port}", "--timeout", "2",
              "--json").json()
    assert doc["diagnosis"][0]["cause"] == "wrong-port-scheme"
    check = check_of(doc, "latency")
    assert check["facts"]["tls"]["plain_http"].startswith("HTTP/1.")
    # this server answers the TLS hello with a 400 at once: the handshake was tried first
    assert check["facts"]["tls"]["handshake_error"]["kind"] == "tls-plain"


# -- an HTTP answer is not a lost request -----------------------------------------------------


def test_answers_of_an_auth_proxy_are_not_lost_requests(cli: Callable[..., CliRun],
                                                       emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="TOKEN")
    run = cli("probe", "latency", "--host", emu.url, "--samples", "3", "--json")
    check = check_of(run.json(), "latency")
    assert check["status"] == "pass", check["summary"]
    assert check["findings"] == []
    facts = check["facts"]
    assert facts["answers"] == {"401": 6}
    assert facts["failures"]["count"] == 0
    assert "answered HTTP 401 ×6" in check["summary"] and "failed" not in check["summary"]
    assert facts["fresh"]["ok"] == 0 and facts["fresh"]["count"] == 3


def test_refused_samples_are_still_lost_requests(emulator: Callable[..., Any]) -> None:
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    emu = emulator(drop_rate="1.0")  # closes every connection without an answer
    out = latency.run(Context(target=parse_target(emu.url), options=Options(samples=2)))
    assert [(f.cause, f.severity.value) for f in out.findings] == [("high-latency", "error")]
    assert out.facts["answers"] == {}
    assert out.facts["failures"]["count"] == 4
    assert out.summary.endswith(", 4 failed — direct")


def test_s21_auth_proxy_has_one_cause_and_no_secondary_high_latency() -> None:
    """The root cause absorbs its symptoms across probes: behind an auth proxy the whole
    diagnosis is auth-required, with no error-level high-latency below it."""
    from tests.scenarios import BY_ID, run_scenario

    result = run_scenario(BY_ID["S21"])
    assert [(d["cause"], d["severity"], d["code"]) for d in result.doc["diagnosis"]] == [
        ("auth-required", "error", 401)]
    assert check_of(result.doc, "latency")["facts"]["answers"] == {"401": 10}


def test_https_through_the_clients_proxy_uses_connect(cli: Callable[..., CliRun], pki: Pki,
                                                      ollama_server: Callable[..., str]) -> None:
    """HTTPS_PROXY applies: every sample opens a CONNECT tunnel through the proxy and does TLS
    with the server inside it, as httpx (ollama-python) does."""
    from tests.support.proxy import ForwardProxy

    url = ollama_server(pki.leaf, pki.leaf_key)
    with ForwardProxy("relay") as proxy:
        run = cli("check", "--host", url, "--samples", "2", "--latency-threshold", "1000",
                  "--json", env={"SSL_CERT_FILE": str(pki.ca), "HTTPS_PROXY": proxy.url})
        methods = {r.method for r in proxy.requests}
    doc = run.json()
    assert run.code == 0, worst(doc)
    assert methods == {"CONNECT"}
    for probe_id in ("reachability", "latency"):
        check = check_of(doc, probe_id)
        assert check["summary"].endswith(f"— via proxy {proxy.url} (HTTPS_PROXY)"), probe_id
    facts = check_of(doc, "latency")["facts"]
    assert facts["tls"]["certificate"]["issuer"] == CA_SUBJECT  # TLS with the server itself
    assert facts["fresh"]["phases"]["tls"]["n"] == 2
