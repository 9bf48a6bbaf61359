"""TLS as the client meets it: one handshake as the client would make it, the certificate a
server shows (decoded by ``ssl``, or by the small DER reader here when verification is off and
``getpeercert()`` returns nothing), and whether a port speaks plain HTTP instead.

Pure parsers (``parse_certificate``, ``cert_from_dict``, ``format_name``, ``interceptor_for``)
take bytes or dicts and never touch the network; the three readers (``inspect_tls``,
``tls_on_plain_scheme``, ``plain_http_answer``) each make one connection with a timeout and read
at most 4 KiB of plain HTTP or one certificate. Used by the ``latency`` probe; no findings here.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from typing import Any

from ollama_doctor import net
from ollama_doctor.target import ip_or_none

# Issuer name fragments of TLS-intercepting products (corporate gateways, antivirus, debuggers).
INTERCEPTORS: tuple[tuple[str, str], ...] = (
    ("zscaler", "Zscaler"), ("netskope", "Netskope"), ("fortinet", "Fortinet FortiGate"),
    ("fortigate", "Fortinet FortiGate"), ("palo alto", "Palo Alto Networks"),
    ("blue coat", "Blue Coat / Symantec proxy"), ("bluecoat", "Blue Coat / Symantec proxy"),
    ("forcepoint", "Forcepoint"), ("websense", "Forcepoint"), ("sophos", "Sophos"),
    ("cisco umbrella", "Cisco Umbrella"), ("check point", "Check Point"),
    ("mcafee web gateway", "McAfee Web Gateway"), ("skyhigh", "Skyhigh Security"),
    ("cloudflare for teams", "Cloudflare Zero Trust"), ("gateway ca - cloudflare", "Cloudflare "
     "Zero Trust"), ("kaspersky", "Kaspersky"), ("eset", "ESET"), ("avast", "Avast"),
    ("avg ", "AVG"), ("bitdefender", "Bitdefender"), ("mitmproxy", "mitmproxy"),
    ("charles proxy", "Charles Proxy"), ("do_not_trust", "Fiddler"), ("fiddler", "Fiddler"),
    ("portswigger", "Burp Suite"), ("burp", "Burp Suite"),
)


def inspect_tls(server_name: str, address: str, port: int, timeout: float,
                verify: ssl.SSLContext, *, plain_first: bool = False) -> dict[str, Any]:
    """Handshake as the client would; on a verification failure fetch the certificate without
    verification to name its issuer; on another failure check whether the port speaks plain
    HTTP. ``plain_first`` asks the plain-HTTP question before any handshake: for a port that
    stayed silent to a TLS hello (a plain server waiting for the end of a line), it answers at
    once where a handshake would wait out its timeout. Never raises."""
    info: dict[str, Any] = {"address": address, "port": port, "server_name": server_name}
    if plain_first:
        answer = plain_http_answer(server_name, address, port, timeout)
        if answer is not None:
            info.update(verified=False, plain_http=answer)
            return info
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                verify.wrap_socket(raw, server_hostname=server_name) as tls:
            cipher = tls.cipher()
            info.update(verified=True, version=tls.version(),
                        cipher=cipher[0] if cipher else None)
            cert = tls.getpeercert()
            if cert:
                info["certificate"] = cert_from_dict(cert)
            return info
    except ssl.SSLCertVerificationError as exc:
        info.update(verified=False, verify_code=exc.verify_code,
                    verify_message=exc.verify_message or str(exc))
        der = _peer_der(server_name, address, port, timeout)
        if isinstance(der, bytes):
            try:
                info["certificate"] = parse_certificate(der)
            except ValueError as bad:
                info["certificate_error"] = f"unparsable certificate: {bad}"
        elif der is not None:
            info["certificate_error"] = der
        return info
    except (OSError, ssl.SSLError) as exc:
        info.update(verified=False, handshake_error=net.classify(exc).to_dict())
    info["plain_http"] = plain_http_answer(server_name, address, port, timeout)
    return info


def tls_on_plain_scheme(server_name: str, address: str, port: int,
                        timeout: float) -> dict[str, Any]:
    """For an ``http://`` target: does the port complete a TLS handshake instead?"""
    info: dict[str, Any] = {"address": address, "port": port, "speaks_tls": False}
    der = _peer_der(server_name, address, port, timeout, info)
    if isinstance(der, bytes):
        info["speaks_tls"] = True
        try:
            info["certificate"] = parse_certificate(der)
        except ValueError as bad:
            info["certificate_error"] = f"unparsable certificate: {bad}"
    elif der is not None:
        info["handshake_error"] = der
    return info


def _peer_der(server_name: str, address: str, port: int, timeout: float,
              into: dict[str, Any] | None = None) -> bytes | str | None:
    """The peer's certificate (DER) from a handshake that verifies nothing, or an error text."""
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    sni = server_name if ip_or_none(server_name) is None else None
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                unverified.wrap_socket(raw, server_hostname=sni) as tls:
            if into is not None:
                into["version"] = tls.version()
            return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        error = net.classify(exc)
        return f"{error.kind}: {error.message}"


def plain_http_answer(server_name: str, address: str, port: int, timeout: float) -> str | None:
    """The status line the port answers to a plain-HTTP request, or ``None``."""
    host = f"[{server_name}]" if ":" in server_name else server_name
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode("latin-1", "replace").strip()
    return line[:200] if line.startswith("HTTP/") else None


def interceptor_for(issuer: str) -> str | None:
    """The TLS-intercepting product an issuer name belongs to, if it is a known one."""
    low = issuer.lower()
    return next((name for needle, name in INTERCEPTORS if needle in low), None)


