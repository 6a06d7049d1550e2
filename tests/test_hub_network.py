"""Network failures in one line, fast: an unreachable Hub, a DNS failure, a 404, and HF_HUB_OFFLINE only when set."""
import socket
import time

import huggingface_hub
import pytest
from huggingface_hub.errors import RepositoryNotFoundError

import ijepa_hub
from ijepa_hub.eval.cli import main as eval_cli
from ijepa_hub.hub.cli import main as hub_cli
from ijepa_hub.hub.network import HubUnreachableError, failure_cause

FAST_S = 4.0  # huggingface_hub's own retries took ~25 s here


@pytest.fixture
def unreachable(monkeypatch, tmp_path):
    """An endpoint on a loopback port that is bound but never listens: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # held for the test, so no other server can take the port meanwhile
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        # download URLs come from a template made at import: point it here too, or a running test Hub answers
        monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        yield tmp_path


def _one_line(run, capsys, prog: str) -> tuple[str, float]:
    start = time.perf_counter()
    assert run() == 1
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert err.startswith(f"{prog}: error: ") and err.count("\n") == 1 and "WARNING" not in err, err
    return err, seconds


def test_from_pretrained_of_an_unreachable_hub_fails_at_once_naming_repo_and_cause(unreachable, caplog):
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as err:
        ijepa_hub.from_pretrained("owner/name")
    assert time.perf_counter() - start < FAST_S
    message = str(err.value)
    assert message.startswith("owner/name") and "refused the connection" in message and "\n" not in message
    assert "HF_HUB_OFFLINE" not in message  # it is not set, so it is not the advice
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


@pytest.mark.parametrize("argv", [["info", "owner/name"], ["knn", "owner/name"]], ids=["hub-info", "eval-knn"])
def test_cli_of_an_unreachable_hub_is_one_line_within_seconds(unreachable, capsys, argv):
    cli, prog = (hub_cli, "ijepa-hub info") if argv[0] == "info" else (eval_cli, "ijepa-eval knn")
    err, seconds = _one_line(lambda: cli(argv), capsys, prog)
    assert seconds < FAST_S and "owner/name" in err and "cannot be reached" in err and "refused" in err


def test_push_to_an_unreachable_hub_is_one_line_with_the_cause(unreachable, tiny_model, capsys):
    folder = ijepa_hub.save_pretrained(tiny_model, unreachable / "model")
    err, seconds = _one_line(lambda: hub_cli(["push", str(folder), "owner/name"]), capsys, "ijepa-hub push")
    assert seconds < FAST_S + 4  # the folder is loaded once before the upload
    assert "owner/name" in err and "no network" in err and f"ijepa-hub push {folder} owner/name" in err
    assert "HF_HUB_OFFLINE" not in err


def test_a_repo_the_test_hub_does_not_have_is_one_line_naming_it(hub_server, capsys):
    start = time.perf_counter()
    with pytest.raises(RepositoryNotFoundError) as err:
        ijepa_hub.from_pretrained("tester/no-such-repo")
    assert time.perf_counter() - start < FAST_S
    assert str(err.value).startswith("tester/no-such-repo: no such repo") and "\n" not in str(err.value)
    err_line, seconds = _one_line(lambda: hub_cli(["info", "tester/no-such-repo"]), capsys, "ijepa-hub info")
    assert seconds < FAST_S and "tester/no-such-repo: no such repo" in err_line


def test_hf_hub_offline_is_named_only_when_it_is_set(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ijepa_hub.WeightsNotCachedError, match="HF_HUB_OFFLINE"):
        ijepa_hub.from_pretrained("owner/name", cache_dir=tmp_path)
    with pytest.raises(ijepa_hub.WeightsNotCachedError) as err:
        ijepa_hub.from_pretrained("owner/name", cache_dir=tmp_path, local_files_only=True)
    assert "local_files_only" in str(err.value)


def test_failure_causes_name_dns_token_and_404(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://hub.example")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as inner:
            raise ConnectionError("[Errno -2] Name or service not known") from inner
    except ConnectionError as err:
        assert failure_cause(err) == "DNS: cannot resolve hub.example"

    class _Response:
        def __init__(self, status_code):
            self.status_code = status_code

    class _HTTPError(Exception):
        def __init__(self, status_code):
            super().__init__(str(status_code))
            self.response = _Response(status_code)

    assert "token" in failure_cause(_HTTPError(401)) and "(401 " in failure_cause(_HTTPError(401))
    assert failure_cause(_HTTPError(404)) == "not found (404 _HTTPError)"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE is set" in failure_cause(ConnectionRefusedError(111, "Connection refused"))
