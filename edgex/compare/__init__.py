"""`edgex compare BASELINE NEW`: the regression gate. Pairs the rows of two reports, judges every change
against the noise of the runs that measured it, and fails (exit 3) when a --fail-on rule fires."""
