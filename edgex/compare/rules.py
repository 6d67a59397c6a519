"""`--fail-on` rules: parsed strictly (a typo is a usage error, never a rule that silently never fires).

    top1-drop>0.5pp      top-1 fell by more than 0.5 percentage points on the paired images
    p50>+10%             p50 latency rose by more than 10%        (also: x-floor, rss, size)
    throughput<-10%      images/s fell by more than 10%
    gone                 a baseline row is missing from the new run (or failed there)

A rule fires only where its change passes the threshold AND the verdict is "worse": a change the runs' own
noise explains never fails the gate, however large the threshold it crosses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgex.compare.verdicts import WORSE, Change
from edgex.errors import UsageError

# rule name -> (the Change metric, unit, the way that is worse: ">" up, "<" down)
RULE_METRICS = {"top1-drop": ("top-1", "pp", ">"), "p50": ("p50", "%", ">"), "x-floor": ("x floor", "%", ">"),
                "rss": ("peak RSS", "%", ">"), "size": ("size", "%", ">"), "throughput": ("throughput", "%", "<")}
EXAMPLES = "top1-drop>0.5pp, p50>+10%, size>+5%, rss>+10%, x-floor>+10%, throughput<-10%, gone"
_RULE = re.compile(r"(?P<name>[a-z0-9-]+)(?P<op>[<>])(?P<sign>[+-]?)(?P<value>\d+(?:\.\d+)?)(?P<unit>%|pp)")


@dataclass(frozen=True)
class Rule:
    text: str
    name: str  # a RULE_METRICS key, or "gone"
    limit: float  # pp for top1-drop, a fraction (0.1 = 10%) for the others

    def fires_on(self, change: Change) -> bool:
        metric, _, worse_way = RULE_METRICS[self.name]
        if change.metric != metric or change.verdict != WORSE or change.change is None:
            return False
        if self.name == "top1-drop":
            return -change.change > self.limit
        return change.change > self.limit if worse_way == ">" else -change.change > self.limit


def parse_rule(text: str) -> Rule:
    """One rule; a malformed one raises UsageError naming it and the forms that exist."""
    spelled = text.strip()
    if spelled == "gone":
        return Rule(spelled, "gone", 0.0)
    match = _RULE.fullmatch(spelled.replace(" ", ""))
    bad = f"bad --fail-on rule '{text}'"
    if not match:
        if spelled in RULE_METRICS:  # `--fail-on p50>+10%` unquoted: the shell took '>' as a redirection
            raise UsageError(f"{bad}: no threshold", f"Quote the rule in a shell, where '>' redirects output: "
                             f"--fail-on '{spelled}>{'0.5pp' if spelled == 'top1-drop' else '+10%'}'.")
        raise UsageError(f"{bad}: not METRIC>+N% or top1-drop>Npp", f"Rules look like: {EXAMPLES}.")
    name, op, sign, unit = match["name"], match["op"], match["sign"], match["unit"]
    if name not in RULE_METRICS:
        raise UsageError(f"{bad}: unknown metric '{name}'", f"Metrics: {', '.join(RULE_METRICS)}, gone.")
    _, want_unit, worse_way = RULE_METRICS[name]
    if unit != want_unit:
        raise UsageError(f"{bad}: {name} is measured in {want_unit}, not {unit}", f"Rules look like: {EXAMPLES}.")
    wrong_sign = (sign == "-") if worse_way == ">" else (sign == "+")
    if op != worse_way or (name == "top1-drop" and sign) or wrong_sign:
        way = "a drop" if name == "top1-drop" else "a rise" if worse_way == ">" else "a fall"
        form = {"top1-drop": "top1-drop>Npp", ">": f"{name}>+N%", "<": f"{name}<-N%"}
        raise UsageError(f"{bad}: for {name} only {way} is a regression",
                         f"Write it as {form['top1-drop' if name == 'top1-drop' else worse_way]}.")
    limit = float(match["value"])
    return Rule(spelled, name, limit if unit == "pp" else limit / 100)


def parse_rules(texts) -> list[Rule]:
    """Rules from repeated --fail-on values, each of which may hold several separated by commas."""
    if isinstance(texts, str):
        texts = [texts]
    rules = []
    for text in texts or []:
        for part in text.split(","):
            if not part.strip():
                raise UsageError(f"bad --fail-on rule list '{text}': an empty rule", f"Rules look like: {EXAMPLES}.")
            rules.append(parse_rule(part))
    return rules


def fired(rules: list[Rule], changes: list[Change], gone: list[str]) -> list[str]:
    """One line per rule that fires, naming the row and the change."""
    lines = []
    for rule in rules:
        if rule.name == "gone":
            lines += [f"{rule.text}: {row} is in the baseline but not in the new run" for row in gone]
            lines += [f"{rule.text}: {c.row} failed in the new run" for c in changes
                      if c.metric == "status" and c.verdict == WORSE]
            continue
        for change in changes:
            if rule.fires_on(change):
                amount = f"{change.change:+.2f} pp" if change.unit == "pp" else f"{change.change:+.1%}"
                lines.append(f"{rule.text}: {change.row} {change.metric} {amount} ({change.detail})")
    return lines
