import time

import pytest

from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.measure.isolate import Failure, call_guarded, call_isolated, describe_exit
from tests import workers


def test_value_comes_back():
    assert call_isolated(workers.double, 21, timeout_s=60) == 42


def test_crash_is_a_failed_case_not_a_crash_here():
    with pytest.raises(CaseFailed, match=r"crashed \(SIGABRT\)"):
        call_isolated(workers.abort, None, timeout_s=60)


def test_hang_is_stopped_at_the_timeout():
    start = time.monotonic()
    with pytest.raises(CaseFailed, match="timed out after 3 s"):
        call_isolated(workers.hang, None, timeout_s=3)
    assert time.monotonic() - start < 30


def test_exceptions_become_one_line():
    with pytest.raises(CaseFailed, match="^ValueError: bad thing$"):
        call_isolated(workers.raise_value_error, None, timeout_s=60)


def test_user_errors_cross_the_process_boundary_intact():
    with pytest.raises(PerfkitError) as info:
        call_isolated(workers.raise_user_error, None, timeout_s=60)
    assert str(info.value) == "m.onnx: broken — fix it"


def test_exit_descriptions():
    assert describe_exit(-9) == "killed (SIGKILL — out of memory?)"
    assert describe_exit(3) == "worker exited with code 3 before reporting"


@pytest.mark.parametrize("isolate", [True, False])
def test_a_guarded_call_turns_every_failure_into_a_status_and_one_line(isolate):
    assert call_guarded(workers.double, 21, 60, isolate) == 42
    assert call_guarded(workers.unsupported, None, 60, isolate) == Failure("skipped", "not on this machine")
    assert call_guarded(workers.raise_user_error, None, 60, isolate) == Failure("failed", "m.onnx: broken — fix it")
    assert call_guarded(workers.raise_value_error, None, 60, isolate) == Failure("failed", "ValueError: bad thing")


def test_a_worker_printing_never_reaches_the_parents_stdout(capfd):
    from tests.workers import chatty

    assert call_isolated(chatty, 3, 30) == 3
    assert capfd.readouterr().out == ""
