#!/usr/bin/env python3
"""Generates dashboards/leakwatch-target.json and dashboards/leakwatch-fleet.json.

Panels are built by a few helpers so every panel has the same datasource
(`${datasource}`, never a UID), the same `job`/`target` selector and the same legend
layout. Edit this file, not the JSON, then run:

    scripts/gen-dashboards.py          # rewrite dashboards/*.json
    scripts/gen-dashboards.py --check  # exit 1 if the JSON is not what this generates

    scripts/gen-dashboards.py --coverage  # list the exported metrics on no panel

Standard library only.
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
# The selector every per-target query uses: variables, never a hard-coded job.
SEL = 'job=~"$job", target=~"$target"'
# leakwatch's own address as the browser reaches it, per instance: the dashboard
# variable `lw_url` (not `leakwatch_url`: every `leakwatch_*` token in the JSON is
# checked as a metric name) is the `external_url` of `leakwatch_web_info` exported by
# the instance that watches the selected target (`--web.external-url`, else its listen
# address unless that is a wildcard). Where no instance exports one, the textbox
# `lw_fallback` stands in; its default is leakwatch's default listen address.
LEAKWATCH_URL = "http://127.0.0.1:10760"
# `{external_url="..."}` for every (job, target) of `sel`: its instance's
# leakwatch_web_info, or `$lw_fallback` for targets of an instance exporting none.
URL_BY_TARGET = (
    "max by (job, target, external_url) ("
    "(leakwatch_up{{{sel}}} * on (job, instance) group_left (external_url) leakwatch_web_info)"
    " or on (job, instance) "
    'label_replace(leakwatch_up{{{sel}}}, "external_url", "$lw_fallback", "", ""))'
)
# The link variable's query: the selected targets' URLs, else the fallback.
LW_URL_QUERY = (
    "query_result(max by (external_url) (leakwatch_web_info and on (job, instance) leakwatch_up{{{sel}}})"
    ' or on () label_replace(vector(1), "external_url", "$lw_fallback", "", ""))'
)
LW_URL_REGEX = '/external_url="([^"]+)"/'
REPORT_URL = "${lw_url}/targets/${target:percentencode}"
TARGET_DUMPS_URL = "${lw_url}/dumps/${target:percentencode}/"
DUMPS_URL = "${lw_url}/dumps/"

# Exported metrics (README "Metrics reference") deliberately on no panel, with why.
# `--coverage` lists every other metric that no panel queries.
NOT_ON_PANELS = {
    "leakwatch_go_memstats_alloc_bytes": "MemStats.Alloc is HeapAlloc by definition (shown as HeapAlloc)",
    "leakwatch_go_memstats_lookups_total": "MemStats.Lookups: always 0 in the Go runtimes leakwatch reads (every capture in tests/fixtures, Go 1.19 to 1.26)",
    "leakwatch_probe_success": "exported only in /probe responses, which a dashboard of /metrics does not see",
    "leakwatch_probe_duration_seconds": "exported only in /probe responses, which a dashboard of /metrics does not see",
}


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self):
        if self.x > 0:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0


def q(expr, legend="", ref="A", instant=False, fmt="time_series"):
    return {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "editorMode": "code",
    }


def queries(*specs):
    """specs: (expr, legend) pairs; refIds A, B, C, ..."""
    return [q(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(specs)]


def thresholds(*steps):
    """steps: (value or None for the base, color)."""
    return {
        "mode": "absolute",
        "steps": [{"color": c, "value": v} for v, c in steps],
    }


def timeseries(title, targets, unit, description, stack=False, minimum=None, threshold=None, bars=False, links=None):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 30 if stack or bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if threshold is not None else "off"},
    }
    defaults = {"unit": unit, "custom": custom}
    if minimum is not None:
        defaults["min"] = minimum
    if threshold is not None:
        defaults["thresholds"] = thresholds((None, "green"), (threshold, "red"))
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"showLegend": True, "displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "links": links or [],
    }


def own_axis(panel, matcher, unit, label, minimum=None):
    """Gives the fields `matcher` selects their own unit and a right-hand axis.

    matcher: ("byFrameRefID", "B") or ("byRegexp", "overhead.*"). Counts and
    per-second slopes never share one axis.
    """
    kind, options = matcher
    props = [
        {"id": "unit", "value": unit},
        {"id": "custom.axisPlacement", "value": "right"},
        {"id": "custom.axisLabel", "value": label},
    ]
    if minimum is not None:
        props.append({"id": "min", "value": minimum})
    panel["fieldConfig"]["overrides"].append({"matcher": {"id": kind, "options": options}, "properties": props})


def axis_label(panel, label):
    panel["fieldConfig"]["defaults"]["custom"]["axisLabel"] = label


def link(title, url):
    return {"title": title, "url": url, "targetBlank": True}


def stat(title, targets, unit, description, steps=None, mappings=None, no_value=None, links=None, text_mode="auto"):
    defaults = {
        "unit": unit,
        "thresholds": thresholds(*(steps or [(None, "green")])),
        "mappings": mappings or [],
        "color": {"mode": "thresholds"},
    }
    if no_value is not None:
        defaults["noValue"] = no_value
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": text_mode,
            "justifyMode": "auto",
            "orientation": "auto",
        },
        "links": links or [],
    }


def yes_no(no="no", yes="yes"):
    """Value mappings for a 0/1 gauge."""
    return [{"type": "value", "options": {"0": {"text": no, "index": 0}, "1": {"text": yes, "index": 1}}}]


def table(title, targets, description, rename, units, sort_by, desc, links=None):
    """An instant table of several queries merged on their labels.

    rename: {"Value #A": "Live heap slope", ...}; units: {display name: unit}.
    """
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
        for name, unit in units.items()
    ]
    if links:
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "target"},
                "properties": [{"id": "links", "value": links}],
            }
        )
        # Kept in the frame for the links (`${__data.fields.external_url}`), not shown.
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "external_url"},
                "properties": [{"id": "custom.hidden", "value": True}],
            }
        )
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": overrides},
        "options": {"showHeader": True, "sortBy": [{"displayName": sort_by, "desc": desc}]},
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": rename, "indexByName": {}},
            },
        ],
    }


def variables(target_multi):
    def query_var(name, query, multi):
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DS,
            "query": query,
            "definition": query,
            "refresh": 2,
            "sort": 1,
            "regex": "",
            "hide": 0,
            "multi": multi,
            "includeAll": multi,
            "allValue": ".+" if multi else None,
            "current": {},
            "options": [],
        }

    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "regex": "",
                "hide": 0,
                "refresh": 1,
                "current": {},
                "options": [],
            },
            query_var("job", "label_values(leakwatch_up, job)", True),
            query_var("target", 'label_values(leakwatch_up{job=~"$job"}, target)', target_multi),
            {
                "name": "lw_fallback",
                "label": "leakwatch URL if none exported",
                "description": "leakwatch's address as your browser reaches it, for the links of targets whose leakwatch exports no leakwatch_web_info (started without --web.external-url and listening on a wildcard address).",
                "type": "textbox",
                "query": LEAKWATCH_URL,
                "hide": 0,
                "current": {"text": LEAKWATCH_URL, "value": LEAKWATCH_URL},
                "options": [{"selected": True, "text": LEAKWATCH_URL, "value": LEAKWATCH_URL}],
            },
            dict(
                query_var("lw_url", LW_URL_QUERY.format(sel='job=~"$job", target=~"$target"'), False),
                label="leakwatch URL",
                description="The URL of the leakwatch watching the selected target, for the links to its report page and dumps: its leakwatch_web_info (--web.external-url), else the fallback.",
                regex=LW_URL_REGEX,
                sort=0,
            ),
        ]
    }


def annotation(name, color, expr, title, text, tags):
    """A Prometheus annotation query: one event (or region) wherever `expr` is > 0.

    `$__interval` is the annotation query's step, so `x offset $__interval` is the
    previous point and every change is seen exactly once, whatever the scrape interval.
    """
    step = "60s"
    return {
        "name": name,
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": step,
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": tags,
        "useValueForTime": False,
        # Grafana 10+ moves expr and step here on load; older versions read the above.
        "target": {"refId": "Anno", "expr": expr, "interval": step},
    }


def annotations():
    """Restarts, OOM kills and verdict changes, on every time series of the dashboard."""
    pid = s("leakwatch_process_pid")
    total_alloc = s("leakwatch_go_memstats_alloc_bytes_total")
    kills = s("leakwatch_oom_kills_total")
    cg_kills = s("leakwatch_cgroup_memory_events_total", 'event="oom_kill"')
    verdict = s("leakwatch_leak_suspected")
    return {
        "list": [
            annotation(
                "Restarts",
                "blue",
                f"max by (job, target) ({pid} != {pid} offset $__interval)"
                f" or max by (job, target) ({total_alloc} < {total_alloc} offset $__interval)",
                "{{target}} restarted",
                "New process (the pid changed or TotalAlloc went back): the analysis window starts again.",
                "target",
            ),
            annotation(
                "OOM kills",
                "red",
                f"sum by (job, target) ({kills} - {kills} offset $__interval) > 0"
                f" or sum by (job, target) ({cg_kills} - {cg_kills} offset $__interval) > 0",
                "{{target}} OOM-killed",
                "OOM kill seen in the kernel log or in the cgroup's memory.events (oom_kill).",
                "target",
            ),
            annotation(
                "Leak suspected",
                "orange",
                f"{verdict} == 1 and {verdict} offset $__interval == 0",
                "{{target}}: {{kind}} leak suspected",
                "leakwatch's verdict changed to suspected; the report page shows the evidence.",
                "target,kind",
            ),
            annotation(
                "Leak verdict cleared",
                "green",
                f"{verdict} offset $__interval == 1 and {verdict} == 0",
                "{{target}}: {{kind}} leak no longer suspected",
                "leakwatch's verdict changed back to ok.",
                "target,kind",
            ),
        ]
    }


def optional_collectors():
    """{exposed metric: collector} of the families off by default: the README's metrics
    reference (generated from src/metrics/table.rs) marks them `(off)`."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- metrics:begin -->")[1].split("<!-- metrics:end -->")[0]
    return dict(re.findall(r"^\| `([a-z0-9_:]+)` \|[^|\n]*\|[^|\n]*\| `([a-z_]+)` \(off\) \|", table, re.M))


