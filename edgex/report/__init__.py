"""Reports: report.json (the source of truth, versioned schema), report.md (one table) and report.html
(self-contained: table, accuracy-vs-latency scatter with the Pareto front, size bars)."""
