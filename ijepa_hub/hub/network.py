"""Why a Hub request failed, in a few words, and a quick reachability check before a download.

huggingface_hub retries a failed first request of an uncached file five times with back-off (about 25 s and
a dozen WARNING lines when the Hub cannot be reached). :func:`check_reachable` asks once, with a short
timeout, so an unreachable Hub fails in one line within seconds; :func:`failure_cause` names the cause
(no network, DNS, a timeout, the token, a 404) for every error message that talks to the Hub.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

from huggingface_hub import constants as hf_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_url

from ..errors import IJepaError

__all__ = ["HubUnreachableError", "check_reachable", "failure_cause", "is_network_error", "offline_hint"]

QUICK_TIMEOUT_S = 5.0  # the reachability check's timeout, unless HF_HUB_ETAG_TIMEOUT asks for another
_TRANSPORT = ("TransportError", "ConnectionError", "Timeout", "TimeoutException", "NetworkError")


class HubUnreachableError(IJepaError, ConnectionError):
    """The Hugging Face Hub could not be reached (no network, DNS, a timeout); nothing was retried."""


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_network_error(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a transport failure: no connection, DNS, a timeout."""
    for e in _chain(err):
        names = {c.__name__ for c in type(e).__mro__}
        if names & set(_TRANSPORT) or isinstance(e, (socket.gaierror, socket.timeout, ConnectionError)):
            return True
    return False


def _host(endpoint: str | None = None) -> str:
    return urlparse(endpoint or hf_constants.ENDPOINT).netloc or hf_constants.ENDPOINT


def failure_cause(err: BaseException) -> str:
    """The cause of a failed Hub request in a few words: no network, DNS, timeout, token (401/403), 404."""
    text = " ".join(str(e) for e in _chain(err)).lower()
    host = _host()
    if any(type(e).__name__ == "OfflineModeIsEnabled" for e in _chain(err)):
        return "HF_HUB_OFFLINE is set: unset it to reach the Hub"
    if is_network_error(err):
        return _network_cause(err, text, host) + offline_hint()
    status = getattr(getattr(err, "response", None), "status_code", None)
    name = type(err).__name__
    if status == 401:
        return f"the token was refused (401 {name}): run `hf auth login` or pass --token"
    if status == 403:
        return f"the token may not do this (403 {name}): use a token with write access to the repo"
    if status == 404:
        return f"not found (404 {name})"
    return f"{name}: {err}"


_DNS_WORDS = ("name or service", "name resolution", "nodename nor servname", "errno -2", "errno -3")


def _network_cause(err: BaseException, text: str, host: str) -> str:
    if any(isinstance(e, socket.gaierror) for e in _chain(err)) or any(w in text for w in _DNS_WORDS):
        return f"DNS: cannot resolve {urlparse(hf_constants.ENDPOINT).hostname}"
    if "timed out" in text or "timeout" in text:
        return f"no answer from {host} (timed out; HF_HUB_ETAG_TIMEOUT=30 waits longer)"
    if "refused" in text:
        return f"no network: {host} refused the connection"
    return f"no network: cannot connect to {host}"


def offline_hint() -> str:
    """A hint about HF_HUB_OFFLINE when it is set (and only then), else ''."""
    return " (HF_HUB_OFFLINE is set: unset it to reach the Hub)" if hf_constants.is_offline_mode() else ""


def quick_timeout() -> float:
    """The reachability check's timeout: HF_HUB_ETAG_TIMEOUT when set, else a few seconds."""
    return float(os.environ["HF_HUB_ETAG_TIMEOUT"]) if "HF_HUB_ETAG_TIMEOUT" in os.environ else QUICK_TIMEOUT_S


def check_reachable(repo_id: str, filename: str, *, revision: str | None = None, token: str | bool | None = None,
                    what: str | None = None) -> None:
    """One HEAD request for ``filename``, no retry: raise :class:`HubUnreachableError` in one line if it fails.

    HTTP errors (404, 401...) are raised as huggingface_hub raises them, for the caller to translate."""
    url = hf_hub_url(repo_id, filename, revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=quick_timeout())
    except Exception as err:  # noqa: BLE001 - only transport failures are ours; the rest is re-raised
        if not is_network_error(err):
            raise
        raise HubUnreachableError(
            f"{what or repo_id}: the Hugging Face Hub cannot be reached ({failure_cause(err)}). Fix: check the "
            "network (or HF_ENDPOINT), or load a local folder."
        ) from None