# ---------------------------------------------------------------------------------------------
# Certificates: ssl's decoded form, and a small DER reader for certificates ssl will not decode
# (with verification off, ``getpeercert()`` returns an empty dict; only the DER bytes remain).

_OID_NAMES = {
    "2.5.4.3": "commonName", "2.5.4.4": "surname", "2.5.4.5": "serialNumber",
    "2.5.4.6": "countryName", "2.5.4.7": "localityName", "2.5.4.8": "stateOrProvinceName",
    "2.5.4.9": "streetAddress", "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName", "2.5.4.12": "title", "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode", "2.5.4.42": "givenName", "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "domainComponent",
}
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
          "domainComponent": "DC"}
_SAN_OID = "2.5.29.17"


def format_name(pairs: list[tuple[str, str]]) -> str:
    """``[("commonName", "x"), ("organizationName", "y")]`` → ``CN=x, O=y``."""
    return ", ".join(f"{_SHORT.get(k, k)}={v}" for k, v in pairs)


def _certificate(subject: list[tuple[str, str]], issuer: list[tuple[str, str]],
                 not_before: str | None, not_after: str | None,
                 san: list[str]) -> dict[str, Any]:
    common = next((v for k, v in subject if k == "commonName"), None)
    return {"subject": format_name(subject), "common_name": common,
            "issuer": format_name(issuer), "self_signed": subject == issuer,
            "not_before": not_before, "not_after": not_after, "san": san}


def cert_from_dict(cert: dict[str, Any]) -> dict[str, Any]:
    """``SSLSocket.getpeercert()``'s dict → this probe's certificate facts."""
    def pairs(name: Any) -> list[tuple[str, str]]:
        return [(str(k), str(v)) for rdn in name or () for k, v in rdn]

    def when(text: Any) -> str | None:
        if not text:
            return None
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                 time.gmtime(ssl.cert_time_to_seconds(str(text))))
        except ValueError:
            return str(text)

    san = [f"{'IP' if k == 'IP Address' else k}:{v}" for k, v in cert.get("subjectAltName", ())]
    return _certificate(pairs(cert.get("subject")), pairs(cert.get("issuer")),
                        when(cert.get("notBefore")), when(cert.get("notAfter")), san)


def parse_certificate(der: bytes) -> dict[str, Any]:
    """Subject, issuer, validity and subjectAltName of a DER X.509 certificate.

    Raises ``ValueError`` for anything that is not a well-formed certificate.
    """
    tag, start, end = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("not a certificate (no outer SEQUENCE)")
    tag, start, end = _tlv(der, start)
    if tag != 0x30:
        raise ValueError("no tbsCertificate")
    fields = _children(der, start, end)
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("tbsCertificate is too short")
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions…
    issuer = _name(der, fields[2])
    validity = _children(der, fields[3][1], fields[3][2])
    if len(validity) != 2:
        raise ValueError("bad validity")
    subject = _name(der, fields[4])
    san: list[str] = []
    for tag, s, e in fields[6:]:
        if tag == 0xA3:
            san = _san(der, s, e)
    return _certificate(subject, issuer, _time(der, validity[0]), _time(der, validity[1]), san)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("element runs past the end")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, s, e = _tlv(data, pos)
        if e > end:
            raise ValueError("child runs past its parent")
        out.append((tag, s, e))
        pos = e
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


_STRING_CODECS = {0x0C: "utf-8", 0x13: "latin-1", 0x16: "latin-1", 0x14: "latin-1",
                  0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _name(data: bytes, element: tuple[int, int, int]) -> list[tuple[str, str]]:
    tag, start, end = element
    if tag != 0x30:
        raise ValueError("a Name is not a SEQUENCE")
    out: list[tuple[str, str]] = []
    for set_tag, s, e in _children(data, start, end):
        if set_tag != 0x31:
            raise ValueError("a relative distinguished name is not a SET")
        for seq_tag, s2, e2 in _children(data, s, e):
            parts = _children(data, s2, e2)
            if seq_tag != 0x30 or len(parts) != 2 or parts[0][0] != 0x06:
                raise ValueError("bad attribute")
            oid = _oid(data[parts[0][1]:parts[0][2]])
            vtag, vs, ve = parts[1]
            value = data[vs:ve].decode(_STRING_CODECS.get(vtag, "latin-1"), "replace")
            out.append((_OID_NAMES.get(oid, oid), value))
    return out


def _time(data: bytes, element: tuple[int, int, int]) -> str:
    tag, start, end = element
    text = data[start:end].decode("ascii", "replace")
    if tag == 0x17 and len(text) >= 12:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18 or len(text) < 14:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("bad time")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def _san(data: bytes, start: int, end: int) -> list[str]:
    """subjectAltName entries (``DNS:…``, ``IP:…``) from the [3] extensions block."""
    out: list[str] = []
    (seq_tag, s, e), *_ = _children(data, start, end) or [(0, 0, 0)]
    if seq_tag != 0x30:
        return out
    for _, xs, xe in _children(data, s, e):
        parts = _children(data, xs, xe)
        if not parts or parts[0][0] != 0x06 or _oid(data[parts[0][1]:parts[0][2]]) != _SAN_OID:
            continue
        octets = parts[-1]
        if octets[0] != 0x04:
            continue
        names_tag, ns, ne = _tlv(data, octets[1])
        if names_tag != 0x30:
            continue
        for tag, gs, ge in _children(data, ns, ne):
            raw = data[gs:ge]
            if tag == 0x82:
                out.append("DNS:" + raw.decode("latin-1"))
            elif tag == 0x87 and len(raw) in (4, 16):
                out.append("IP:" + str(ipaddress.ip_address(raw)))
    return out
