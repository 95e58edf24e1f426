"""What every Hub call here shares: the endpoint, the token, the `HfApi` client, and the
translation of the client's exceptions into one-line `HubError`s without the token.

Endpoint: `endpoint=`, else HF_ENDPOINT read at call time (huggingface_hub reads it once,
at import), else huggingface.co. Token: `token=`, else HF_TOKEN, else the login of
`hf auth login`. The token travels only in the Authorization header: it is removed from
every message this package logs or raises and from the model card.

Which failures huggingface_hub 2.4 already retried matters to `HubUploader`: its
`utils.http_backoff` (HTTP 408, 429, 500, 502, 503, 504, timeouts, network and protocol
errors; 5 retries, 1 s doubling to 8 s, `Retry-After` honoured) carries the preupload,
LFS upload and tree listing requests; the repo creation, README.md front-matter check,
repo info and commit requests are sent once. A transient failure of one of those is an
`UnretriedHubError`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# huggingface_hub 2.x moved from httpx to httpx2; this alias follows whichever it uses.
from huggingface_hub.utils import httpx

from plurel_ray import __version__
from plurel_ray.errors import HubError
from plurel_ray.hub.card import LIBRARY_NAME

# HTTP statuses after which the same request may well succeed.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# What `http_backoff` retries by default (its `_DEFAULT_RETRY_ON_STATUS_CODES` and
# `_DEFAULT_RETRY_ON_EXCEPTIONS`; tests/unit/test_hub.py checks they still agree).
LIBRARY_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
LIBRARY_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# The requests of a push that huggingface_hub sends without `http_backoff`: repo creation
# and the README.md check (`get_session().post`), repo info, and the commit itself
# (`_send_commit(retry_on_error=False)`: a commit whose answer was lost would be made twice).
_SENT_ONCE = re.compile(
    r"/api/(repos/create|validate-yaml|(models|datasets|spaces)/[^/]+/[^/]+(/(revision|commit)/.*)?)$"
)


class UnretriedHubError(HubError):
    """A transient failure (HTTP 5xx or 429, connection error) of a request that
    huggingface_hub sent once, without its own backoff: trying the push again is ours."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


def endpoint_of(endpoint: str | None) -> str:
    """The Hub URL: `endpoint`, else HF_ENDPOINT now, else huggingface_hub's default.

    Args:
        endpoint: an explicit Hub URL, or None.
    """
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def token_of(token: str | None) -> str | None:
    """The access token: `token`, else HF_TOKEN, else the `hf auth login` token.

    Args:
        token: an explicit token, or None.
    """
    return token or get_token()


def hub_api(endpoint: str, token: str | None) -> HfApi:
    """A client that names plurel-ray in its user agent.

    Args:
        endpoint: the Hub URL.
        token: the access token.
    """
    return HfApi(
        endpoint=endpoint, token=token, library_name=LIBRARY_NAME, library_version=__version__
    )


def scrub(text: str, token: str | None) -> str:
    """`text` with every occurrence of `token` replaced by "hf_***".

    Args:
        text: a message that may hold the token (a server may echo it).
        token: the token, or None.
    """
    return text.replace(token, "hf_***") if token else text


@contextlib.contextmanager
def hub_errors(where: str, revision: str | None, token: str | None) -> Iterator[None]:
    """Turn the client's errors into one-line `HubError`s that say what to fix.

    Args:
        where: what was asked, e.g. "model repo org/rt at https://huggingface.co".
        revision: the revision asked for (named when it does not exist).
        token: the token to scrub from the messages.
    """
    try:
        yield
    except Exception as err:
        hub_error = _as_hub_error(err, where, revision, token)
        if hub_error is None:
            raise
        # `from None`: the client's exception holds the request, Authorization header included.
        raise hub_error from None


def _as_hub_error(
    err: Exception, where: str, revision: str | None, token: str | None
) -> HubError | None:
    detail = scrub(" ".join(str(err).split()), token)
    if isinstance(err, RevisionNotFoundError):
        return HubError(
            f"{where} has no revision {revision or 'main'!r}: pass a branch, tag or commit "
            "sha that it has"
        )
    if isinstance(err, RepositoryNotFoundError):
        return HubError(
            f"{where} does not exist or your token cannot see it: check the repo id and "
            "type (model or dataset), and set HF_TOKEN or run `hf auth login` for a private repo"
        )
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code
        if status in (401, 403):
            return HubError(
                f"{where} refused the token (HTTP {status}): set HF_TOKEN or run `hf auth "
                "login` with a token that has access (write access to push)"
            )
        if status in TRANSIENT_STATUS or status >= 500:
            message = f"{where} failed (HTTP {status}), try again: {detail}"
            return _transient(message, err, status in LIBRARY_RETRY_STATUS)
        return HubError(f"{where} answered HTTP {status}: {detail}")
    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"HF_HUB_OFFLINE is set: unset it to reach {where}")
    if isinstance(err, (httpx.TransportError, LocalEntryNotFoundError)):
        # LocalEntryNotFoundError: snapshot_download's word for "the Hub did not answer".
        message = f"cannot reach {where} ({detail}); check the network and HF_ENDPOINT"
        return _transient(message, err, isinstance(err, LIBRARY_RETRY_ERRORS))
    if isinstance(err, HFValidationError):
        return HubError(f"{where}: {detail}")
    return None


def _transient(message: str, err: Exception, backoff_retries: bool) -> HubError:
    """A transient HubError, an `UnretriedHubError` when the client did not retry it."""
    path = _request_path(err)
    if path is not None and (_SENT_ONCE.search(path) or not backoff_retries):
        return UnretriedHubError(message)
    return HubError(message, transient=True)


def _request_path(err: Exception) -> str | None:
    """The URL path of the request that failed, if the exception carries it."""
    with contextlib.suppress(AttributeError, RuntimeError):  # httpx: "request not set"
        request = err.response.request if isinstance(err, HfHubHTTPError) else err.request
        return request.url.raw_path.decode().split("?", 1)[0]
    return None
