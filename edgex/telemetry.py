"""Keep OpenVINO's and NNCF's usage telemetry off in edgex processes.

`openvino.convert_model` and `nncf.quantize` send anonymous events to Google Analytics unless a
consent file in the user's home says no, and they send them from a `multiprocessing` child forked
out of a process full of TensorFlow and ONNX Runtime threads. edgex promises no network at run
time, and that fork can deadlock (seen here: the child hung in the dynamic loader resolving the
analytics host, and the conversion waited for it forever). So edgex declines the consent check in
its own process, without touching the user's consent file. Set EDGEX_ALLOW_TELEMETRY=1 to let the
vendors' own setting decide.
"""

from __future__ import annotations

import os


def disable_vendor_telemetry() -> bool:
    """Decline openvino-telemetry's consent check in this process; True when it was turned off."""
    if os.environ.get("EDGEX_ALLOW_TELEMETRY") == "1":
        return False
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return False  # not installed: nothing would be sent

    def declined(self, *args, **kwargs) -> ConsentCheckResult:
        return ConsentCheckResult.DECLINED

    OptInChecker.check = declined
    try:  # an instance made before this call (the class is a singleton) has already read the consent
        from openvino_telemetry.main import Telemetry

        existing = getattr(type(Telemetry), "_SingletonMetaClass__single_instance", None)
        if existing is not None:
            existing.consent = False
    except ImportError:
        pass
    return True
