#!/usr/bin/env python3
"""Interop check for authd with non-Rust, unrelated client libraries.

Proves two things against a running authd (started by scripts/interop-check):

1. gRPC server reflection is enough for a generic client: the service, its methods and every
   message type are discovered at run time with grpcio-reflection's
   ProtoReflectionDescriptorDatabase and protobuf's descriptor_pool / message_factory. There are
   no generated stubs and no .proto file here; calls go through channel.unary_unary with the
   serializers of the dynamically built classes.
2. An unrelated JWT library (PyJWT) validates authd's access token starting from the issuer URL
   alone: OpenID configuration -> jwks_uri -> PyJWKClient; the JWK Set answers a conditional
   request with 304. With --node-dir, Node's jose (createRemoteJWKSet) does the same. The key
   type, the token's alg and discovery's algorithms are those of --alg (AUTHD_SIGNING_ALG:
   EdDSA, ES256 or RS256), and both libraries refuse algorithm confusion: PyJWT the genuine
   token under any other algorithm, both the token re-signed as HS256 with the public key as
   the HMAC secret.
3. Error details decode with reflection only: the google.rpc.BadRequest in
   grpc-status-details-bin is decoded with the descriptor that reflection serves, and, with
   --grpcurl, a stock grpcurl prints the field violation.
4. Envoy's external authorization speaks Envoy's wire format: CheckRequests built with Envoy's
   own published Python protos (xds-protos, with fields authd's copy dropped set too) are
   answered with CheckResponses that Envoy's definitions decode: the identity headers for a live
   token, 401 with the Bearer challenge otherwise; and every field authd's reflection describes
   has Envoy's name, number and type. The README's Envoy configuration parses as Envoy's
   Bootstrap (and its jwt_authn filter as an HttpFilter) with Envoy's schema; its Istio
   resources are YAML.
5. /metrics parses with the Prometheus Python client's parsers, both the Prometheus text format
   (a plain scrape) and OpenMetrics (what Prometheus asks for), with the gRPC ecosystem's
   families and labels, process_* and authd_build_info.

It runs the whole account flow (signup, verification from the mail in authd's log, login,
introspection, refresh, logout, password reset) and checks the status codes of the contract.
With --tokens-only (how scripts/interop-check runs it against its ES256 and RS256 servers) it
stops after the token checks of 2: reflection, discovery, signup, verification, login, the JWK
Set, PyJWT, jose and the negative cases.

Each check prints one line; the last line is `N passed, M failed`. Exit status 1 on any failure.

Python 3.11; the pinned dependencies are in requirements.txt next to this file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, Callable

import grpc
import jwt
import yaml
from envoy.config.core.v3 import base_pb2 as envoy_base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401 (Any types)
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import descriptor_pool, json_format, message_factory
from cryptography.hazmat.primitives import serialization
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status
from jwt.utils import base64url_decode, base64url_encode
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as prometheus_families

AUTH_SERVICE = "auth.v1.AuthService"
HEALTH_SERVICE = "grpc.health.v1.Health"
CALL_TIMEOUT = 15.0  # seconds per RPC (argon2id hashing is deliberately slow)

# The contract's AuthService (docs api.md): RPC -> (request fields, response fields).
CONTRACT_METHODS: dict[str, tuple[set[str], set[str]]] = {
    "Signup": ({"email", "password", "name"}, {"user"}),
    "Login": ({"email", "password", "client_id"}, set()),  # response: TokenResponse, see below
    "Refresh": ({"refresh_token"}, set()),
    "Logout": ({"refresh_token", "all_sessions"}, set()),
    "VerifyEmail": ({"token"}, {"user"}),
    "ResendVerification": ({"email"}, set()),
    "RequestPasswordReset": ({"email"}, set()),
    "ResetPassword": ({"token", "new_password"}, set()),
    "Introspect": (
        {"token"},
        {"active", "sub", "email", "sid", "jti", "iss", "aud", "exp", "iat",
         "email_verified", "token_type", "client_id"},
    ),
    "GetJwks": (set(), {"jwks_json"}),
    "WatchRevocations": ({"after_cursor"},
                         {"cursor", "session_id", "user_id", "revoked_at", "not_after"}),
}
TOKEN_RESPONSE_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in",
                         "refresh_expires_in", "user"}
USER_FIELDS = {"id", "email", "name", "email_verified", "created_at"}
GRPC_LABELS = {"grpc_type", "grpc_service", "grpc_method"}
GRPC_TYPES = {"unary", "client_stream", "server_stream", "bidi_stream", "unknown"}
PROCESS_FAMILIES = {"process_cpu_seconds", "process_resident_memory_bytes",
                    "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                    "process_start_time_seconds", "process_threads"}

# The JWK authd publishes for each AUTHD_SIGNING_ALG: its fixed members, and the byte length of
# each public member whose size the algorithm fixes (RSA: 2048-bit modulus).
SIGNING_ALGS: dict[str, tuple[dict[str, str], dict[str, int]]] = {
    "EdDSA": ({"kty": "OKP", "crv": "Ed25519"}, {"x": 32}),
    "ES256": ({"kty": "EC", "crv": "P-256"}, {"x": 32, "y": 32}),
    "RS256": ({"kty": "RSA"}, {"n": 256}),
}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MAIL_MARK = re.compile(
    r"mail \(not sent: AUTHD_MAIL_TO_LOG\) to=(?P<to>\S+) subject=(?P<subject>[^\n]*?) body="
)


# --------------------------------------------------------------------------------------------
# Reporting


class Skip(Exception):
    """A prerequisite of this check failed earlier."""


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs one check; returns its value, or None when it failed."""
        try:
            value = fn()
        except Skip as why:
            self.failed += 1
            print(f"FAIL {name}: not run, {why}", flush=True)
            return None
        except AssertionError as err:
            self.failed += 1
            print(f"FAIL {name}: {err or 'assertion failed'}", flush=True)
            return None
        except grpc.RpcError as err:
            self.failed += 1
            print(f"FAIL {name}: gRPC {err.code().name}: {err.details()}", flush=True)
            return None
        except Exception as err:  # noqa: BLE001 - any surprise is a failed check, not a crash
            self.failed += 1
            print(f"FAIL {name}: {type(err).__name__}: {err}", flush=True)
            if os.environ.get("INTEROP_DEBUG"):
                traceback.print_exc()
            return None
        self.passed += 1
        print(f"ok   {name}", flush=True)
        return value if value is not None else True


def need(*values: Any) -> None:
    if any(v is None for v in values):
        raise Skip("an earlier check it depends on failed")


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# --------------------------------------------------------------------------------------------
# gRPC through reflection only


