"""What edgex does to its own process: no vendor telemetry, forked helpers that die on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_openvino_and_nncf_telemetry_is_declined_without_touching_the_consent_file(tmp_path):
    done = _run("""
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
        from edgex.telemetry import disable_vendor_telemetry
        assert disable_vendor_telemetry() is True
        assert OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.DECLINED
        print("declined")
    """, HOME=str(tmp_path), EDGEX_ALLOW_TELEMETRY="")
    assert done.returncode == 0 and done.stdout.strip() == "declined", done.stderr
    assert not any(tmp_path.rglob("*openvino_telemetry*"))  # the user's consent setting is left alone


def test_telemetry_is_left_to_the_vendor_setting_when_allowed():
    done = _run("from edgex.telemetry import disable_vendor_telemetry; print(disable_vendor_telemetry())",
                EDGEX_ALLOW_TELEMETRY="1")
    assert done.stdout.strip() == "False", done.stderr


def test_a_forked_child_dies_on_sigterm_even_inside_handle_signals():
    """A library's multiprocessing child inherits edgex's handlers; stuck in C code it must still die."""
    done = _run("""
        import os, signal, time
        from edgex.artifacts.signals import handle_signals
        with handle_signals():
            pid = os.fork()
            if pid == 0:
                time.sleep(30)  # stands in for a child stuck in the dynamic loader
                os._exit(0)
            time.sleep(0.5)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
    """)
    assert done.stdout.strip() == "True", done.stderr
