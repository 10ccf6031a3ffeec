"""The Grafana dashboard (deploy/grafana/greeksd-dashboard.json) and the SLO
rules (deploy/prometheus/slo-rules.yml) query only series that exist.

Every metric name in every PromQL expression of the dashboard (panel targets
and template variables) and of the rules must be either a metric greeksd
exports, or a recording rule slo-rules.yml defines. "Exports" means listed in
docs/metrics.md's reference tables and named in the exporter's source
(api/server/server_metrics.c); a histogram is queried through its _bucket,
_sum and _count series, never by its bare name. Also checked: the dashboard's
shape (a Prometheus datasource variable, unique panel ids, the panels
docs/operations.md describes, every panel title named there).

Usage: python3 tests/test_dashboard.py PROJECT_SOURCE_DIR (ctest passes it).
No third-party module: the rules file is read with a small reader for the one
shape it has (`record:`/`alert:` and `expr:` plain or block scalars).
"""
import json
import os
import re
import sys
import unittest

ROOT = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "greeksd-dashboard.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "slo-rules.yml")
METRICS_DOC = os.path.join(ROOT, "docs", "metrics.md")
EXPORTER = os.path.join(ROOT, "api", "server", "server_metrics.c")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")

# ---- PromQL: the metric names of an expression ----

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
            "unless", "atan2", "inf", "nan", "start", "end"}
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr):
    """The metric (or recording rule) names an expression selects. Grafana's
    variables and label_values() are understood; labels in matchers, in
    by/without/on/ignoring/group_* lists, strings, numbers, durations and
    function names are not names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"#[^\n]*", " ", text)  # comments
    # Grafana's label_values(SELECTOR, LABEL) / label_values(LABEL): the selector only.
    text = re.sub(r"label_values\(\s*([^,()]*?(?:\{[^}]*\})?)\s*,\s*[A-Za-z_]\w*\s*\)", r"\1", text)
    text = re.sub(r"label_values\(\s*[A-Za-z_]\w*\s*\)", " ", text)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)  # dashboard variables
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:offset)\s+-?\w+", " ", text)
    text = re.sub(r"@\s*\S+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:.])\d[\w.]*(?:[eE][+-]?\d+)?", " ", text)  # numbers, durations (5m, 1e-3, 0x1f)
    names = set()
    for m in IDENTIFIER.finditer(text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation: sum(...), rate(...)
        if word.lower() in KEYWORDS or word in AGGREGATIONS:
            continue  # an aggregation before its by-clause: sum by (x) (...)
        names.add(word)
    return names


# ---- what greeksd exports, what the rules record ----

def documented_metrics():
    """{name: type} from docs/metrics.md's reference tables: the first column's
    `names`, the second their type. A `_suffix` in a row replaces the last word
    of the row's first name: `greeks_breaker_window_calls`, `_failed_calls` is
    greeks_breaker_window_failed_calls."""
    types = {}
    with open(METRICS_DOC, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 2:
                continue
            kind = cells[1].strip("` ").lower()
            if kind not in ("counter", "gauge", "histogram", "summary"):
                continue
            first = None
            for name in re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)`", cells[0]):
                if name.startswith("_") and first:
                    name = first.rsplit("_", 1)[0] + name
                types[name] = kind
                first = first or name
    return types


def exporter_names():
    with open(EXPORTER, encoding="utf-8") as f:
        return set(re.findall(r'"([a-z_:][a-z0-9_:]*)"', f.read()))


def read_rules():
    """[(record or alert name or None, expr)] and the set of recorded names."""
    rules, recorded = [], set()
    with open(RULES, encoding="utf-8") as f:
        lines = f.read().split("\n")
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-?\s*(record|alert):\s*(\S+)\s*$", line)
        if m:
            name = m.group(2)
            if m.group(1) == "record":
                recorded.add(name)
        m = re.match(r"^(\s*)-?\s*expr:\s*(.*)$", line)
        if m:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value[:1] in (">", "|"):  # a block scalar: the more indented lines after it
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                rules.append((name, " ".join(body).strip()))
                continue
            rules.append((name, value.strip("\"'")))
        i += 1
    return rules, recorded


def panels_of(dashboard):
    for p in dashboard["panels"]:
        yield p
        for inner in p.get("panels", []):  # collapsed rows keep theirs here
            yield inner


def dashboard_exprs(dashboard):
    """[(where, expr)]: every panel target and every query variable."""
    out = []
    for p in panels_of(dashboard):
        for t in p.get("targets", []):
            out.append(("panel %r target %s" % (p.get("title"), t.get("refId")), t.get("expr", "")))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out.append(("variable %s" % v["name"], q.get("query", "") if isinstance(q, dict) else q or ""))
    return out


# Series Prometheus makes itself for every scrape target, not greeksd's.
SCRAPE_SERIES = {"up"}


def unknown_names(names, documented, exported, recorded):
    """The names that are neither greeksd's series nor recording rules, each with why."""
    problems = []
    for name in sorted(names):
        if name in recorded or (name in SCRAPE_SERIES and name in documented):
            continue
        base, suffix = name, ""
        for s in ("_bucket", "_sum", "_count"):
            if name.endswith(s) and documented.get(name[: -len(s)]) in ("histogram", "summary"):
                base, suffix = name[: -len(s)], s
                break
        if base not in documented:
            problems.append("%s: not in docs/metrics.md and not a recording rule of slo-rules.yml" % name)
        elif documented[base] == "histogram" and not suffix:
            problems.append("%s: a histogram; query %s_bucket, _sum or _count" % (name, name))
        elif base not in exported:
            problems.append("%s: in docs/metrics.md but not in api/server/server_metrics.c" % name)
    return problems


