"""The FP32 source as reference: its logits on the evaluation images, computed once per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgex.progress import Reporter

SOURCE_BATCH = 8


class SourceReference:
    """Finds the source model a manifest names, checks it is the same file (sha256), caches its logits."""

    def __init__(self, override: Path | None = None, enabled: bool = True, reporter: Reporter | None = None,
                 trust_model: bool = False):
        self.override = Path(override) if override else None
        self.enabled, self.trust_model = enabled, trust_model
        self._refused: dict[str, str] = {}
        self.reporter = reporter or Reporter()
        self._logits: dict[tuple, np.ndarray] = {}
        self._checked: dict[str, tuple[Path | None, str | None]] = {}

    def locate(self, manifest: dict | None) -> tuple[Path | None, str | None]:
        """(source path, None) when usable, else (None, why not)."""
        if not self.enabled:
            return None, "source evaluation switched off (--no-source)"
        if self.override is not None:
            return (self.override, None) if self.override.exists() else (None, f"{self.override} does not exist")
        source = (manifest or {}).get("source") or {}
        if not source.get("path"):
            return None, "the manifest names no source model"
        key = f"{source['path']}:{source.get('sha256')}"
        if key not in self._checked:
            self._checked[key] = self._check(Path(source["path"]), source.get("sha256"))
        return self._checked[key]

    @staticmethod
    def _check(path: Path, sha256: str | None) -> tuple[Path | None, str | None]:
        from edgex.artifacts.hashing import sha256_path

        if not path.exists():
            return None, f"source model {path} is not on this machine"
        if sha256 and sha256_path(path) != sha256:
            return None, f"source model {path} changed since the artifact was converted (sha256 differs)"
        return path, None

    def logits_or_why(self, path: Path, inputs: np.ndarray, inputs_key: str) -> tuple[np.ndarray | None, str | None]:
        """(logits, None), or (None, why) when the safety policy refuses to load the source without trust."""
        from edgex.errors import RefusedError

        if str(path) not in self._refused:
            try:
                return self.logits(path, inputs, inputs_key), None
            except RefusedError as exc:
                self._refused[str(path)] = (f"{exc.message}: pass --trust-model to compare against it "
                                            "(e.g. the .pt2 edgex.convert saved from your torch.nn.Module)")
        return None, self._refused[str(path)]

    def logits(self, path: Path, inputs: np.ndarray, inputs_key: str) -> np.ndarray:
        """Source logits for `inputs` (identified by `inputs_key`), computed at most once."""
        key = (str(path), inputs_key)
        if key not in self._logits:
            from edgex.runtimes.source import SourceSession

            session = SourceSession(path, trust_model=self.trust_model)  # a refused format raises here, unannounced
            self.reporter.info(f"evaluating the FP32 source {path.name} (reference for agreement)")
            out = []
            with self.reporter.task(f"source {path.name}", len(inputs)) as advance:
                for start in range(0, len(inputs), SOURCE_BATCH):
                    out.append(session.run(inputs[start : start + SOURCE_BATCH]))
                    for _ in range(len(out[-1])):
                        advance()
            session.source.close()
            self._logits[key] = np.concatenate(out)
        return self._logits[key]