def mark_optional(panels):
    """Says in each panel's description which collectors off by default its queries
    need, and, when no query can have data without them, shows how to enable them
    instead of "No data"."""
    off = optional_collectors()
    for p in panels:
        per_query = []
        for t in p.get("targets", []):
            tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", t["expr"]))
            per_query.append(sorted({off[m] for m in tokens if m in off}))
        needed = sorted({c for q in per_query for c in q})
        if not needed:
            continue
        every = all(per_query)
        lead = "Needs" if every else "Some series need"
        flags = " and ".join(f"`--collector.{c}`" for c in needed)
        p["description"] += f" {lead} {flags} (off by default)."
        defaults = p["fieldConfig"]["defaults"]
        if every and "noValue" not in defaults:
            defaults["noValue"] = "enable " + " and ".join(f"--collector.{c}" for c in needed)


def recording_rules():
    """{rule name: the shipped file recording it}, from the `- record:` lines of alerts/*.yml."""
    out = {}
    for path in sorted((ROOT / "alerts").glob("*.yml")):
        for name in re.findall(r"^\s*- record:\s*(\S+)", path.read_text(), re.M):
            out[name] = str(path.relative_to(ROOT))
    return out


def say_what_rules_they_need(panels):
    """Panels reading recording rules name them and their file, in the description and
    in the text shown instead of "No data" (Prometheus without the rules: empty, not broken)."""
    rules = recording_rules()
    for p in panels:
        exprs = " ".join(t["expr"] for t in p.get("targets", []))
        used = sorted({r for r in re.findall(r"[a-z_]+:[a-zA-Z0-9_:]+", exprs) if r in rules})
        if not used:
            continue
        files = sorted({rules[r] for r in used})
        many = len(used) > 1
        p["description"] += (
            f" Needs the recording rule{'s' if many else ''} {', '.join(used)} from"
            f" {' and '.join(files)} (or `leakwatch rules`) loaded in Prometheus:"
            f" without {'them' if many else 'it'} this panel stays empty."
        )
        defaults = p["fieldConfig"]["defaults"]
        rules_text = f"No data (needs the recording rules of {' and '.join(files)})"
        # Beside the collectors' hint (mark_optional) when a panel needs both.
        defaults["noValue"] = f"{defaults['noValue']}; {rules_text}" if "noValue" in defaults else rules_text


