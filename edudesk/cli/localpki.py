"""`LocalPkiService`: the demo CA's timestamping authority (RFC 3161), OCSP responder and CRL over HTTP on
127.0.0.1, for `records demo --sign`, the tests and the signing benchmark.

The protocol work is certomancer's (pyHanko's own test PKI tool): its `TimeStamper` answers timestamp
requests and its `SimpleOCSPResponder` OCSP requests, here on the keys of `pki.DemoPki`, whose certificates
point their OCSP (AIA) and CRL distribution point at this service (`DemoPki.service_url`). OCSP answers are
signed by a delegated responder (OCSPSigning, id-pkix-ocsp-nocheck) and read the CA's revocations at every
request, so a certificate revoked while the service runs is reported at once. The server runs on its own
event loop in a thread: signers call it from worker processes, from threads and from the service's loop alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from typing import Any

from aiohttp import web
from asn1crypto import keys, ocsp, tsp
from asn1crypto import x509 as asn1_x509
from certomancer.services import RevocationInfoInterface, SimpleOCSPResponder, TimeStamper, choose_signed_digest

from edudesk.core.errors import EdudeskError
from edudesk.core.signing.pki import OCSP_NAME, TSA_NAME, Credential, DemoPki

HOST = "127.0.0.1"
OCSP_VALIDITY = dt.timedelta(hours=12)
STOP_SECONDS = 30.0  # how long `stop` waits for the serving thread to let go of the port


def _asn1(cred: Credential) -> tuple[asn1_x509.Certificate, keys.PrivateKeyInfo]:
    return asn1_x509.Certificate.load(cred.der), keys.PrivateKeyInfo.load(cred.key_der)


class _Revocations(RevocationInfoInterface):  # type: ignore[misc]
    """certomancer's view of the demo CA's revocations, read live."""

    def __init__(self, pki: DemoPki, issuer: asn1_x509.Certificate) -> None:
        self.pki, self.issuer = pki, issuer

    def get_issuer_cert(self) -> asn1_x509.Certificate:
        """The CA whose certificates this responder answers for."""
        return self.issuer

    def check_revocation_status(self, cid: ocsp.CertId, at_time: dt.datetime) -> tuple[ocsp.CertStatus, list[Any]]:
        """good, revoked (since when) or unknown (not issued by this CA)."""
        serial = cid["serial_number"].native
        if self.pki.directory is not None and not any(c.serial == serial for c in self.pki.issued):
            saved = DemoPki.load(self.pki.directory)  # issued meanwhile by another handle on the same demo folder
            self.pki.issued, self.pki.revoked = saved.issued, {**saved.revoked, **self.pki.revoked}
        when = self.pki.revoked.get(serial)
        if when is not None and when <= at_time:
            return ocsp.CertStatus(name="revoked", value={"revocation_time": when,
                                                          "revocation_reason": "key_compromise"}), []
        if any(c.serial == serial for c in self.pki.issued):
            return ocsp.CertStatus(name="good", value=None), []
        return ocsp.CertStatus(name="unknown", value=None), []


class LocalPkiService:
    """The demo CA's TSA, OCSP and CRL on 127.0.0.1 (`start` binds, sets `pki.service_url`, serves in a thread)."""

    def __init__(self, pki: DemoPki) -> None:
        self.pki = pki
        self.tsa: Credential | None = None
        self.responder: Credential | None = None
        self._stamper: Any = None  # certomancer's TimeStamper, made on the first request
        self.tsa_down = False  # a test (or a demo) makes the TSA answer 503 while this is set
        self.requests = {"tsa": 0, "ocsp": 0, "crl": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The service's base URL (what the certificates name)."""
        return self.pki.service_url

    @property
    def tsa_url(self) -> str:
        """Where `[records] tsa_url` points for this service."""
        return f"{self.url}/tsa"

    def start(self) -> LocalPkiService:
        """Bind the CA's port (a free one the first time), make the TSA certificate if needed, serve."""
        port = int(self.pki.service_url.rsplit(":", 1)[1]) if self.pki.service_url else 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            sock.close()
            raise EdudeskError(f"Không mở được dịch vụ TSA/OCSP thử nghiệm trên cổng {HOST}:{port} ({exc.strerror}); "
                               "hãy tắt chương trình đang dùng cổng đó rồi chạy lại.", code="localpki_port") from None
        if not self.pki.service_url:
            self.pki.service_url = f"http://{HOST}:{sock.getsockname()[1]}"
            if self.pki.directory is not None:
                self.pki.save(self.pki.directory)
        self.tsa = self._credential(TSA_NAME, self.pki.issue_tsa)
        self.responder = self._credential(OCSP_NAME, self.pki.issue_ocsp_responder)
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(sock, ready), name="edudesk-localpki", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def _credential(self, name: str, issue: Any) -> Credential:
        """The service's own certificate, issued again when the CA's service moved (a CRL URL of another port)."""
        found = self.pki.find(name)
        return found if found is not None and self.pki.crl_url.encode() in found.der else issue()

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        # Its own references: `stop` clears the service's attributes, and under load it may do so before this
        # thread has finished cleaning up (found by two CI runs at once: `self._loop` was None at close()).
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        runner = self._runner = web.AppRunner(self._app(), access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Stop serving and release the port (the CA keeps its URL: `start` binds the same port again)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_SECONDS)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> LocalPkiService:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/tsa", self._timestamp)
        app.router.add_post("/ocsp", self._ocsp)
        app.router.add_get("/crl/demo.crl", self._crl)
        return app

    async def _timestamp(self, request: web.Request) -> web.Response:
        if self.tsa_down:
            raise web.HTTPServiceUnavailable()
        self.requests["tsa"] += 1
        if self._stamper is None:
            assert self.tsa is not None
            cert, key = _asn1(self.tsa)
            self._stamper = TimeStamper(cert, key, certs_to_embed=[asn1_x509.Certificate.load(self.pki.root_der)])
        reply = self._stamper.request_tsa_response(tsp.TimeStampReq.load(await request.read()))
        return web.Response(body=reply.dump(), content_type="application/timestamp-reply")

    async def _ocsp(self, request: web.Request) -> web.Response:
        self.requests["ocsp"] += 1
        assert self.responder is not None
        cert, key = _asn1(self.responder)
        responder = SimpleOCSPResponder(cert, key, choose_signed_digest("sha256", cert.public_key),
                                        at_time=dt.datetime.now(dt.UTC), validity=OCSP_VALIDITY,
                                        revinfo_interface=_Revocations(self.pki, asn1_x509.Certificate.load(
                                            self.pki.root_der)))
        reply = responder.build_ocsp_response(ocsp.OCSPRequest.load(await request.read()))
        return web.Response(body=reply.dump(), content_type="application/ocsp-response")

    async def _crl(self, request: web.Request) -> web.Response:
        self.requests["crl"] += 1
        return web.Response(body=self.pki.crl(days=1), content_type="application/pkix-crl")

