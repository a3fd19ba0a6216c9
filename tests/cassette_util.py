"""vcrpy cassettes of the hosted backends: recording, scrubbing, replaying, checking (tests only).

    from cassette_util import make_vcr, cassette_dir, record_mode, interactions

* ``make_vcr(provider, mode)`` -- a ``vcr.VCR`` for ``cassettes/<provider>/`` that matches on
  method + path + query (never the host: replays run against a closed port) and, for JSON
  request bodies, on the body (so a cassette also pins what ftc *sends*; volatile keys
  such as ``metadata.ftc_job_id``, which carries the date, are ignored). Recording scrubs
  with :class:`Scrubber`; replaying (``record_mode="none"``) fails loudly on any request
  the cassette does not hold.
* ``record_mode()`` -- ``$FTC_RECORD_CASSETTES``: ``None`` (replay only), ``"emulator"``
  (``1``: re-record from tests/emulator.py) or ``"live"`` (the real APIs, real keys).
* ``interactions(path)`` -- the recorded (method, url path, status, parsed JSON body or
  None) of a cassette, for the schema and secrets checks.
* ``spec_template(provider, method, path)`` -- the official OpenAPI path template a
  recorded URL path belongs to (``/v1/fine_tuning/jobs/ftjob-1/events`` ->
  ``("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events")``), from the emulator's route
  table; None for the Together SDK's upload steps that the document does not describe.
  (Fireworks, which has no OpenAPI document: ``("fireworks", <SDK type name>)``.)
* Shared by the flow modules (tests/test_cassettes.py, tests/test_cassettes_fireworks.py):
  ``Clock`` (the retry policy's instant clock), ``caught``, ``FixedUuid`` (job ids and
  client tokens that are the same at recording and replay), ``closed_port``, ``write_data``
  (the fixed data files).

See docs/testing-providers.md, "Re-recording cassettes".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
CASSETTES = REPO / "cassettes"

#: Request headers that never reach a cassette.
SCRUB_HEADERS = ["authorization", "cookie", "openai-organization", "openai-project", "x-api-key",
                 "proxy-authorization"]
#: Response headers dropped (whole).
_DROP_RESPONSE_HEADERS = ("set-cookie", "cookie", "openai-organization", "openai-project", "x-api-key",
                          "authorization", "www-authenticate")
#: Query parameters of presigned URLs (Together's upload Location) that are credentials.
_SECRET_QUERY = {"token", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                 "x-goog-signature", "x-goog-credential", "sig", "se", "st", "sv", "sp"}

REDACTED_KEY = "REDACTED-KEY"
REDACTED_ORG = "org-redacted"
REDACTED_PROJECT = "proj_redacted"
REDACTED_USER = "redacted-user"
#: What a Fireworks account id becomes (a valid id: the backend still parses the names).
REDACTED_ACCOUNT = "redacted-account"
#: Fireworks' own account (its public base models): not the user's, kept.
PUBLIC_ACCOUNTS = {"fireworks", REDACTED_ACCOUNT}

#: What a key (or a credential) looks like; the secrets test greps every cassette with it.
KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9*_-]{3,}"      # OpenAI (sk-, sk-proj-, the masked sk-***abcd of a 401)
    r"|tgp_v1_[A-Za-z0-9_-]+"                      # Together
    r"|Bearer\s+\S+"
    r"|(?<![A-Za-z0-9])(?:fw|hf)_[A-Za-z0-9]{8,}"
)
_ORG = re.compile(r"(?<![A-Za-z0-9])org-(?!redacted\b)[A-Za-z0-9]{3,}")
_PROJECT = re.compile(r"(?<![A-Za-z0-9])proj_(?!redacted\b)[A-Za-z0-9]{3,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# ft:<base model>:<org slug>:<suffix>:<id>[:ckpt-step-N]: the org slug names the account.
_FT_MODEL = re.compile(r"\bft:([^:\"'\s]+):(?!redacted-org:)([^:\"'\s]+):")
# Fireworks resource names: accounts/<account id>/... (the id: lowercase letters, digits, dashes).
_FW_ACCOUNT = re.compile(r"(?<![A-Za-z0-9_-])accounts/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?![A-Za-z0-9_-])")

#: JSON keys whose values identify the account (Together).
_ACCOUNT_KEYS = {"user_id": REDACTED_USER, "owner_address": "0x" + "0" * 40, "organization_id": REDACTED_ORG,
                 "wandb_url": "", "wandb_api_key": "", "hf_api_token": ""}

#: Keys of a Fireworks ``Account`` object (``{"name": "accounts/<id>", ...}``) that name the user.
_FW_ACCOUNT_OBJECT_KEYS = {"displayName": REDACTED_ACCOUNT, "email": "user@example.com"}

#: Keys of JSON request bodies that differ between a recording and a replay of the same flow
#: (the job id carries the date; the client token is random unless a test fixes it -- where it
#: matters, the OpenAI listing's query carries it and is matched).
VOLATILE_BODY_KEYS = {"ftc_job_id", "ftc_client_token"}


def record_mode() -> str | None:
    """``None`` (replay), ``"emulator"`` or ``"live"``, from ``$FTC_RECORD_CASSETTES``."""
    v = (os.environ.get("FTC_RECORD_CASSETTES") or "").strip().lower()
    if v in ("", "0", "no", "false"):
        return None
    if v == "live":
        return "live"
    if v in ("1", "emulator", "yes", "true"):
        return "emulator"
    raise ValueError(f"FTC_RECORD_CASSETTES={v!r}: use 1 (the emulator) or live (the real APIs)")


def cassette_dir(provider: str) -> Path:
    return CASSETTES / provider


class Scrubber:
    """Removes credentials and account identifiers from requests and responses.

    Static rules: the headers above, anything :data:`KEY_LIKE`, ``org-...``/``proj_...`` ids,
    e-mail addresses, the org slug inside ``ft:`` model names, Together's account fields
    (``user_id``, ``owner_address``...), credential query parameters of presigned URLs.
    Learned values (``secrets``): every ``*_API_KEY`` in the environment, the emulator's
    key, the ``openai-organization``/``openai-project`` header values, and the user prefix
    of Together's ``model_output_name`` -- each replaced wherever it appears later.

    Fireworks: every account id seen in a resource name (``accounts/<id>/...``, in a URL
    path or a body; ``fireworks``, the public models' account, aside), ``$FIREWORKS_ACCOUNT_ID``
    and ``accounts`` are learned and become :data:`REDACTED_ACCOUNT` wherever they stand as
    a whole id (the account's ``displayName`` too, and its e-mail as any e-mail); an
    ``Account`` object's ``displayName``/``email`` are replaced whatever they say; signed
    URLs inside JSON bodies lose their credential query parameters as in a ``Location``.
    A replay therefore uses the account ``redacted-account`` (its paths match the recording);
    it scrubs with ``learn_accounts=False``, so that a request for any other account is not
    rewritten into a match but fails as a request the cassette does not hold.
    """

    def __init__(self, extra_secrets: Iterable[str] = (), accounts: Iterable[str] = (), *,
                 learn_accounts: bool = True):
        self.secrets: dict[str, str] = {}
        self.accounts: dict[str, re.Pattern] = {}
        self.learn_accounts = learn_accounts
        for k, v in os.environ.items():
            if k.endswith("_API_KEY") and len(v.strip()) >= 8:
                self.secrets[v.strip()] = REDACTED_KEY
        for s in extra_secrets:
            if s and len(s) >= 4:
                self.secrets[s] = REDACTED_KEY
        for a in ((os.environ.get("FIREWORKS_ACCOUNT_ID", ""),) if learn_accounts else ()) + tuple(accounts):
            self.learn_account(a.strip())

    def learn_account(self, account: str) -> None:
        """A Fireworks account id to replace wherever it stands as a whole id."""
        if account and account not in PUBLIC_ACCOUNTS and account not in self.accounts:
            self.accounts[account] = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(account)}(?![A-Za-z0-9_-])")

    # -------------------------------------------------------------- text

    def text(self, s: str) -> str:
        if self.learn_accounts:
            for m in _FW_ACCOUNT.finditer(s):
                self.learn_account(m.group(1))
        for value, repl in sorted(self.secrets.items(), key=lambda kv: -len(kv[0])):
            s = s.replace(value, repl)
        for account, rx in sorted(self.accounts.items(), key=lambda kv: -len(kv[0])):
            s = rx.sub(REDACTED_ACCOUNT, s)
        s = KEY_LIKE.sub(REDACTED_KEY, s)
        s = _ORG.sub(REDACTED_ORG, s)
        s = _PROJECT.sub(REDACTED_PROJECT, s)
        s = _EMAIL.sub("user@example.com", s)
        s = _FT_MODEL.sub(r"ft:\1:redacted-org:", s)
        return s

    def _bytes(self, b: Any) -> Any:
        if b is None or b == b"" or b == "":
            return b
        was_bytes = isinstance(b, (bytes, bytearray))
        try:
            s = bytes(b).decode("utf-8") if was_bytes else str(b)
        except UnicodeDecodeError:
            return b  # binary: nothing text-like to scrub
        s = self.text(s)
        return s.encode("utf-8") if was_bytes else s

    def _learn(self, data: Any) -> None:
        if isinstance(data, dict):
            out = data.get("model_output_name") or data.get("output_name")
            if isinstance(out, str) and "/" in out:
                prefix = out.split("/", 1)[0]
                if prefix and prefix != REDACTED_USER:
                    self.secrets[prefix + "/"] = REDACTED_USER + "/"
            uid = data.get("user_id")
            if isinstance(uid, str) and len(uid) >= 4 and uid != REDACTED_USER:
                self.secrets[uid] = REDACTED_USER
            for v in data.values():
                self._learn(v)
        elif isinstance(data, list):
            for v in data:
                self._learn(v)

    def _walk(self, data: Any) -> Any:
        if isinstance(data, dict):
            keys = dict(_ACCOUNT_KEYS)
            if isinstance(data.get("name"), str) and re.fullmatch(r"accounts/[^/]+", data["name"]):
                keys.update(_FW_ACCOUNT_OBJECT_KEYS)  # a Fireworks Account: its names are the user's
            return {k: (keys[k] if k in keys and isinstance(v, str) and v else self._walk(v))
                    for k, v in data.items()}
        if isinstance(data, list):
            return [self._walk(v) for v in data]
        if isinstance(data, str) and data.startswith(("https://", "http://")) and "?" in data:
            q = parse_qsl(urlsplit(data).query, keep_blank_values=True)
            if any(k.lower() in _SECRET_QUERY for k, _ in q):
                return self.url(data)  # a signed URL in a body (Fireworks' filenameToSignedUrls)
        return data

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return self.text(url)
        q = [(k, "REDACTED" if k.lower() in _SECRET_QUERY else self.text(v))
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return urlunsplit(parts._replace(path=self.text(parts.path), query=urlencode(q, safe="[]/:")))

    # -------------------------------------------------------------- vcrpy hooks

    def request(self, request: Any) -> Any:
        """``before_record_request`` (vcrpy passes a copy; also applied before matching)."""
        request.uri = self.url(request.uri)
        for k in list(request.headers):
            if k.lower() in SCRUB_HEADERS:
                del request.headers[k]
            else:
                request.headers[k] = self.text(str(request.headers[k]))
        request.body = self._bytes(request.body)
        return request

    def response(self, response: dict) -> dict:
        """``before_record_response``: drop credential headers, scrub bodies and the rest."""
        headers = response.get("headers") or {}
        for k in list(headers):
            lk = k.lower()
            if lk in ("openai-organization", "openai-project"):
                for v in headers[k] if isinstance(headers[k], list) else [headers[k]]:
                    if v and len(str(v)) >= 3:
                        self.secrets[str(v)] = REDACTED_ORG if "organization" in lk else REDACTED_PROJECT
            if lk in _DROP_RESPONSE_HEADERS:
                del headers[k]
        for k in list(headers):
            vals = headers[k] if isinstance(headers[k], list) else [headers[k]]
            vals = [self.url(str(v)) if k.lower() == "location" else self.text(str(v)) for v in vals]
            headers[k] = vals
        body = (response.get("body") or {}).get("string")
        if body:
            raw = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            if data is not None:
                self._learn(data)
                raw = json.dumps(self._walk(data))
            response["body"]["string"] = self.text(raw).encode("utf-8")
        return response


def _json_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: JSON request bodies must be equal (volatile keys aside); others pass."""
    a, b = _parse_json(r1.body), _parse_json(r2.body)
    if a is None or b is None:
        return
    assert _strip(a) == _strip(b), f"JSON body differs: {_strip(a)!r} != {_strip(b)!r}"


def _parse_json(body: Any) -> Any:
    if not body:
        return None
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)
    except (ValueError, UnicodeDecodeError):
        return None


def _strip(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in VOLATILE_BODY_KEYS}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def make_vcr(provider: str, mode: str, scrubber: Scrubber | None = None) -> Any:
    """A ``vcr.VCR`` for ``cassettes/<provider>/``: ``mode`` is vcrpy's record mode
    (``"none"`` to replay, ``"all"`` to record anew)."""
    import vcr

    scrubber = scrubber or Scrubber()
    v = vcr.VCR(cassette_library_dir=str(cassette_dir(provider)), record_mode=mode,
                match_on=["method", "path", "query", "json_body"], filter_headers=SCRUB_HEADERS,
                before_record_request=scrubber.request, before_record_response=scrubber.response,
                decode_compressed_response=True)
    v.register_matcher("json_body", _json_body)
    return v


def write_header(path: Path, lines: Iterable[str]) -> None:
    """Put ``# ...`` comment lines at the top of a recorded cassette (YAML ignores them)."""
    text = path.read_text()
    while text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    path.write_text("".join(f"# {ln}\n" for ln in lines) + text)


def header(path: Path) -> dict[str, str]:
    """The ``# key: value`` lines at the top of a cassette."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        k, _, v = line[1:].strip().partition(":")
        out[k.strip()] = v.strip()
    return out


def interactions(path: Path) -> list[tuple[str, str, int, Any, dict]]:
    """(method, URL path, status, JSON body or None, response headers) of each interaction."""
    import yaml

    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = []
    for it in data["interactions"]:
        req, resp = it["request"], it["response"]
        body = (resp.get("body") or {}).get("string")
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        out.append((req["method"], urlsplit(req["uri"]).path, int(resp["status"]["code"]), parsed,
                    resp.get("headers") or {}))
    return out


_ROUTES: dict[str, list] = {}


def spec_template(provider: str, method: str, path: str) -> tuple[str, str] | None:
    """(method, spec path template) for a recorded URL path; None when the document has no
    such operation (Together's 302 upload step and the presigned PUT)."""
    from emulator import ProviderEmulator

    if provider not in _ROUTES:
        _ROUTES[provider] = ProviderEmulator(provider)._routes  # the route table only; nothing starts
    for m, rx, _handler, tmpl in _ROUTES[provider]:
        if m == method and rx.fullmatch(path):
            if tmpl is None:
                return None
            return tmpl if isinstance(tmpl, tuple) else (m, tmpl)
    raise KeyError(f"{provider}: no known operation for {method} {path}")


# --------------------------------------------------------------------------- shared by the flow modules


class Clock:
    """The retry policy's clock and sleep, and the backend's own waits: instant, recorded."""

    def __init__(self):
        self.t = 0.0
        self.waits: list[float] = []

    def sleep(self, s: float) -> None:
        self.waits.append(float(s))
        self.t += float(s)

    def __call__(self) -> float:
        return self.t


def caught(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or the exception it raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the checks look at it
        return e


class FixedUuid:
    """Stands in for ``uuid`` inside ftclient.store: job ids and client tokens that are the
    same at recording and at replay (the client token is in the OpenAI listing's query, and
    in Fireworks' job ids)."""

    def __init__(self, seed: str):
        self._n = itertools.count(1)
        self._seed = seed

    def uuid4(self):
        class _U:
            hex = hashlib.sha256(f"{self._seed}-{next(self._n)}".encode()).hexdigest()[:32]
        return _U()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a replay must never reach a server)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _rows(n: int, tag: str = "card_lost") -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": tag}]} for i in range(n)]


def _dpo_rows(n: int) -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": f"I lost my card number {i}"}]},
             "preferred_output": [{"role": "assistant", "content": "card_lost"}],
             "non_preferred_output": [{"role": "assistant", "content": "card_found"}]} for i in range(n)]


def write_data(d: Path) -> Path:
    """Fixed files (train.jsonl, eval.jsonl, dpo.jsonl), so that a replay sends the bytes
    that were recorded."""
    for name, rows in (("train.jsonl", _rows(12)), ("eval.jsonl", _rows(4, "card_found")), ("dpo.jsonl", _dpo_rows(12))):
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d