def dashboard(uid, title, description, layout, target_multi, links):
    mark_optional(layout.panels)
    say_what_rules_they_need(layout.panels)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["leakwatch", "go", "memory"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": annotations(),
        "links": [
            {"type": "dashboards", "tags": ["leakwatch"], "title": "leakwatch", "asDropdown": True, "includeVars": True, "keepTime": True}
        ]
        + [
            {
                "type": "link",
                "title": title,
                "url": url,
                "tooltip": tooltip,
                "icon": "external link",
                "targetBlank": True,
                "asDropdown": False,
                "includeVars": False,
                "keepTime": False,
                "tags": [],
            }
            for title, url, tooltip in links
        ],
        "templating": variables(target_multi),
        "panels": layout.panels,
    }


def s(metric, extra=""):
    """metric{job=~"$job", target=~"$target"[, extra]}"""
    return f"{metric}{{{SEL}{', ' + extra if extra else ''}}}"


def target_dashboard():
    L = Layout()
    ri = "$__rate_interval"

    L.row("Verdict and time to OOM")
    L.add(
        stat(
            "Leak suspected",
            [q(f"max by (kind) ({s('leakwatch_leak_suspected')})", "{{kind}}")],
            "none",
            "leakwatch's verdict per kind of leak (heap, goroutine, http_connections).",
            steps=[(None, "green"), (1, "red")],
            mappings=[{"type": "value", "options": {"0": {"text": "ok", "index": 0}, "1": {"text": "LEAK", "index": 1}}}],
            links=[link("Evidence on leakwatch's report page", REPORT_URL)],
        ),
        8,
        5,
    )
    L.add(
        stat(
            "Leak score",
            [q(f"max by (kind) ({s('leakwatch_leak_score')})", "{{kind}}")],
            "percentunit",
            "Confidence that a leak of each kind is under way, 0..1.",
            steps=[(None, "green"), (0.5, "orange"), (0.8, "red")],
        ),
        6,
        5,
    )
    L.add(
        stat(
            "Time to OOM",
            [q(f"min({s('leakwatch_time_to_oom_seconds')})", "time to OOM")],
            "s",
            "Seconds until memory usage reaches the limit at the current growth rate. Empty while warming up or not growing.",
            steps=[(None, "red"), (900, "orange"), (3600, "green")],
            no_value="not growing",
        ),
        5,
        5,
    )
    L.add(
        stat(
            "Live heap / baseline",
            [q(s("leakwatch_heap_baseline_ratio"), "{{target}}")],
            "none",
            "Live heap over its baseline. A fix is confirmed when this is back within 1.1.",
            steps=[(None, "green"), (1.1, "orange"), (1.5, "red")],
        ),
        5,
        5,
    )
    L.add(
        timeseries(
            "Time to OOM",
            queries((s("leakwatch_time_to_oom_seconds"), "{{target}}")),
            "s",
            "Alerts fire below 1h (warning) and 15m (critical).",
            minimum=0,
            threshold=3600,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Memory usage vs limit (time-to-OOM inputs)",
            queries(
                (s("leakwatch_memory_usage_bytes"), "usage ({{source}})"),
                (s("leakwatch_memory_limit_bytes"), "limit ({{source}})"),
            ),
            "bytes",
            "The usage and limit leakwatch uses for time to OOM, with where each comes from.",
            minimum=0,
        ),
        12,
        8,
    )

    L.row("Heap")
    L.add(
        timeseries(
            "HeapAlloc and live heap",
            queries(
                (s("leakwatch_go_memstats_heap_alloc_bytes"), "HeapAlloc"),
                (s("leakwatch_heap_live_bytes"), "live heap after GC"),
                (s("leakwatch_go_memstats_next_gc_bytes"), "NextGC"),
                (s("leakwatch_heap_baseline_bytes"), "baseline"),
            ),
            "bytes",
            "HeapAlloc saw-tooths with every GC; the live heap after GC is what leaks move.",
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Live heap slope",
            queries(
                (s("leakwatch_heap_live_slope_bytes_per_second"), "live heap slope"),
                (s("leakwatch_heap_alloc_slope_bytes_per_second"), "HeapAlloc slope"),
            ),
            "Bps",
            "Robust (Theil-Sen) slopes over the analysis window: flat for a sawtooth, positive for a leak.",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Growth monotonicity",
            queries((s("leakwatch_heap_growth_monotonicity"), "monotonicity")),
            "percentunit",
            "How one-way the live heap grew over the window (1 = never went down).",
            minimum=0,
        ),
        12,
        7,
    )
    L.add(
        timeseries(
            "Heap objects",
            queries(
                (s("leakwatch_go_memstats_heap_objects"), "HeapObjects"),
                (s("leakwatch_heap_objects_slope_per_second"), "slope /s"),
                (s("leakwatch_heap_profile_inuse_objects"), "in-use objects (heap profile)"),
            ),
            "short",
            "Live heap objects (left axis) and their robust slope in objects per second (right axis): many small retained objects or few large ones.",
        ),
        12,
        7,
    )
    axis_label(L.panels[-1], "objects")
    own_axis(L.panels[-1], ("byFrameRefID", "B"), "cps", "objects / s")

    L.row("GC")
    L.add(
        timeseries(
            "GC pauses",
            queries(
                (s("leakwatch_gc_pause_p99_seconds"), "p99 over the window"),
                (s("leakwatch_gc_pause_max_seconds"), "max over the window"),
                (s("leakwatch_go_memstats_last_gc_pause_seconds"), "last pause"),
                (s("leakwatch_go_memstats_max_gc_pause_seconds"), "max of the last 256"),
            ),
            "s",
            "Stop-the-world GC pauses from MemStats.PauseNs. A heap that keeps growing makes marking, not pauses, longer: watch GC CPU next to it.",
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "GC CPU fraction",
            queries((s("leakwatch_go_memstats_gc_cpu_fraction"), "GC CPU fraction")),
            "percentunit",
            "MemStats.GCCPUFraction: share of the process's CPU time spent in GC since it started (an average over its whole life, so it moves slowly).",
            minimum=0,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "GC cycles per minute",
            queries(
                (f"rate({s('leakwatch_go_memstats_gc_cycles_total')}[{ri}]) * 60", "GC cycles"),
                (f"rate({s('leakwatch_go_memstats_forced_gc_cycles_total')}[{ri}]) * 60", "forced (runtime.GC)"),
            ),
            "cpm",
            "Completed GC cycles per minute (MemStats.NumGC), and those forced by the application. Fewer cycles while HeapAlloc grows means the heap goal keeps rising.",
            minimum=0,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "GC headroom",
            queries((s("leakwatch_gc_headroom_bytes"), "NextGC - HeapAlloc")),
            "bytes",
            "Bytes the service can allocate before the next GC starts.",
            minimum=0,
        ),
        8,
        7,
    )
    L.add(
        timeseries(
            "Time since last GC",
            queries((f"time() - {s('leakwatch_go_memstats_last_gc_time_seconds')}", "since last GC")),
            "s",
            "From MemStats.LastGC. The runtime forces a GC at least every 2 minutes; longer means GC is off (GOGC=off) or the process is stuck.",
            minimum=0,
            threshold=150,
        ),
        8,
        7,
    )
    L.add(
        stat(
            "GOGC",
            [
                q(
                    f"max({s('leakwatch_process_gogc')}) or max({s('leakwatch_process_scrape_success')} == 1) * 100",
                    "GOGC",
                )
            ],
            "none",
            "GOGC from the process environment, 100 (the default) when unset; -1 means GC off. debug.SetGCPercent calls are not visible here.",
            steps=[(None, "red"), (0, "green")],
            mappings=[{"type": "value", "options": {"-1": {"text": "off", "index": 0}}}],
            no_value="no /proc access",
        ),
        4,
        7,
    )
    L.add(
        stat(
            "GOMEMLIMIT vs cgroup limit",
            [q(f"max({s('leakwatch_process_gomemlimit_exceeds_cgroup_limit')})", "GOMEMLIMIT")],
            "none",
            "Whether GOMEMLIMIT is above the cgroup memory limit: then the GC will not save the process from the OOM killer.",
            steps=[(None, "green"), (1, "red")],
            mappings=yes_no("below the limit", "ABOVE the limit"),
            no_value="not both set",
        ),
        4,
        7,
    )

    L.row("Allocation vs free")
    L.add(
        timeseries(
            "Bytes allocated vs freed",
            queries(
                (f"rate({s('leakwatch_go_memstats_alloc_bytes_total')}[{ri}])", "allocated"),
                (
                    f"rate({s('leakwatch_go_memstats_alloc_bytes_total')}[{ri}])"
                    f" - deriv({s('leakwatch_go_memstats_heap_alloc_bytes')}[{ri}])",
                    "freed",
                ),
                (f"deriv({s('leakwatch_heap_profile_alloc_bytes')}[{ri}])", "allocated (heap profile estimate)"),
            ),
            "Bps",
            "Freed = TotalAlloc - HeapAlloc. A leak allocates persistently more than it frees. The heap profile's estimate moves only at each GC.",
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Objects allocated vs freed",
            queries(
                (f"rate({s('leakwatch_go_memstats_mallocs_total')}[{ri}])", "mallocs"),
                (f"rate({s('leakwatch_go_memstats_frees_total')}[{ri}])", "frees"),
                (f"deriv({s('leakwatch_heap_profile_alloc_objects')}[{ri}])", "allocated (heap profile estimate)"),
            ),
            "cps",
            "Mallocs and Frees per second (objects per second).",
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Alloc / free ratio over the window",
            queries(
                (s("leakwatch_alloc_free_bytes_ratio"), "bytes"),
                (s("leakwatch_alloc_free_objects_ratio"), "objects"),
            ),
            "none",
            "Close to 1 for a healthy service; the imbalance alert fires above 1.2 while the live heap grows.",
            threshold=1.2,
        ),
        8,
        8,
    )

    L.row("In-use by package")
    L.add(
        timeseries(
            "In-use heap share by package",
            queries((s("leakwatch_heap_inuse_share"), "{{package}}")),
            "percentunit",
            "Share of in-use heap bytes by allocating package (top N plus other).",
            stack=True,
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Top package share",
            queries((s("leakwatch_heap_top_package_share"), "{{package}}")),
            "percentunit",
            "The alert fires above 95% while the live heap grows.",
            minimum=0,
            threshold=0.95,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "Heap profile in-use",
            queries(
                (s("leakwatch_heap_profile_inuse_bytes"), "in-use bytes"),
                (s("leakwatch_heap_inuse_alloc_ratio"), "in-use / allocated"),
            ),
            "bytes",
            "Estimated in-use bytes in the heap profile, and retention (in-use over allocated, right axis).",
            minimum=0,
        ),
        6,
        8,
    )
    L.panels[-1]["fieldConfig"]["overrides"].append(
        {
            "matcher": {"id": "byFrameRefID", "options": "B"},
            "properties": [{"id": "unit", "value": "percentunit"}, {"id": "custom.axisPlacement", "value": "right"}],
        }
    )

    L.row("Growth by function")
    L.add(
        table(
            "Heap growth by allocation site (now)",
            [q(f"sort_desc({s('leakwatch_heap_growth_bytes')})", "", "A", instant=True, fmt="table")],
            "Growth of estimated in-use bytes over the window by allocation site: where to look first.",
            {"Value": "growth", "function": "function"},
            {"growth": "bytes"},
            "growth",
            True,
        ),
        10,
        9,
    )
    L.panels[-1]["links"] = [link("Paste-ready diff on leakwatch's report page", REPORT_URL)]
    L.add(
        timeseries(
            "Heap growth by allocation site",
            queries((s("leakwatch_heap_growth_bytes"), "{{function}}")),
            "bytes",
            "Growth of estimated in-use bytes over the window, top N sites plus other.",
        ),
        14,
        9,
    )

    L.row("Goroutines and HTTP connections")
    L.add(
        timeseries(
            "Goroutines",
            queries(
                (s("leakwatch_goroutines"), "goroutines"),
                (s("leakwatch_goroutines_leaked"), "proven leaked (goroutineleak)"),
                (s("leakwatch_goroutine_slope_per_second"), "slope /s"),
            ),
            "short",
            "Goroutine count and goroutines the runtime proved leaked (Go 1.26+) on the left axis; the robust slope in goroutines per second on the right.",
        ),
        8,
        8,
    )
    axis_label(L.panels[-1], "goroutines")
    own_axis(L.panels[-1], ("byFrameRefID", "C"), "cps", "goroutines / s")
    L.add(
        timeseries(
            "Goroutines by state",
            queries((s("leakwatch_goroutines_by_state"), "{{state}}")),
            "short",
            "What goroutines are blocked on, classified from their stacks.",
            stack=True,
            minimum=0,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "HTTP client connections",
            queries((s("leakwatch_http_client_connections"), "open connections")),
            "short",
            "net/http persistConn.readLoop goroutines: grows when response bodies are not closed.",
            minimum=0,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Goroutine growth by blocking site",
            queries((s("leakwatch_goroutine_growth"), "{{function}}")),
            "short",
            "Growth of the goroutine count over the window by blocking site.",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Leaked goroutines by function",
            queries((s("leakwatch_goroutines_leaked_by_function"), "{{function}}")),
            "short",
            "From the goroutineleak profile (Go 1.26+); empty when the target does not serve it.",
            minimum=0,
        ),
        12,
        8,
    )

    L.row("Container memory")
    L.add(
        timeseries(
            "Container memory vs limit",
            queries(
                (s("leakwatch_cgroup_memory_usage_bytes"), "usage"),
                (s("leakwatch_cgroup_memory_working_set_bytes"), "working set"),
                (s("leakwatch_cgroup_memory_limit_bytes"), "limit"),
                (s("leakwatch_cgroup_memory_high_bytes"), "memory.high"),
                (s("leakwatch_process_resident_memory_bytes"), "process RSS"),
                (s("leakwatch_cgroup_memory_peak_bytes"), "peak usage"),
                (s("leakwatch_cgroup_memory_swap_usage_bytes"), "swap"),
            ),
            "bytes",
            "The working set (usage minus inactive file pages) is what the OOM killer and kubelet compare to the limit. Swap use hides a leak from usage until swap runs out.",
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Go runtime memory vs RSS",
            queries(
                (s("leakwatch_go_memstats_sys_bytes"), "Go Sys"),
                (s("leakwatch_go_memstats_heap_released_bytes"), "HeapReleased"),
                (s("leakwatch_process_non_go_resident_bytes"), "non-Go resident (cgo, mmap)"),
                (s("leakwatch_go_memstats_stack_inuse_bytes"), "stacks"),
                (s("leakwatch_process_gomemlimit_bytes"), "GOMEMLIMIT"),
            ),
            "bytes",
            "Memory outside the Go heap: stacks, and resident memory Go does not account for.",
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Go Sys by class",
            queries(
                (s("leakwatch_go_memstats_heap_sys_bytes"), "heap (HeapSys)"),
                (s("leakwatch_go_memstats_stack_sys_bytes"), "stacks (StackSys)"),
                (s("leakwatch_go_memstats_mspan_sys_bytes"), "mspan (MSpanSys)"),
                (s("leakwatch_go_memstats_mcache_sys_bytes"), "mcache (MCacheSys)"),
                (s("leakwatch_go_memstats_buck_hash_sys_bytes"), "profiling buckets (BuckHashSys)"),
                (s("leakwatch_go_memstats_gc_sys_bytes"), "GC metadata (GCSys)"),
                (s("leakwatch_go_memstats_other_sys_bytes"), "other (OtherSys)"),
            ),
            "bytes",
            "Where the memory Go obtained from the OS goes; the stack adds up to MemStats.Sys. Growing stacks point at goroutines, growing BuckHashSys at many distinct allocation stacks.",
            stack=True,
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Heap spans",
            queries(
                (s("leakwatch_go_memstats_heap_inuse_bytes"), "in use (HeapInuse)"),
                (s("leakwatch_go_memstats_heap_idle_bytes"), "idle (HeapIdle)"),
                (s("leakwatch_go_memstats_heap_released_bytes"), "returned to the OS (HeapReleased)"),
            ),
            "bytes",
            "HeapIdle minus HeapReleased is memory the runtime holds for reuse; a leak grows HeapInuse.",
            minimum=0,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "Runtime structures in use",
            queries(
                (s("leakwatch_go_memstats_stack_inuse_bytes"), "stacks (StackInuse)"),
                (s("leakwatch_go_memstats_mspan_inuse_bytes"), "mspan (MSpanInuse)"),
                (s("leakwatch_go_memstats_mcache_inuse_bytes"), "mcache (MCacheInuse)"),
            ),
            "bytes",
            "Off-heap runtime memory in use: stacks grow with goroutines, mspans with the number of heap spans.",
            minimum=0,
        ),
        6,
        8,
    )

    L.row("Process")
    L.add(
        timeseries(
            "OS threads",
            queries((s("leakwatch_process_threads"), "threads")),
            "short",
            "Threads of the target's process (/proc/PID/status). Grows with goroutines blocked in system calls or cgo; a thread leak ends at the thread limit, not the OOM killer.",
            minimum=0,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "Open file descriptors",
            queries((s("leakwatch_process_open_fds"), "open fds")),
            "short",
            "Open file descriptors of the target's process. Sockets and files not closed grow this; the process limit is not exported (see /proc/PID/limits, \"Max open files\").",
            minimum=0,
        ),
        6,
        8,
    )
    L.add(
        timeseries(
            "Process memory",
            queries(
                (s("leakwatch_process_resident_memory_bytes"), "RSS (VmRSS)"),
                # VmHWM needs /proc; MaxRSS (getrusage) comes in the heap profile's
                # MemStats trailer (not in expvar's), also for remote targets.
                (
                    f"{s('leakwatch_process_resident_memory_peak_bytes')} or {s('leakwatch_go_memstats_max_rss_bytes')}",
                    "peak RSS",
                ),
                (s("leakwatch_process_virtual_memory_bytes"), "virtual (VmSize)"),
            ),
            "bytes",
            "Resident memory of the process and its peak (VmHWM from /proc, else MemStats.MaxRSS from the heap profile) on the left axis; virtual size on the right axis, large for every Go program and rarely the problem.",
            minimum=0,
        ),
        12,
        8,
    )
    axis_label(L.panels[-1], "resident")
    own_axis(L.panels[-1], ("byFrameRefID", "C"), "bytes", "virtual", minimum=0)
    L.add(
        stat(
            "PID",
            [q(f"max({s('leakwatch_process_pid')})", "pid")],
            "none",
            "PID of the target's process as leakwatch last found it. Restarts are marked on every graph (annotation \"Restarts\").",
            no_value="not found",
        ),
        12,
        4,
    )
    L.add(
        stat(
            "Restarts (time range)",
            [
                q(
                    f"sum(changes({s('leakwatch_process_pid')}[$__range])) or sum(resets({s('leakwatch_go_memstats_alloc_bytes_total')}[$__range]))",
                    "restarts",
                )
            ],
            "short",
            "New processes over the time range: pid changes where leakwatch reads /proc, else resets of MemStats.TotalAlloc.",
            steps=[(None, "green"), (1, "orange")],
        ),
        12,
        4,
    )

    L.row("Memory events and pressure")
    L.add(
        timeseries(
            "cgroup memory events",
            queries((f"rate({s('leakwatch_cgroup_memory_events_total')}[{ri}])", "{{event}}")),
            "ops",
            "memory.events per second: high (throttled), max (hit the limit), oom, oom_kill.",
            minimum=0,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Memory pressure (PSI avg10)",
            queries((s("leakwatch_cgroup_memory_pressure_avg10_ratio"), "{{kind}}")),
            "percentunit",
            "Share of the last 10s in which some (or all) tasks stalled on memory.",
            minimum=0,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Memory stall time",
            queries((f"rate({s('leakwatch_cgroup_memory_pressure_stall_seconds_total')}[{ri}])", "{{kind}}")),
            "percentunit",
            "Seconds stalled on memory per second (PSI total).",
            minimum=0,
        ),
        8,
        8,
    )
    stat_fields = "anon|file|kernel|kernel_stack|pagetables|sock|shmem|slab|rss|cache|mapped_file|file_mapped|unevictable"
    event_fields = 'field=~"pgfault|pgmajfault|workingset_refault_anon|workingset_refault_file|pgscan|pgsteal"'
    L.add(
        timeseries(
            "cgroup memory.stat",
            queries((s("leakwatch_cgroup_memory_stat_bytes", f'field=~"{stat_fields}"'), "{{field}}")),
            "bytes",
            "What the cgroup's memory is: anon (rss on v1) is what a heap leak grows; file (cache) can be reclaimed; kernel and sock grow with connections.",
            minimum=0,
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Page faults and reclaim",
            queries(
                (f"rate({s('leakwatch_cgroup_memory_stat_events_total', event_fields)}[{ri}])", "{{field}}")
            ),
            "ops",
            "memory.stat event counters per second. Major faults and refaults rise when the cgroup is short of memory and the kernel evicts pages it needs again.",
            minimum=0,
        ),
        12,
        8,
    )

    L.row("OOM kills")
    oom_events = s("leakwatch_cgroup_memory_events_total", 'event="oom_kill"')
    L.add(
        stat(
            "OOM kills (kernel log)",
            [q(f"sum(increase({s('leakwatch_oom_kills_total')}[$__range]))", "kills")],
            "short",
            "OOM kills of the target's process seen in the kernel log over the time range.",
            steps=[(None, "green"), (1, "red")],
        ),
        6,
        5,
    )
    L.add(
        stat(
            "OOM kills (memory.events)",
            [q(f"sum(increase({oom_events}[$__range]))", "kills")],
            "short",
            "oom_kill events of the target's cgroup over the time range.",
            steps=[(None, "green"), (1, "red")],
        ),
        6,
        5,
    )
    L.add(
        stat(
            "Last OOM kill",
            [q(f"max({s('leakwatch_last_oom_kill_timestamp_seconds')}) * 1000", "last kill")],
            "dateTimeFromNow",
            "When the target's process was last OOM-killed.",
            no_value="never seen",
        ),
        6,
        5,
    )
    L.add(
        stat(
            "RSS at the last OOM kill",
            [q(f"max({s('leakwatch_last_oom_kill_anon_rss_bytes')})", "anon RSS")],
            "bytes",
            "Anonymous RSS of the process when it was killed.",
        ),
        6,
        5,
    )
    L.add(
        timeseries(
            "OOM kills",
            queries(
                (f"increase({s('leakwatch_oom_kills_total')}[{ri}])", "kernel log"),
                (f"increase({oom_events}[{ri}])", "memory.events"),
            ),
            "short",
            "OOM kills per interval from both sources.",
            minimum=0,
            bars=True,
        ),
        24,
        6,
    )

    L.row("Dumps")
    L.add(
        timeseries(
            "Dumps by profile type and result",
            queries(
                (
                    f"sum by (profile_type, result) (increase({s('leakwatch_pprof_dump_total')}[{ri}]))",
                    "{{profile_type}} {{result}}",
                )
            ),
            "short",
            "Profile dumps written or failed per interval.",
            minimum=0,
            bars=True,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Dump failure ratio (30m)",
            queries((s("target_profile_type:leakwatch_pprof_dump:failure_ratio30m"), "{{profile_type}}")),
            "percentunit",
            "Share of failed dumps over 30 minutes; the alert fires above 5%.",
            minimum=0,
            threshold=0.05,
        ),
        8,
        8,
    )
    L.add(
        timeseries(
            "Dump bytes written",
            queries((f"rate({s('leakwatch_pprof_dump_bytes_total')}[{ri}])", "{{profile_type}}")),
            "Bps",
            "Bytes of profile dumps written per second, by profile type.",
            minimum=0,
        ),
        8,
        8,
    )
    L.add(
        stat(
            "Last successful dump",
            [q(f"max by (profile_type) ({s('leakwatch_pprof_dump_last_success_timestamp_seconds')}) * 1000", "{{profile_type}}")],
            "dateTimeFromNow",
            "When the last dump of each profile type was written. The links list the files leakwatch keeps.",
            no_value="none yet",
            links=[link("This target's dumps", TARGET_DUMPS_URL), link("All dumps", DUMPS_URL)],
        ),
        24,
        4,
    )

    L.row("Exporter health")
    L.add(
        stat(
            "Up",
            [q(s("leakwatch_up"), "{{target}}")],
            "none",
            "1 if the last scrape of the target's heap profile succeeded.",
            steps=[(None, "red"), (1, "green")],
            mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "index": 0}, "1": {"text": "up", "index": 1}}}],
        ),
        4,
        8,
    )
    L.add(
        timeseries(
            "Scrape duration by endpoint",
            queries((s("leakwatch_scrape_duration_seconds"), "{{endpoint}}")),
            "s",
            "Duration of the last request to each pprof endpoint.",
            minimum=0,
        ),
        7,
        8,
    )
    L.add(
        timeseries(
            "Scrape errors",
            queries(
                (
                    f"sum by (endpoint, reason) (rate({s('leakwatch_scrape_errors_total')}[{ri}]))",
                    "{{endpoint}} {{reason}}",
                )
            ),
            "reqps",
            "Failed requests to the target by endpoint and reason.",
            minimum=0,
        ),
        7,
        8,
    )
    L.add(
        timeseries(
            "Effective interval and overhead",
            queries(
                (s("leakwatch_effective_interval_seconds"), "interval {{endpoint}}"),
                (s("leakwatch_overhead_ratio"), "overhead {{endpoint}}"),
                (s("leakwatch_overhead_budget_ratio"), "overhead budget"),
            ),
            "s",
            "Interval actually used per endpoint once the overhead budget stretched it; overhead as a share of one core (right axis).",
            minimum=0,
        ),
        6,
        8,
    )
    L.panels[-1]["fieldConfig"]["overrides"].append(
        {
            "matcher": {"id": "byRegexp", "options": "overhead.*"},
            "properties": [{"id": "unit", "value": "percentunit"}, {"id": "custom.axisPlacement", "value": "right"}],
        }
    )
    L.add(
        timeseries(
            "Time since last successful scrape",
            queries(
                (f"time() - {s('leakwatch_last_success_timestamp_seconds')}", "since last success"),
                (f"time() - {s('leakwatch_last_scrape_timestamp_seconds')}", "since last scrape (any result)"),
            ),
            "s",
            "Grows while the target is down: every leak signal is stale meanwhile. If the last scrape is old too, leakwatch itself has stopped scraping.",
            minimum=0,
        ),
        12,
        6,
    )
    L.add(
        timeseries(
            "Analysis window",
            queries(
                (s("leakwatch_window_samples"), "samples"),
                (s("leakwatch_window_span_seconds"), "span"),
            ),
            "short",
            "Samples in the analysis window and the time they cover (right axis); verdicts need a full window.",
            minimum=0,
        ),
        12,
        6,
    )
    L.panels[-1]["fieldConfig"]["overrides"].append(
        {
            "matcher": {"id": "byFrameRefID", "options": "B"},
            "properties": [{"id": "unit", "value": "s"}, {"id": "custom.axisPlacement", "value": "right"}],
        }
    )
    L.add(
        stat(
            "What leakwatch can read",
            [
                q(f"max by (source) ({s('leakwatch_go_memstats_info')})", "MemStats ({{source}})", "A"),
                q(f"max({s('leakwatch_process_scrape_success')})", "/proc", "B"),
                q(f"max({s('leakwatch_cgroup_scrape_success')})", "cgroup", "C"),
                q(f"max by (version, path) ({s('leakwatch_cgroup_info')})", "cgroup v{{version}} {{path}}", "D"),
                q(f"max({s('leakwatch_goroutineleak_profile_available')})", "goroutineleak profile", "E"),
                q(f'max by (source) (leakwatch_kernel_log_readable{{job=~"$job"}})', "kernel log {{source}}", "F"),
            ],
            "none",
            "The sources behind the panels. /proc, cgroup and kernel log feed the process, container and OOM panels (they need `process:` or `cgroup:` on the target and `system.kernel_log`); the goroutineleak profile needs Go 1.26+.",
            steps=[(None, "red"), (1, "green")],
            mappings=yes_no(),
            text_mode="value_and_name",
        ),
        16,
        5,
    )
    L.add(
        stat(
            "Heap profile",
            [
                q(f"max({s('leakwatch_heap_profile_sampling_period_bytes')})", "sampling period", "A"),
                q(f"max({s('leakwatch_heap_profile_records')})", "allocation stacks", "B"),
            ],
            "bytes",
            "runtime.MemProfileRate (0 = heap profiling off: no growth by function) and the distinct allocation stacks in the heap profile.",
            steps=[(None, "red"), (1, "blue")],
            mappings=[{"type": "value", "options": {"0": {"text": "off", "index": 0}}}],
            text_mode="value_and_name",
        ),
        8,
        5,
    )
    L.panels[-1]["fieldConfig"]["overrides"].append(
        {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [{"id": "unit", "value": "short"}]}
    )

    return dashboard(
        "leakwatch-target",
        "leakwatch / Target",
        "One Go service watched by leakwatch: leak verdict, heap, GC, goroutines, container and process memory, dumps.",
        L,
        target_multi=False,
        links=[
            ("Report page: ${target}", REPORT_URL, "leakwatch's page for this target: verdict, evidence, paste-ready diff"),
            ("Dumps: ${target}", TARGET_DUMPS_URL, "Profile dumps leakwatch keeps for this target"),
        ],
    )