class ReflectedService:
    """One service whose message classes are built at run time from server reflection."""

    def __init__(self, channel: grpc.Channel, pool: descriptor_pool.DescriptorPool, name: str):
        self.channel = channel
        self.descriptor = pool.FindServiceByName(name)
        self.methods = {m.name: m for m in self.descriptor.methods}

    def request_class(self, method: str):
        return message_factory.GetMessageClass(self.methods[method].input_type)

    def response_class(self, method: str):
        return message_factory.GetMessageClass(self.methods[method].output_type)

    def call(self, method: str, **fields: Any):
        m = self.methods[method]
        expect(not m.client_streaming and not m.server_streaming, f"{method} is not unary")
        request_cls = self.request_class(method)
        response_cls = self.response_class(method)
        rpc = self.channel.unary_unary(
            f"/{self.descriptor.full_name}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return rpc(request_cls(**fields), timeout=CALL_TIMEOUT)

    def stream(self, method: str, timeout: float, **fields: Any):
        """A server-streaming call: the call object (iterate it for the messages)."""
        m = self.methods[method]
        expect(m.server_streaming and not m.client_streaming, f"{method} is not server streaming")
        rpc = self.channel.unary_stream(
            f"/{self.descriptor.full_name}/{method}",
            request_serializer=self.request_class(method).SerializeToString,
            response_deserializer=self.response_class(method).FromString,
        )
        return rpc(self.request_class(method)(**fields), timeout=timeout)


def expect_code(fn: Callable[[], Any], code: grpc.StatusCode) -> grpc.RpcError:
    try:
        fn()
    except grpc.RpcError as err:
        expect(err.code() == code,
               f"expected {code.name}, got {err.code().name}: {err.details()}")
        return err
    raise AssertionError(f"expected {code.name}, the call succeeded")


def expect_refused(fn: Callable[[], Any], error: type[Exception], what: str) -> Exception:
    """The `error` that `fn` raises; any other exception propagates (and fails the check)."""
    try:
        fn()
    except error as err:
        return err
    raise AssertionError(f"accepted {what}")


def hs256_forgery(token: str, secret: bytes) -> str:
    """`token` with its header's alg swapped to HS256 (kid and typ kept, payload untouched) and
    signed with `secret` as the HMAC key: the algorithm-confusion attack, where the secret is
    key material a verifier knows anyway (its public key)."""
    head, payload, _ = token.split(".")
    header = json.loads(base64url_decode(head))
    header["alg"] = "HS256"
    signing_input = base64url_encode(json.dumps(header, separators=(",", ":")).encode()) \
        + b"." + payload.encode()
    signature = base64url_encode(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + signature).decode()


def bad_request_fields(err: grpc.RpcError) -> list[str]:
    """Field names of the google.rpc.BadRequest detail in grpc-status-details-bin."""
    status = rpc_status.from_call(err)
    expect(status is not None, "no google.rpc.Status in grpc-status-details-bin")
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def reflected_details(err: grpc.RpcError, pool: descriptor_pool.DescriptorPool) -> list[Any]:
    """The details of grpc-status-details-bin, each decoded with the descriptor of its type that
    server reflection serves (not the generated error_details_pb2). Only the google.rpc.Status
    envelope, which every gRPC library knows, comes from grpcio-status."""
    status = rpc_status.from_call(err)
    expect(status is not None, "no google.rpc.Status in grpc-status-details-bin")
    decoded = []
    for detail in status.details:
        name = detail.type_url.rsplit("/", 1)[-1]
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        message = cls()
        message.ParseFromString(detail.value)
        decoded.append(message)
    return decoded


def http_fetch(url: str, headers: dict[str, str] | None = None):
    """(status, headers, body) of a GET; a 304 or other non-2xx answer is returned, not raised."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


# --------------------------------------------------------------------------------------------
# Mails from authd's log (no SMTP server is configured)


def log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def mail_token(log_path: str, since: int, to: str, kind: str, app_url: str,
               wait: float) -> str:
    """Token of the newest `kind` mail ('verify-email' or 'reset-password') to `to` written to
    the log after byte offset `since`. Waits up to `wait` seconds for the outbox worker."""
    link = re.compile(re.escape(app_url.rstrip("/")) + "/" + re.escape(kind)
                      + r"\?token=(?P<token>[A-Za-z0-9_\-]+)")
    deadline = time.monotonic() + wait
    while True:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = ANSI.sub("", f.read().decode("utf-8", "replace"))
        marks = list(MAIL_MARK.finditer(text))
        found = None
        for i, mark in enumerate(marks):
            if mark.group("to").lower() != to.lower():
                continue
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            hit = link.search(text, mark.end(), end)
            if hit:
                found = hit.group("token")
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"no {kind} mail to {to} in {log_path} after {wait:.0f} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpc", default="127.0.0.1:56051", help="authd gRPC address")
    ap.add_argument("--http", default="127.0.0.1:59080", help="authd HTTP side port address")
    ap.add_argument("--log", required=True, help="authd's log file (mails are written there)")
    ap.add_argument("--issuer", help="expected iss (default: http://<--http>)")
    ap.add_argument("--audience", default="authd", help="expected aud")
    ap.add_argument("--app-url", default="http://localhost:3000", help="AUTHD_APP_URL")
    ap.add_argument("--access-ttl", type=int, default=900, help="AUTHD_ACCESS_TTL in seconds")
    ap.add_argument("--refresh-ttl", type=int, default=7 * 86400,
                    help="AUTHD_REFRESH_TTL in seconds")
    ap.add_argument("--mail-wait", type=float, default=20.0,
                    help="seconds to wait for a mail to appear in the log")
    ap.add_argument("--readme",
                    default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "README.md"),
                    help="the README whose Envoy and Istio YAML is checked")
    ap.add_argument("--grpcurl", help="a grpcurl binary: check what it prints of error details")
    ap.add_argument("--node-dir",
                    help="folder with verify.mjs and its node_modules (jose): verify with Node")
    ap.add_argument("--alg", choices=sorted(SIGNING_ALGS), default="EdDSA",
                    help="AUTHD_SIGNING_ALG of the server: the alg of its keys and tokens")
    ap.add_argument("--tokens-only", action="store_true",
                    help="only reflection, discovery, signup, verification, login and the "
                         "token checks (a second server, with another --alg)")
    args = ap.parse_args()
    full = not args.tokens_only
    issuer = args.issuer or f"http://{args.http}"
    # The fallback only keeps later checks meaningful if discovery fails (which fails its check).
    jwks_url = f"http://{args.http}/.well-known/jwks.json"

    r = Report()
    print(f"authd interop check: grpc={args.grpc} http={args.http} issuer={issuer} "
          f"alg={args.alg}{'' if full else ' (tokens only)'}", flush=True)
    channel = grpc.insecure_channel(args.grpc)

    # ---- 1. reflection -----------------------------------------------------------------------
    def connect():
        grpc.channel_ready_future(channel).result(timeout=10)

    connected = r.check("gRPC channel connects", connect)
    db = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(db)

    def list_v1alpha():
        need(connected)
        services = set(db.get_services())
        for s in (AUTH_SERVICE, HEALTH_SERVICE):
            expect(s in services, f"{s} missing from reflection list: {sorted(services)}")
        return services

    services = r.check("reflection v1alpha lists auth.v1.AuthService and grpc.health.v1.Health",
                       list_v1alpha)

    def list_v1():
        # grpc.reflection.v1 is wire-identical to v1alpha; only the method path differs.
        need(connected)
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        responses = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                         timeout=CALL_TIMEOUT)
        res = next(responses)
        expect(res.WhichOneof("message_response") == "list_services_response",
               f"unexpected reflection answer: {res}")
        names = {s.name for s in res.list_services_response.service}
        for s in (AUTH_SERVICE, HEALTH_SERVICE):
            expect(s in names, f"{s} missing from v1 reflection list: {sorted(names)}")
        if services:
            # Each version lists itself; everything else must be the same.
            def apps(found: set[str]) -> set[str]:
                return {n for n in found if not n.startswith("grpc.reflection.")}
            expect(apps(names) == apps(services),
                   f"v1 {sorted(names)} != v1alpha {sorted(services)}")

    r.check("reflection v1 lists the same services", list_v1)

    def describe_auth():
        need(services)
        svc = ReflectedService(channel, pool, AUTH_SERVICE)
        missing = set(CONTRACT_METHODS) - set(svc.methods)
        expect(not missing, f"methods missing: {sorted(missing)}")
        for name, (req_fields, res_fields) in CONTRACT_METHODS.items():
            m = svc.methods[name]
            got_req = {f.name for f in m.input_type.fields}
            got_res = {f.name for f in m.output_type.fields}
            expect(req_fields <= got_req, f"{name} request lacks {sorted(req_fields - got_req)}")
            expect(res_fields <= got_res, f"{name} response lacks {sorted(res_fields - got_res)}")
        token = svc.methods["Login"].output_type
        expect(token.full_name == "auth.v1.TokenResponse", f"Login returns {token.full_name}")
        got = {f.name for f in token.fields}
        expect(TOKEN_RESPONSE_FIELDS <= got, f"TokenResponse lacks {TOKEN_RESPONSE_FIELDS - got}")
        user = token.fields_by_name["user"].message_type
        got = {f.name for f in user.fields}
        expect(USER_FIELDS <= got, f"User lacks {USER_FIELDS - got}")
        expect(user.fields_by_name["created_at"].message_type.full_name
               == "google.protobuf.Timestamp", "User.created_at is not a Timestamp")
        expect(svc.methods["Introspect"].output_type.fields_by_name["aud"].is_repeated,
               "IntrospectResponse.aud is not repeated")
        return svc

    auth = r.check("reflection describes auth.v1.AuthService (all RPCs, fields, imports)",
                   describe_auth)

    def describe_health():
        need(services)
        svc = ReflectedService(channel, pool, HEALTH_SERVICE)
        expect("Check" in svc.methods, "Health has no Check")
        return svc

    health = r.check("reflection describes grpc.health.v1.Health", describe_health)

    def health_check(service: str):
        def run():
            need(health)
            res = health.call("Check", service=service)
            status_enum = health.methods["Check"].output_type.fields_by_name["status"].enum_type
            name = status_enum.values_by_number[res.status].name
            expect(name == "SERVING", f"status {name}")
        return run

    r.check('Health/Check "" is SERVING', health_check(""))
    r.check('Health/Check "auth.v1.AuthService" is SERVING', health_check(AUTH_SERVICE))

    # ---- discovery, from the issuer URL alone ---------------------------------------------------
    def discover():
        status, headers, body = http_fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
        expect(status == 200, f"HTTP {status}")
        expect(headers.get_content_type() == "application/json",
               f"Content-Type {headers.get('Content-Type')!r}")
        cache = headers.get("Cache-Control", "")
        expect("public" in cache and "max-age=" in cache, f"Cache-Control {cache!r}")
        doc = json.loads(body)
        expect(doc.get("issuer") == issuer, f"issuer {doc.get('issuer')!r} != {issuer!r}")
        expect(doc.get("id_token_signing_alg_values_supported") == [args.alg],
               f"algorithms {doc.get('id_token_signing_alg_values_supported')!r}")
        expect(doc.get("subject_types_supported") == ["public"], "subject_types_supported")
        for absent in ("authorization_endpoint", "token_endpoint", "introspection_endpoint"):
            expect(absent not in doc, f"{absent} advertised, but authd has no such HTTP endpoint")
        status, _, body = http_fetch(issuer.rstrip("/")
                                     + "/.well-known/oauth-authorization-server")
        expect(status == 200 and json.loads(body) == doc,
               "RFC 8414 metadata differs from the OpenID configuration")
        return doc

    discovered = r.check("discovery: <issuer>/.well-known/openid-configuration (and RFC 8414 "
                         f"metadata) name the issuer, jwks_uri, {args.alg}, no absent endpoints",
                         discover)
    if discovered:
        jwks_url = discovered["jwks_uri"]

    def jwks_conditional():
        need(discovered)
        status, headers, body = http_fetch(jwks_url)
        expect(status == 200, f"HTTP {status}")
        expect(headers.get("Content-Type") == "application/jwk-set+json",
               f"Content-Type {headers.get('Content-Type')!r}")
        etag = headers.get("ETag")
        expect(etag is not None and etag.startswith('"'), f"strong ETag, got {etag!r}")
        again, headers304, body304 = http_fetch(jwks_url, {"If-None-Match": etag})
        expect(again == 304, f"If-None-Match with the ETag: HTTP {again}, expected 304")
        expect(body304 == b"", "a 304 with a body")
        expect(headers304.get("ETag") == etag, "the 304 lacks the ETag")
        expect("max-age=" in headers304.get("Cache-Control", ""), "the 304 lacks Cache-Control")
        other, _, body2 = http_fetch(jwks_url, {"If-None-Match": '"something-else"'})
        expect(other == 200 and body2 == body, f"a stale ETag: HTTP {other}, expected 200")

    r.check("JWKS at jwks_uri: application/jwk-set+json, strong ETag, If-None-Match -> 304",
            jwks_conditional)

    # ---- 2. the account flow -----------------------------------------------------------------
    email = f"interop-{secrets.token_hex(6)}@example.com"
    password = "interop " + secrets.token_urlsafe(12)
    new_password = "interop new " + secrets.token_urlsafe(12)
    print(f"test account: {email}", flush=True)

    mark = log_size(args.log)

    def signup():
        need(auth)
        res = auth.call("Signup", email=email, password=password, name="Interop Check")
        expect(res.user.email == email, f"user.email {res.user.email!r}")
        expect(res.user.id != "", "empty user.id")
        expect(not res.user.email_verified, "new user is already verified")
        expect(res.user.created_at.seconds > 0, "no created_at")
        return res.user

    user = r.check("Signup creates an unverified user", signup)

    # Here and below, `if full`: what does not depend on the signing key is checked on one
    # server only (the EdDSA one), to keep the other algorithms' runs short.
    if full:
        def dup_signup():
            need(user)
            expect_code(lambda: auth.call("Signup", email=email, password=password, name="Again"),
                        grpc.StatusCode.ALREADY_EXISTS)
            expect_code(lambda: auth.call("Signup", email=email.upper(), password=password,
                                          name="Again"),
                        grpc.StatusCode.ALREADY_EXISTS)

        r.check("Signup again (same email, and upper-cased) -> ALREADY_EXISTS", dup_signup)

        def bad_email():
            need(auth)
            err = expect_code(lambda: auth.call("Signup", email="not-an-email", password=password,
                                                name="Bad"),
                              grpc.StatusCode.INVALID_ARGUMENT)
            fields = bad_request_fields(err)
            expect("email" in fields, f"BadRequest field violations {fields}, expected 'email'")
            return err

        bad_email_error = r.check("Signup with a malformed email -> INVALID_ARGUMENT with "
                                  "BadRequest{email}", bad_email)

        def bad_email_reflected():
            need(bad_email_error)
            details = reflected_details(bad_email_error, pool)
            names = [d.DESCRIPTOR.full_name for d in details]
            expect(names == ["google.rpc.BadRequest"], f"details {names}")
            expect(details[0].DESCRIPTOR.file.name == "google/rpc/error_details.proto",
                   f"served as {details[0].DESCRIPTOR.file.name}")
            fields = [v.field for v in details[0].field_violations]
            expect(fields == ["email"], f"field violations {fields}")
            expect(all(v.description for v in details[0].field_violations), "no description")

        r.check("that BadRequest decodes with the descriptor fetched through reflection "
                "(google/rpc/error_details.proto)", bad_email_reflected)

        def grpcurl_details():
            need(auth)
            if not args.grpcurl:
                raise Skip("no --grpcurl given")
            body = json.dumps({"email": "not-an-email", "password": password, "name": "Bad"})
            run = subprocess.run(
                [args.grpcurl, "-plaintext", "-max-time", "15", "-d", body, args.grpc,
                 f"{AUTH_SERVICE}/Signup"],
                capture_output=True, text=True, timeout=30)
            out = run.stdout + run.stderr
            expect(run.returncode != 0, f"grpcurl succeeded: {out}")
            expect("Code: InvalidArgument" in out, f"grpcurl printed: {out}")
            expect("type.googleapis.com/google.rpc.BadRequest" in out, f"grpcurl printed: {out}")
            expect(re.search(r'"field":\s*"email"', out) is not None,
                   f"grpcurl does not name the field violation: {out}")

        r.check("grpcurl (reflection only) prints the BadRequest field violation of a bad Signup",
                grpcurl_details)

        def unverified_login():
            need(user)
            expect_code(lambda: auth.call("Login", email=email, password=password),
                        grpc.StatusCode.PERMISSION_DENIED)

        r.check("Login before verification -> PERMISSION_DENIED", unverified_login)

    def verify_token():
        need(user)
        token = mail_token(args.log, mark, email, "verify-email", args.app_url, args.mail_wait)
        expect(len(token) == 43, f"token is {len(token)} characters, expected 43")
        return token

    vtoken = r.check("verification mail in the log holds a 43-char base64url token",
                     verify_token)

    def verify():
        need(vtoken)
        res = auth.call("VerifyEmail", token=vtoken)
        expect(res.user.id == user.id, "VerifyEmail answered another user")
        expect(res.user.email_verified, "user.email_verified is false after VerifyEmail")

    verified = r.check("VerifyEmail marks the email verified", verify)

    if full:
        def verify_again():
            need(verified)
            expect_code(lambda: auth.call("VerifyEmail", token=vtoken),
                        grpc.StatusCode.INVALID_ARGUMENT)

        r.check("VerifyEmail with the spent token -> INVALID_ARGUMENT", verify_again)

        def wrong_password():
            need(verified)
            expect_code(lambda: auth.call("Login", email=email, password="wrong " + password),
                        grpc.StatusCode.UNAUTHENTICATED)
            expect_code(lambda: auth.call("Login", email="nobody-" + email, password=password),
                        grpc.StatusCode.UNAUTHENTICATED)

        r.check("Login with a wrong password or unknown email -> UNAUTHENTICATED", wrong_password)

    def login(pw: str):
        def run():
            need(verified)
            res = auth.call("Login", email=email, password=pw)
            expect(res.token_type == "Bearer", f"token_type {res.token_type!r}")
            expect(res.expires_in == args.access_ttl, f"expires_in {res.expires_in}")
            expect(res.refresh_expires_in == args.refresh_ttl,
                   f"refresh_expires_in {res.refresh_expires_in}")
            expect(res.user.id == user.id and res.user.email_verified, "wrong user in response")
            expect(res.access_token.count(".") == 2, "access token is not a JWS")
            expect(res.refresh_token.count(".") != 2 and len(res.refresh_token) >= 43,
                   "refresh token looks like a JWT or is too short")
            return res
        return run

    tokens = r.check("Login returns a Bearer pair (900 s access, 7 d refresh)", login(password))

    if full:
        def login_client_id():
            need(verified)
            res = auth.call("Login", email=email, password=password, client_id="interop-py")
            expect(auth.call("Introspect", token=res.access_token).client_id == "interop-py",
                   "Introspect client_id")
            payload = json.loads(base64url_decode(res.access_token.split(".")[1]))
            expect(payload.get("client_id") == "interop-py", f"claim {payload.get('client_id')!r}")
            again = auth.call("Refresh", refresh_token=res.refresh_token)
            payload = json.loads(base64url_decode(again.access_token.split(".")[1]))
            expect(payload.get("client_id") == "interop-py", "Refresh lost the client_id")
            err = expect_code(lambda: auth.call("Login", email=email, password=password,
                                                client_id="not a client id"),
                              grpc.StatusCode.INVALID_ARGUMENT)
            details = reflected_details(err, pool)
            fields = [v.field for d in details for v in d.field_violations]
            expect(fields == ["client_id"], f"field violations {fields}")
            auth.call("Logout", refresh_token=again.refresh_token)

        r.check("Login with client_id: claim, Introspect and Refresh keep it; a bad one -> "
                "INVALID_ARGUMENT with BadRequest{client_id}", login_client_id)

    # ---- 3. PyJWT and jose with the public JWKS only -----------------------------------------
    fixed_members, sized_members = SIGNING_ALGS[args.alg]
    other_algs = [alg for alg in SIGNING_ALGS if alg != args.alg] + ["HS256"]

    def jwks_http():
        with urllib.request.urlopen(jwks_url, timeout=10) as res:
            expect(res.status == 200, f"HTTP {res.status}")
            cache = res.headers.get("Cache-Control", "")
            body = json.loads(res.read())
        expect("public" in cache and "max-age=" in cache, f"Cache-Control {cache!r}")
        keys = body.get("keys")
        expect(isinstance(keys, list) and keys, "no keys in the JWK Set")
        for k in keys:
            got = {name: k.get(name) for name in fixed_members}
            expect(got == fixed_members, f"unexpected key type {got}, expected {fixed_members}")
            expect(k.get("alg") == args.alg and k.get("use") == "sig",
                   f"alg {k.get('alg')!r}, use {k.get('use')!r}")
            expect("kid" in k, "a key without kid")
            for name, size in sized_members.items():
                got_size = len(base64url_decode(k.get(name, "")))
                expect(got_size == size, f"{name} is {got_size} bytes, expected {size}")
            private = PRIVATE_JWK_MEMBERS & set(k)
            expect(not private, f"the JWKS publishes private key members {sorted(private)}")
        return body

    jwks = r.check(f"GET /.well-known/jwks.json: public {args.alg} keys ({fixed_members['kty']}"
                   f"{'/' + fixed_members['crv'] if 'crv' in fixed_members else ''}, alg, "
                   "use sig, kid), cacheable", jwks_http)

    def jwks_grpc():
        need(jwks, auth)
        res = auth.call("GetJwks")
        expect(json.loads(res.jwks_json) == jwks, "GetJwks differs from the HTTP JWKS")

    r.check("GetJwks over gRPC equals the HTTP JWKS", jwks_grpc)

    def validate_jwt():
        need(tokens, jwks)
        token = tokens.access_token
        header = jwt.get_unverified_header(token)
        expect(header.get("typ") == "at+jwt", f"header typ {header.get('typ')!r}")
        expect(header.get("alg") == args.alg, f"header alg {header.get('alg')!r}")
        client = jwt.PyJWKClient(jwks_url)
        key = client.get_signing_key_from_jwt(token)
        expect(key.key_id == header.get("kid"), "signing key kid differs from the header's")
        expect(key.algorithm_name == args.alg, f"PyJWK reads the key as {key.algorithm_name}")
        claims = jwt.decode(token, key.key, algorithms=[args.alg], audience=args.audience,
                            issuer=issuer,
                            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
        expect(claims["sub"] == user.id, f"sub {claims['sub']!r} != user id {user.id!r}")
        expect(claims.get("email") == email, f"email {claims.get('email')!r}")
        expect(claims.get("email_verified") is True, "email_verified claim not true")
        expect(isinstance(claims.get("sid"), str) and claims["sid"], "no sid claim")
        expect(isinstance(claims.get("jti"), str) and claims["jti"], "no jti claim")
        expect(claims.get("client_id") == "authd", f"client_id {claims.get('client_id')!r}")
        expect(claims["exp"] - claims["iat"] == args.access_ttl,
               f"exp - iat = {claims['exp'] - claims['iat']}, expected {args.access_ttl}")
        return claims

    claims = r.check("PyJWT's PyJWKClient on the discovered jwks_uri validates the access "
                     f"token ({args.alg}, typ at+jwt, iss, aud, sub/email/sid/jti/client_id, "
                     "exp-iat=900)", validate_jwt)

    def node_verify(token: str) -> subprocess.CompletedProcess:
        """verify.mjs on `token`: jose with the algorithms and jwks_uri discovery names."""
        if not args.node_dir:
            raise Skip("no --node-dir given")
        return subprocess.run(
            ["node", os.path.join(os.path.abspath(args.node_dir), "verify.mjs"), issuer,
             args.audience, token],
            capture_output=True, text=True, timeout=30, cwd=args.node_dir)

    def node_jose():
        need(tokens, claims, discovered)
        run = node_verify(tokens.access_token)
        expect(run.returncode == 0, f"jose refused: {run.stderr.strip() or run.stdout}")
        verified = json.loads(run.stdout)
        expect(verified["claims"] == claims, "jose's claims differ from PyJWT's")
        expect(verified["header"].get("typ") == "at+jwt", f"header {verified['header']}")
        expect(verified["header"].get("alg") == args.alg, f"header {verified['header']}")

    r.check(f"Node jose: createRemoteJWKSet on the discovered jwks_uri verifies the {args.alg} "
            "token", node_jose)

    def jwt_negative():
        need(claims)
        token = tokens.access_token
        key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
        expect_refused(lambda: jwt.decode(token, key.key, algorithms=[args.alg],
                                          audience="someone-else", issuer=issuer),
                       jwt.InvalidAudienceError, "a wrong audience")
        head, payload, sig = token.split(".")
        forged = json.loads(base64url_decode(payload))
        forged["email"] = "mallory@example.com"
        forged_payload = base64url_encode(
            json.dumps(forged, separators=(",", ":")).encode()).decode()
        expect_refused(lambda: jwt.decode(f"{head}.{forged_payload}.{sig}", key.key,
                                          algorithms=[args.alg], audience=args.audience,
                                          issuer=issuer),
                       jwt.InvalidSignatureError, "a token with an altered payload")

    r.check("PyJWT rejects the token for another audience and with an altered payload",
            jwt_negative)

    def other_algorithms():
        need(claims)
        token = tokens.access_token
        key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
        for other in other_algs:
            expect_refused(lambda: jwt.decode(token, key.key, algorithms=[other],
                                              audience=args.audience, issuer=issuer),
                           jwt.InvalidAlgorithmError, f"algorithms=[{other!r}]")

    r.check(f"PyJWT refuses the genuine {args.alg} token when algorithms names only "
            f"{', '.join(other_algs)}", other_algorithms)

    def hs256_confusion():
        need(claims, jwks, discovered)
        token = tokens.access_token
        key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
        jwk = next(k for k in jwks["keys"] if k["kid"] == key.key_id)
        pem = key.key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        # Control: PyJWT takes such a forgery (under a plain secret: it will not take a PEM or a
        # JWK as an HMAC secret) as a valid HS256 token, so the refusals below are about the alg.
        plain = secrets.token_bytes(32)
        control = jwt.decode(hs256_forgery(token, plain), plain, algorithms=["HS256"],
                             audience=args.audience, issuer=issuer)
        expect(control == claims, "the control forgery's claims differ")
        for material, secret in (("the public key's PEM", pem),
                                 ("the published JWK", json.dumps(jwk).encode())):
            forged = hs256_forgery(token, secret)
            expect(jwt.get_unverified_header(forged)["kid"] == key.key_id, "kid lost")
            # The verifier as configured above: the JWK Set's key and algorithms=[alg].
            expect_refused(lambda: jwt.decode(forged, key.key, algorithms=[args.alg],
                                              audience=args.audience, issuer=issuer),
                           jwt.InvalidAlgorithmError, f"HS256 keyed with {material}")
            # The PyJWK itself, no algorithms list: the JWK's alg binds the key.
            bound = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(forged)
            expect_refused(lambda: jwt.decode(forged, bound, audience=args.audience,
                                              issuer=issuer),
                           jwt.InvalidAlgorithmError, f"HS256 keyed with {material} (PyJWK)")
            run = node_verify(forged)
            expect(run.returncode != 0, f"jose accepted HS256 keyed with {material}")
            reason = run.stderr.strip()
            # verify.mjs's algorithms list stops it first (JOSEAlgNotAllowed); without that
            # list the JWK Set has no key for HS256 (JOSENotSupported, JWKSNoMatchingKey).
            expect(reason.split(":")[0] in ("JOSEAlgNotAllowed", "JOSENotSupported",
                                            "JWKSNoMatchingKey"),
                   f"jose refused HS256 keyed with {material}, but not for its alg: {reason}")

    r.check(f"algorithm confusion: the {args.alg} token re-signed as HS256 with the public key "
            "(PEM, JWK) as HMAC secret is refused by PyJWT (algorithms=[alg], and a bare PyJWK) "
            "and by jose", hs256_confusion)

    if not full:  # the rest (introspection, ext_authz, sessions, reset, /metrics): key-agnostic
        channel.close()
        print(f"{r.passed} passed, {r.failed} failed", flush=True)
        return 1 if r.failed else 0

    # ---- 4. introspection, refresh, logout ---------------------------------------------------
    def introspect_active():
        need(tokens, claims)
        res = auth.call("Introspect", token=tokens.access_token)
        expect(res.active, "active is false for a fresh access token")
        expect(res.sub == user.id, f"sub {res.sub!r}")
        expect(res.email == email, f"email {res.email!r}")
        expect(res.sid == claims["sid"], "sid differs from the JWT's")
        expect(res.jti == claims["jti"], "jti differs from the JWT's")
        expect(res.iss == issuer, f"iss {res.iss!r}")
        expect(list(res.aud) == [args.audience], f"aud {list(res.aud)!r}")
        expect(res.exp == claims["exp"] and res.iat == claims["iat"], "exp/iat differ")
        expect(res.email_verified, "email_verified false")
        expect(res.token_type == "Bearer", f"token_type {res.token_type!r}")
        expect(res.client_id == claims["client_id"], f"client_id {res.client_id!r}")

    r.check("Introspect: the access token is active, fields match the JWT", introspect_active)

    def introspect_garbage():
        need(auth)
        for junk in ("", "not-a-token", tokens.refresh_token if tokens else "x.y.z"):
            res = auth.call("Introspect", token=junk)
            expect(not res.active, f"{junk[:12]!r}… is active")
            expect(res.sub == "" and res.email == "" and res.sid == "",
                   "an inactive answer carries claims")

    r.check("Introspect of junk / a refresh token -> active=false, no error", introspect_garbage)

    # ---- Envoy ext_authz, with Envoy's own protos (xds-protos), not authd's copy -------------
    envoy = external_auth_pb2_grpc.AuthorizationStub(channel)
    overwrite = envoy_base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    identity = ("x-authd-user-id", "x-authd-session-id", "x-authd-email")

    def envoy_request(headers: dict[str, str], raw: bool = False):
        ctx = attribute_context_pb2.AttributeContext()
        http = ctx.request.http
        http.id, http.method, http.path, http.host = "req-1", "GET", "/habits", "api.example"
        if raw:  # encode_raw_headers: true
            http.header_map.headers.extend(
                envoy_base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items())
        else:
            http.headers.update(headers)
        # Fields authd's copy leaves out, as Envoy fills them: they must be skipped.
        ctx.source.address.socket_address.address = "10.0.0.7"
        ctx.source.address.socket_address.port_value = 40000
        ctx.context_extensions["route"] = "habits"
        ctx.request.time.GetCurrentTime()
        return external_auth_pb2.CheckRequest(attributes=ctx)

    def envoy_denied(res, what: str) -> None:
        expect(res.status.code == grpc.StatusCode.UNAUTHENTICATED.value[0],
               f"{what}: status {res.status.code}")
        expect(res.WhichOneof("http_response") == "denied_response", f"{what}: not denied")
        expect(res.denied_response.status.code == http_status_pb2.Unauthorized,
               f"{what}: HTTP {res.denied_response.status.code}")
        headers = [(h.header.key, h.header.value) for h in res.denied_response.headers]
        expect(headers == [("www-authenticate", 'Bearer error="invalid_token"')],
               f"{what}: headers {headers}")

    def ext_authz_ok():
        need(tokens, claims, user)
        for raw in (False, True):
            sent = {"authorization": f"Bearer {tokens.access_token}",
                    "x-authd-user-id": "someone-else"}
            res = envoy.Check(envoy_request(sent, raw), timeout=CALL_TIMEOUT)
            form = "header_map" if raw else "headers"
            expect(res.status.code == 0, f"{form}: status {res.status}")
            expect(res.WhichOneof("http_response") == "ok_response", f"{form}: not ok_response")
            got = {h.header.key: (h.header.value, h.append_action) for h in res.ok_response.headers}
            want = {"x-authd-user-id": (user.id, overwrite),
                    "x-authd-session-id": (claims["sid"], overwrite),
                    "x-authd-email": (email, overwrite)}
            expect(got == want, f"{form}: headers {got}")
            # Envoy removes after it sets: listing them would strip authd's own values.
            expect(not set(res.ok_response.headers_to_remove) & set(identity),
                   f"{form}: headers_to_remove {list(res.ok_response.headers_to_remove)}")

    r.check("ext_authz Check (Envoy's protos): a live token -> OK with the identity headers",
            ext_authz_ok)

    def ext_authz_denied():
        need(tokens)
        basic = base64url_encode(b"ada:secret").decode()
        for what, headers in (("no header", {}), ("garbage", {"authorization": "Bearer x.y.z"}),
                              ("Basic", {"authorization": f"Basic {basic}"}),
                              ("refresh token",
                               {"authorization": f"Bearer {tokens.refresh_token}"})):
            envoy_denied(envoy.Check(envoy_request(headers), timeout=CALL_TIMEOUT), what)

    r.check("ext_authz Check (Envoy's protos): bad tokens -> 401 + www-authenticate",
            ext_authz_denied)

    def ext_authz_descriptors():
        need(connected)
        seen: set[str] = set()

        def compare(ours, theirs) -> None:
            if ours.full_name in seen:
                return
            seen.add(ours.full_name)
            expect(ours.full_name == theirs.full_name, f"{ours.full_name} vs {theirs.full_name}")
            for field in ours.fields:
                other = theirs.fields_by_number.get(field.number)
                where = f"{ours.full_name}.{field.name} = {field.number}"
                expect(other is not None, f"{where}: not in Envoy's definition")
                expect(other.name == field.name and other.type == field.type
                       and other.is_repeated == field.is_repeated,
                       f"{where}: Envoy has {other.name} type {other.type}")
                if field.message_type is not None:
                    compare(field.message_type, other.message_type)
                if field.enum_type is not None:
                    for value in field.enum_type.values:
                        theirs_value = other.enum_type.values_by_number.get(value.number)
                        expect(theirs_value is not None and theirs_value.name == value.name,
                               f"{field.enum_type.full_name}.{value.name}")

        ours = pool.FindServiceByName("envoy.service.auth.v3.Authorization")
        theirs = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
        method = ours.FindMethodByName("Check")
        compare(method.input_type, theirs.methods_by_name["Check"].input_type)
        compare(method.output_type, theirs.methods_by_name["Check"].output_type)
        expect(len(seen) >= 8, f"only {len(seen)} messages compared")

    r.check("ext_authz: every reflected field has Envoy's name, number and type",
            ext_authz_descriptors)

    def refresh():
        need(tokens)
        res = auth.call("Refresh", refresh_token=tokens.refresh_token)
        expect(res.refresh_token != tokens.refresh_token, "refresh token not rotated")
        expect(res.access_token != tokens.access_token, "same access token")
        expect(res.token_type == "Bearer" and res.expires_in == args.access_ttl,
               "bad token_type / expires_in")
        key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(res.access_token)
        new_claims = jwt.decode(res.access_token, key.key, algorithms=[args.alg],
                                audience=args.audience, issuer=issuer)
        expect(new_claims["sid"] == claims["sid"], "refresh moved to another session")
        expect(new_claims["jti"] != claims["jti"], "refreshed token reuses the jti")
        return res

    refreshed = r.check("Refresh rotates the pair within the same session (PyJWT-valid)",
                        refresh)

    def logout():
        need(refreshed)
        auth.call("Logout", refresh_token=refreshed.refresh_token)

    logged_out = r.check("Logout with the newest refresh token", logout)

    def introspect_inactive():
        need(logged_out)
        for label, tok in (("login", tokens.access_token), ("refreshed", refreshed.access_token)):
            res = auth.call("Introspect", token=tok)
            expect(not res.active, f"the {label} access token is still active after Logout")
            expect(res.sub == "" and res.jti == "", "inactive answer carries claims")

    r.check("Introspect after Logout -> active=false for the session's access tokens",
            introspect_inactive)

    def readme_envoy_yaml():
        with open(args.readme, encoding="utf-8") as f:
            readme = f.read()
        start = readme.index("## Envoy and Istio")
        section = readme[start:readme.index("\n## ", start + 1)]
        blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
        expect(len(blocks) == 3, f"{len(blocks)} YAML blocks in the section")
        docs = [list(yaml.safe_load_all(block)) for block in blocks]
        # Unknown fields or @type names fail here: the schema is Envoy's own.
        bootstrap = json_format.ParseDict(docs[0][0], bootstrap_pb2.Bootstrap())
        expect({c.name for c in bootstrap.static_resources.clusters} == {"authd", "app"},
               "clusters")
        jwt_filters = docs[2][0]
        for entry in jwt_filters:
            json_format.ParseDict(entry, hcm_pb2.HttpFilter())
        kinds = [d["kind"] for d in docs[1]] + [docs[2][1]["kind"]]
        expect(kinds == ["IstioOperator", "AuthorizationPolicy", "RequestAuthentication"],
               f"Istio kinds {kinds}")

    r.check("README: the Envoy config parses with Envoy's schema, the Istio YAML loads",
            readme_envoy_yaml)

    def ext_authz_logged_out():
        need(logged_out)
        res = envoy.Check(envoy_request({"authorization": f"Bearer {refreshed.access_token}"}),
                          timeout=CALL_TIMEOUT)
        envoy_denied(res, "logged out")

    r.check("ext_authz Check after Logout -> 401 for the session's token", ext_authz_logged_out)

    def refresh_after_logout():
        need(logged_out)
        expect_code(lambda: auth.call("Refresh", refresh_token=refreshed.refresh_token),
                    grpc.StatusCode.UNAUTHENTICATED)

    r.check("Refresh with the logged-out refresh token -> UNAUTHENTICATED", refresh_after_logout)

    def watch_revocations():
        need(logged_out)
        call = auth.stream("WatchRevocations", timeout=5.0, after_cursor=0)
        backlog_end = dict(call.initial_metadata()).get("x-authd-backlog-end")
        expect(backlog_end is not None and int(backlog_end) > 0, f"backlog end {backlog_end!r}")
        seen = []
        for revocation in call:
            seen.append(revocation)
            if revocation.cursor >= int(backlog_end):
                break
        call.cancel()
        mine = [x for x in seen if x.session_id == claims["sid"]]
        expect(len(mine) == 1, f"the logged-out session appears {len(mine)} times")
        x = mine[0]
        expect(x.user_id == claims["sub"], "revocation names another user")
        expect(x.not_after.seconds - x.revoked_at.seconds <= args.access_ttl,
               "not_after is later than the last access token can expire")
        expect(x.not_after.seconds >= claims["exp"], "not_after is before the token expires")
        expect_code(lambda: next(iter(auth.stream("WatchRevocations", timeout=5.0,
                                                   after_cursor=-1))),
                    grpc.StatusCode.INVALID_ARGUMENT)

    r.check("WatchRevocations (reflection only): the logged-out session is in the backlog, once",
            watch_revocations)

    # ---- 5. password reset -------------------------------------------------------------------
    other = r.check("Login again (a session the reset must end)", login(password))

    def unknown_reset():
        need(auth)
        auth.call("RequestPasswordReset", email="nobody-" + email)

    r.check("RequestPasswordReset for an unknown email -> OK (same answer)", unknown_reset)

    reset_mark = log_size(args.log)

    def request_reset():
        need(verified)
        auth.call("RequestPasswordReset", email=email)

    requested = r.check("RequestPasswordReset", request_reset)

    def reset_token():
        need(requested)
        token = mail_token(args.log, reset_mark, email, "reset-password", args.app_url,
                           args.mail_wait)
        expect(len(token) == 43, f"token is {len(token)} characters, expected 43")
        return token

    rtoken = r.check("reset mail in the log holds a 43-char base64url token", reset_token)

    def reset():
        need(rtoken)
        auth.call("ResetPassword", token=rtoken, new_password=new_password)

    was_reset = r.check("ResetPassword", reset)

    def reset_again():
        need(was_reset)
        expect_code(lambda: auth.call("ResetPassword", token=rtoken,
                                      new_password=new_password + "x"),
                    grpc.StatusCode.INVALID_ARGUMENT)

    r.check("ResetPassword with the spent token -> INVALID_ARGUMENT", reset_again)

    def reset_ended_sessions():
        need(was_reset, other)
        res = auth.call("Introspect", token=other.access_token)
        expect(not res.active, "a session from before the reset is still active")

    r.check("ResetPassword ended the earlier session (Introspect active=false)",
            reset_ended_sessions)

    def old_password():
        need(was_reset)
        expect_code(lambda: auth.call("Login", email=email, password=password),
                    grpc.StatusCode.UNAUTHENTICATED)

    r.check("Login with the old password -> UNAUTHENTICATED", old_password)

    def new_login():
        need(was_reset)
        res = login(new_password)()
        key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(res.access_token)
        jwt.decode(res.access_token, key.key, algorithms=[args.alg], audience=args.audience,
                   issuer=issuer)
        expect(auth.call("Introspect", token=res.access_token).active, "new session inactive")

    r.check("Login with the new password (token PyJWT-valid, active)", new_login)

    # ---- 6. /metrics with the Prometheus Python client ------------------------------------
    metrics_url = f"http://{args.http}/metrics"

    def scrape(accept: str | None) -> tuple[str, str]:
        request = urllib.request.Request(metrics_url)
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=10) as res:
            expect(res.status == 200, f"HTTP {res.status}")
            return res.headers.get("Content-Type", ""), res.read().decode("utf-8")

    def check_families(families: dict[str, Any], build_family: str) -> None:
        for name in ("grpc_server_started", "grpc_server_handled", "grpc_server_msg_received",
                     "grpc_server_msg_sent", "grpc_server_handling_seconds"):
            expect(name in families, f"family {name} missing")
        handled = families["grpc_server_handled"]
        expect(handled.type == "counter", f"grpc_server_handled is a {handled.type}")
        for sample in handled.samples:
            expect(set(sample.labels) == GRPC_LABELS | {"grpc_code"},
                   f"grpc_server_handled labels {sorted(sample.labels)}")
            expect(sample.labels["grpc_type"] in GRPC_TYPES,
                   f"grpc_type {sample.labels['grpc_type']!r}")
            expect(sample.labels["grpc_code"] in grpc.StatusCode.__members__,
                   f"grpc_code {sample.labels['grpc_code']!r} is not a canonical code name")

        def value(family: str, sample_name: str, **labels: str) -> float:
            for sample in families[family].samples:
                if sample.name == sample_name and sample.labels == labels:
                    return sample.value
            raise AssertionError(f"no {sample_name}{labels}")

        login = {"grpc_type": "unary", "grpc_service": AUTH_SERVICE, "grpc_method": "Login"}
        ok_logins = value("grpc_server_handled", "grpc_server_handled_total",
                          grpc_code="OK", **login)
        expect(ok_logins >= 2, f"{ok_logins} Login calls handled OK, expected at least 2")
        denied = value("grpc_server_handled", "grpc_server_handled_total",
                       grpc_code="UNAUTHENTICATED", **login)
        expect(denied >= 2, f"{denied} Login calls handled UNAUTHENTICATED")
        reflection = {"grpc_type": "bidi_stream",
                      "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
                      "grpc_method": "ServerReflectionInfo"}
        expect(value("grpc_server_started", "grpc_server_started_total", **reflection) >= 1,
               "reflection calls not counted as bidi_stream")
        histogram = families["grpc_server_handling_seconds"]
        expect(histogram.type == "histogram", f"handling_seconds is a {histogram.type}")
        expect(value("grpc_server_handling_seconds", "grpc_server_handling_seconds_count",
                     **login) >= 4, "Login handling times not observed")
        for name in PROCESS_FAMILIES:
            expect(name in families, f"family {name} missing")
        expect(value("process_resident_memory_bytes", "process_resident_memory_bytes") > 0,
               "process_resident_memory_bytes is 0")
        build = [s for s in families[build_family].samples if s.name == "authd_build_info"]
        expect(len(build) == 1 and build[0].value == 1 and build[0].labels.get("version"),
               f"authd_build_info samples {build}")
        for name in ("authd_mail_sent", "authd_mail_logged", "authd_mail_failures",
                     "authd_mail_undeliverable", "authd_audit_dropped", "authd_database_up"):
            expect(name in families, f"family {name} missing")

    def metrics_prometheus_text():
        content_type, body = scrape(None)
        expect(content_type.startswith("text/plain; version=0.0.4"),
               f"Content-Type {content_type!r}")
        families = {f.name: f for f in prometheus_families(body)}
        check_families(families, "authd_build_info")

    r.check("/metrics (plain scrape) parses as Prometheus text with the gRPC ecosystem's "
            "families and labels, process_* and authd_build_info", metrics_prometheus_text)

    def metrics_openmetrics():
        content_type, body = scrape(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3")
        expect(content_type.startswith("application/openmetrics-text; version=1.0.0"),
               f"Content-Type {content_type!r}")
        families = {f.name: f for f in openmetrics_families(body)}
        expect(families["authd_build"].type == "info", "authd_build is not an info metric")
        check_families(families, "authd_build")

    r.check("/metrics (Accept: OpenMetrics) parses with the strict OpenMetrics parser",
            metrics_openmetrics)

    channel.close()
    print(f"{r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
