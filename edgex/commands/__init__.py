"""One module per `edgex` sub-command, each with `add_parser(subparsers)` that sets `run=`.

Adding a command is one line here and one file beside this one; modules import no framework at
import time, so `edgex --help` stays instant.
"""

COMMANDS = ("convert", "inspect", "diagnose", "bench", "eval", "predict", "bundle", "report", "run", "port", "doctor",
            "check", "compare")