def fleet_dashboard():
    L = Layout()
    fsel = 'job=~"$job", target=~"$target"'
    gsel = 'job=~"$job"'  # leakwatch's own series carry no target label
    target_links = [
        {
            "title": "Open the target dashboard",
            "url": "/d/leakwatch-target/leakwatch-target?var-datasource=${datasource}&var-job=${__data.fields.job}&var-target=${__value.raw}&var-lw_fallback=${lw_fallback}&${__url_time_range}",
        },
        link("Open leakwatch's report page", "${__data.fields.external_url}/targets/${__value.raw}"),
    ]
    urls = URL_BY_TARGET.format(sel=fsel)

    def with_url(expr):
        """`expr` with the `external_url` of its target's leakwatch as a label (values unchanged)."""
        return f"({expr}) * on (job, target) group_left (external_url) (topk by (job, target) (1, {urls}) * 0 + 1)"


    L.row("Fleet")
    L.add(
        stat("Targets", [q(f"count(leakwatch_up{{{fsel}}})", "targets")], "short", "Targets watched by leakwatch."),
        6,
        4,
    )
    L.add(
        stat(
            "Targets down",
            [q(f"count(leakwatch_up{{{fsel}}} == 0) or vector(0)", "down")],
            "short",
            "Targets whose heap profile cannot be read.",
            steps=[(None, "green"), (1, "red")],
        ),
        6,
        4,
    )
    L.add(
        stat(
            "Leaks suspected",
            [q(f"count(leakwatch_leak_suspected{{{fsel}}} == 1) or vector(0)", "suspected")],
            "short",
            "Target and kind pairs with a leak verdict.",
            steps=[(None, "green"), (1, "red")],
        ),
        6,
        4,
    )
    L.add(
        stat(
            "OOM kills (time range)",
            [q(f"sum(increase(leakwatch_oom_kills_total{{{fsel}}}[$__range])) or vector(0)", "kills")],
            "short",
            "OOM kills of watched processes seen in the kernel log over the time range.",
            steps=[(None, "green"), (1, "red")],
        ),
        6,
        4,
    )

    L.row("Ranking")
    L.add(
        table(
            "Targets by live-heap slope",
            [
                q(with_url(f"target:leakwatch_heap_live_slope_bytes_per_second:max{{{fsel}}}"), "", "A", True, "table"),
                q(with_url(f"target:leakwatch_heap_live_bytes:max{{{fsel}}}"), "", "B", True, "table"),
                q(with_url(f"target:leakwatch_heap_live_slope_bytes_per_second:ratio_per_hour{{{fsel}}}"), "", "C", True, "table"),
            ],
            "Fastest-growing live heaps first. Click a target to open its dashboard.",
            {"Value #A": "live heap slope", "Value #B": "live heap", "Value #C": "growth per hour"},
            {"live heap slope": "Bps", "live heap": "bytes", "growth per hour": "percentunit"},
            "live heap slope",
            True,
            target_links,
        ),
        12,
        12,
    )
    L.add(
        table(
            "Targets by time to OOM",
            [
                q(with_url(f"target:leakwatch_time_to_oom_seconds:min{{{fsel}}}"), "", "A", True, "table"),
                q(with_url(f"target:leakwatch_heap_live_slope_bytes_per_second:max{{{fsel}}}"), "", "B", True, "table"),
            ],
            "Targets that reach their memory limit soonest first; targets not growing have no time to OOM.",
            {"Value #A": "time to OOM", "Value #B": "live heap slope"},
            {"time to OOM": "s", "live heap slope": "Bps"},
            "time to OOM",
            False,
            target_links,
        ),
        12,
        12,
    )
    L.add(
        timeseries(
            "Live-heap slope, top 10 targets",
            queries((f"topk(10, target:leakwatch_heap_live_slope_bytes_per_second:max{{{fsel}}})", "{{target}}")),
            "Bps",
            "The ten fastest-growing live heaps.",
        ),
        12,
        8,
    )
    L.add(
        timeseries(
            "Time to OOM, 10 soonest",
            queries((f"bottomk(10, target:leakwatch_time_to_oom_seconds:min{{{fsel}}})", "{{target}}")),
            "s",
            "The ten targets closest to their memory limit.",
            minimum=0,
            threshold=3600,
        ),
        12,
        8,
    )
    L.add(
        table(
            "Leak verdicts",
            [
                q(with_url(f"max without (instance) (leakwatch_leak_suspected{{{fsel}}}) == 1"), "", "A", True, "table"),
                q(with_url(f"max without (instance) (leakwatch_leak_score{{{fsel}}})"), "", "B", True, "table"),
            ],
            "Every suspected leak, with its kind and score.",
            {"Value #A": "suspected", "Value #B": "score"},
            {"score": "percentunit"},
            "score",
            True,
            target_links,
        ),
        24,
        8,
    )

    L.row("leakwatch")
    L.add(
        stat(
            "Version",
            [q(f"count by (version) (leakwatch_build_info{{{gsel}}})", "{{version}}")],
            "none",
            "leakwatch versions running (leakwatch_build_info), with how many instances run each.",
            steps=[(None, "blue")],
            text_mode="name",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Targets configured",
            [q(f"sum(leakwatch_targets{{{gsel}}})", "configured")],
            "short",
            "Targets in leakwatch's configuration, over all its instances (each shard counts its own).",
            steps=[(None, "blue")],
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Config reload",
            [q(f"min(leakwatch_config_last_reload_successful{{{gsel}}})", "last reload")],
            "none",
            "Whether the last configuration reload succeeded on every instance; a failed reload keeps the previous configuration.",
            steps=[(None, "red"), (1, "green")],
            mappings=yes_no("FAILED", "ok"),
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Last successful reload",
            [q(f"min(leakwatch_config_last_reload_success_timestamp_seconds{{{gsel}}}) * 1000", "last reload")],
            "dateTimeFromNow",
            "When the configuration was last loaded successfully (the oldest over instances).",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "Kernel log",
            [q(f"min(leakwatch_kernel_log_readable{{{gsel}}})", "readable")],
            "none",
            "Whether leakwatch can read the kernel log for OOM-kill reports (system.kernel_log).",
            steps=[(None, "red"), (1, "green")],
            mappings=yes_no("NOT readable", "readable"),
            no_value="off",
        ),
        4,
        4,
    )
    L.add(
        stat(
            "OOM kills of no target",
            [q(f"sum(increase(leakwatch_host_oom_kills_total{{{gsel}}}[$__range])) or vector(0)", "kills")],
            "short",
            "OOM kills in the kernel log over the time range that match no watched target: memory pressure on the host.",
            steps=[(None, "green"), (1, "orange")],
        ),
        4,
        4,
    )

    return dashboard(
        "leakwatch-fleet",
        "leakwatch / Fleet",
        "Every target watched by leakwatch, ranked by live-heap growth and time to OOM.",
        L,
        target_multi=True,
        links=[
            ("leakwatch home", "${lw_url}/", "leakwatch's landing page: every target and its verdict"),
            ("Dumps", DUMPS_URL, "Every profile dump leakwatch keeps"),
        ],
    )