class Extraction(unittest.TestCase):
    """The name extractor itself, on the shapes the dashboard and rules use."""

    def test_labels_strings_numbers_and_functions_are_not_names(self):
        self.assertEqual(metric_names('histogram_quantile(0.99, sum by (grpc_method, le) '
                                      '(rate(a_bucket{job=~"$job",x!="y"}[$__rate_interval])))'), {"a_bucket"})
        self.assertEqual(metric_names(
            'sum by (m, c) (rate(h{c!="OK"}[5m])) / ignoring (c) group_left sum by (m) (rate(h[5m])) > 0'), {"h"})
        self.assertEqual(metric_names("greeks:slo_error_ratio:rate1h / 0.001 > (14.4 * 1e-3)"),
                         {"greeks:slo_error_ratio:rate1h"})
        self.assertEqual(metric_names('count(s{state!="running"} == 1) or vector(0)'), {"s"})
        self.assertEqual(metric_names("min(time() - p_start offset 5m)"), {"p_start"})
        self.assertEqual(metric_names("sum(x) without (instance) and on (job) y unless z"), {"x", "y", "z"})
        self.assertEqual(metric_names('label_values(greeks_build_info{job=~"$job"}, instance)'),
                         {"greeks_build_info"})
        self.assertEqual(metric_names("label_values(job)"), set())

    def test_shorthand_rows_of_the_metrics_page_expand(self):
        documented = documented_metrics()
        self.assertEqual(documented.get("greeks_breaker_window_failed_calls"), "gauge")
        self.assertEqual(documented.get("greeks_breaker_window_slow_calls"), "gauge")
        self.assertEqual(documented.get("grpc_server_handling_seconds"), "histogram")
        self.assertEqual(documented.get("process_cpu_seconds_total"), "counter")

    def test_an_unknown_name_and_a_bare_histogram_are_reported(self):
        documented = {"h_seconds": "histogram", "c_total": "counter"}
        exported = {"h_seconds", "c_total"}
        self.assertEqual(unknown_names({"h_seconds_bucket", "h_seconds_count", "c_total", "r:x"}, documented,
                                       exported, {"r:x"}), [])
        problems = unknown_names({"h_seconds", "c_totl", "c_total_bucket"}, documented, exported, set())
        self.assertEqual(len(problems), 3, problems)


