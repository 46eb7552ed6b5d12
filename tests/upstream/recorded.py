"""Replace HTTP at the transport: a `requests` adapter that serves recorded responses.

Mount it on the real session from `tracker.upstream.http.make_session()` so everything above
the socket (headers, retries, decoding, streaming, Content-Length checks) runs as in
production::

    transport = RecordedTransport()
    transport.add_file("https://dash.test/fetch_milestones", "dash/fetch_milestones.http")
    session.mount("https://", transport)

Responses are queued per URL (scheme, host and path; the query is matched separately, as a
subset, when `params` is given) and served in the order they were added. A request nothing
was queued for fails the test. `requests` lists every request the transport saw.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from tracker.upstream.http import RetryPolicy, UpstreamSession, make_session

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def read_recorded(name: str) -> tuple[int, dict[str, str], bytes]:
    """Parse a ``.http`` fixture: ``HTTP/1.1 200 OK``, header lines, a blank line, the body."""
    raw = fixture_path(name).read_bytes()
    head, _, body = raw.partition(b"\n\n")
    status_line, *header_lines = head.decode("ascii").splitlines()
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip()] = value.strip()
    return status, headers, body


@dataclass
class _Queued:
    url: str
    params: Mapping[str, str] | None
    status: int
    headers: dict[str, str]
    body: bytes
    raises: Callable[[requests.PreparedRequest], Exception] | None


class RecordedTransport(HTTPAdapter):
    """Serves queued responses instead of opening connections; records the requests."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[_Queued] = []
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def add(
        self,
        url: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one response for `url` (and, if given, a query containing `params`)."""
        if isinstance(body, str):
            body = body.encode()
        self.queue.append(_Queued(url, _stringify(params), status, dict(headers or {}), body, None))

    def add_file(self, url: str, name: str, *, params: Mapping[str, Any] | None = None) -> None:
        """Queue the recorded response in fixture file `name` for `url`."""
        status, headers, body = read_recorded(name)
        self.add(url, status=status, headers=headers, body=body, params=params)

    def add_error(
        self,
        url: str,
        error: Callable[..., Exception],
        *,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an exception class (e.g. ``ReadTimeout``) to raise for `url`."""
        self.queue.append(
            _Queued(
                url,
                _stringify(params),
                0,
                {},
                b"",
                lambda request: error("recorded failure", request=request),
            )
        )

    @property
    def pending(self) -> list[str]:
        """URLs of responses queued but never requested."""
        return [queued.url for queued in self.queue]

    def query(self, index: int) -> dict[str, str]:
        """The query parameters of the `index`-th request, one value per name."""
        query = parse_qs(urlsplit(self.requests[index].url).query, keep_blank_values=True)
        return {key: values[-1] for key, values in query.items()}

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.requests.append(request)
        self.timeouts.append(timeout)
        parts = urlsplit(request.url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        for position, queued in enumerate(self.queue):
            if queued.url == base and all(
                query.get(key) == value for key, value in (queued.params or {}).items()
            ):
                del self.queue[position]
                break
        else:
            raise AssertionError(f"no recorded response for {request.method} {request.url}")
        if queued.raises is not None:
            raise queued.raises(request)
        response = urllib3.HTTPResponse(
            body=io.BytesIO(queued.body),
            headers=queued.headers,
            status=queued.status,
            reason=_reason(queued.status),
            preload_content=False,
            decode_content=False,
            enforce_content_length=True,
            request_method=request.method,
            request_url=request.url,
        )
        return self.build_response(request, response)


@dataclass
class Recorded:
    """A real upstream session with a `RecordedTransport` mounted and its sleeps recorded."""

    session: UpstreamSession
    transport: RecordedTransport
    sleeps: list[float]


def recorded_session(*, attempts: int = 4, retry_after_max: float = 120.0) -> Recorded:
    """A session as production builds it, but offline: waits are recorded, not slept, and
    jitter is pinned to its midpoint so each backoff is exactly 2, 4, 8... seconds."""
    sleeps: list[float] = []
    session = make_session(
        "forkhealth/0.1 (+https://forkhealth.test)",
        timeout=7,
        retry=RetryPolicy(attempts=attempts, backoff=2.0, retry_after_max=retry_after_max),
        sleep=sleeps.append,
        rand=lambda: 0.5,
    )
    transport = RecordedTransport()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return Recorded(session, transport, sleeps)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _stringify(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if params is None:
        return None
    return {key: str(value) for key, value in params.items()}


# Hypothesis strategies for "anything a JSON decoder can return", to feed the parsers.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    # JSON integers are unbounded and digit strings can be long; neither may crash a parser.
    | st.sampled_from([10**400, -(2**63), "9" * 5000, "1" * 40])
)
json_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def objects_with_keys(keys: list[str], values: st.SearchStrategy = json_like) -> st.SearchStrategy:
    """Objects carrying any subset of `keys` (the real field names) with arbitrary values."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, values))


def mutations_of(element: dict[str, Any]) -> st.SearchStrategy:
    """A real element with a few fields replaced by arbitrary JSON and a few removed."""
    keys = sorted(element)

    def mutate(replaced: dict[str, Any], removed: set[str]) -> dict[str, Any]:
        kept = {key: value for key, value in element.items() if key not in removed}
        return {**kept, **replaced}

    return st.builds(
        mutate,
        st.dictionaries(st.sampled_from(keys), json_like, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
    )