def render(d):
    return json.dumps(d, indent=2, sort_keys=False) + "\n"


def exported_metrics():
    """Metric names of the README's "Metrics reference" table (generated from src/metrics.rs)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- metrics:begin -->")[1].split("<!-- metrics:end -->")[0]
    return re.findall(r"^\| `([a-z0-9_:]+)`", table, re.M)


def coverage(dashboards):
    """Prints the exported metrics no panel queries; returns how many lack a reason."""
    exprs = [t["expr"] for d in dashboards for p in d["panels"] for t in p.get("targets", [])]
    tokens = set()
    for e in exprs:
        tokens.update(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e))
    names = exported_metrics()
    missing = [n for n in names if n not in tokens]
    unexplained = [n for n in missing if n not in NOT_ON_PANELS]
    print(f"{len(names)} exported metrics, {len(names) - len(missing)} on some panel, {len(missing)} on none")
    for n in missing:
        print(f"  {n}: {NOT_ON_PANELS.get(n, 'NO PANEL AND NO REASON')}")
    return len(unexplained)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if dashboards/*.json differ from what this script generates")
    parser.add_argument("--coverage", action="store_true", help="list the exported metrics on no panel; fail if one has no reason")
    args = parser.parse_args()
    if args.coverage:
        return 1 if coverage([target_dashboard(), fleet_dashboard()]) else 0
    outputs = {
        OUT / "leakwatch-target.json": render(target_dashboard()),
        OUT / "leakwatch-fleet.json": render(fleet_dashboard()),
    }
    stale = []
    for path, text in outputs.items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run scripts/gen-dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