class Names(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dashboard = json.load(f)
        cls.documented = documented_metrics()
        cls.exported = exporter_names()
        cls.rules, cls.recorded = read_rules()

    def test_the_metrics_page_and_the_rules_were_read(self):
        self.assertGreater(len(self.documented), 60)
        self.assertEqual(len(self.recorded), 7, self.recorded)  # greeks:slo_error_ratio:rate{5m,...,3d}
        with open(RULES, encoding="utf-8") as f:
            self.assertEqual(len(self.rules), len(re.findall(r"^\s*-?\s*expr:", f.read(), re.M)))
        for name, expr in self.rules:
            self.assertTrue(metric_names(expr), "rule %s: no metric name read from %r" % (name, expr))

    def test_every_dashboard_expression_queries_existing_series(self):
        problems = []
        exprs = dashboard_exprs(self.dashboard)
        self.assertGreater(len(exprs), 30)
        for where, expr in exprs:
            names = metric_names(expr)
            if not names and where.startswith("panel"):
                problems.append("%s: no metric in %r" % (where, expr))
            for p in unknown_names(names, self.documented, self.exported, self.recorded):
                problems.append("%s: %s" % (where, p))
        self.assertEqual(problems, [], "\n".join(problems))

    def test_every_rule_expression_queries_existing_series(self):
        problems = []
        for name, expr in self.rules:
            for p in unknown_names(metric_names(expr), self.documented, self.exported, self.recorded):
                problems.append("rule %s: %s" % (name, p))
        self.assertEqual(problems, [], "\n".join(problems))


class Shape(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dashboard = json.load(f)

    def test_a_prometheus_datasource_variable_feeds_every_query(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 36)
        for p in panels_of(self.dashboard):
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
            self.assertTrue(p.get("targets"), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])

    def test_panel_ids_are_unique_and_panels_fit_the_grid(self):
        ids = [p["id"] for p in panels_of(self.dashboard)]
        self.assertEqual(len(ids), len(set(ids)))
        for p in panels_of(self.dashboard):
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])

    def test_the_panels_the_runbook_relies_on_are_there(self):
        used = set()
        for _, expr in dashboard_exprs(self.dashboard):
            used |= metric_names(expr)
        required = ("grpc_server_started_total", "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
                    "greeks:slo_error_ratio:rate1h", "greeks:slo_error_ratio:rate5m",
                    "greeks:slo_error_ratio:rate6h", "greeks:slo_error_ratio:rate30m",
                    "greeks:slo_error_ratio:rate1d", "greeks:slo_error_ratio:rate2h", "greeks:slo_error_ratio:rate3d",
                    "greeks_pricing_batch_options_bucket", "greeks_pricing_queue_wait_seconds_bucket",
                    "greeks_agent_mailbox_depth", "greeks_agent_rejected_total", "greeks_agent_dead_letters_total",
                    "greeks_breaker_state", "greeks_pool_busy_seconds_total", "greeks_store_append_seconds_bucket",
                    "greeks_risk_limit_breaches_total", "process_cpu_seconds_total",
                    "process_resident_memory_bytes", "process_open_fds", "process_threads", "greeks_build_info",
                    "greeks_config_info")
        self.assertEqual([name for name in required if name not in used], [], "no panel queries these any more")

    def test_every_panel_is_described_in_the_runbook(self):
        with open(OPERATIONS, encoding="utf-8") as f:
            text = f.read()
        start = text.find("\n## Dashboards")
        self.assertGreaterEqual(start, 0, "docs/operations.md has no Dashboards section")
        end = text.find("\n## ", start + 1)
        section = text[start:end if end > 0 else len(text)]
        missing = [p["title"] for p in panels_of(self.dashboard) if p["type"] != "row" and p["title"] not in section]
        self.assertEqual(missing, [], "panels not described in docs/operations.md, Dashboards")


if __name__ == "__main__":
    unittest.main(verbosity=2)
