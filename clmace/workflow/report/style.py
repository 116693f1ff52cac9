"""The report page's inline stylesheet (kept in Python so the package needs no data files)."""

CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --blue:#2563eb; --ok:#16a34a;
        --warn:#d97706; --err:#dc2626; --info:#0284c7; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: linear-gradient(120deg, #1e3a8a, #2563eb); color: #fff; padding: 28px 0 22px; }
header .wrap, main { max-width: 1120px; margin: 0 auto; padding: 0 28px; }
header h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; }
header p { margin: 0; opacity: .85; }
nav { margin-top: 14px; display: flex; flex-wrap: wrap; gap: 6px; }
nav a { color: #fff; text-decoration: none; font-size: 13px; padding: 3px 10px; border-radius: 999px;
        background: rgba(255,255,255,.14); }
nav a:hover { background: rgba(255,255,255,.28); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px 20px;
          margin: 18px 0; }
h2 { margin: 0 0 12px; font-size: 19px; font-weight: 650; }
h3 { margin: 16px 0 6px; font-size: 15px; font-weight: 600; color: #334155; }
p.lead { margin: 0 0 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 4px 0 8px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; color: #334155; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv td:first-child { width: 240px; color: var(--muted); }
code, .mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #0f172a; color: #e2e8f0; padding: 10px 14px; border-radius: 8px; overflow-x: auto;
      font-size: 12.5px; white-space: pre-wrap; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; margin: 4px 0 14px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; background: #fcfdff; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.card .value { font-size: 22px; font-weight: 650; margin-top: 2px; }
.card .sub { font-size: 12.5px; color: var(--muted); }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
         color: #fff; }
.badge.ok, .badge.pass { background: var(--ok); } .badge.failed, .badge.fail, .badge.error { background: var(--err); }
.badge.warning { background: var(--warn); } .badge.info { background: var(--info); }
.badge.skipped { background: #94a3b8; }
.value.pass { color: var(--ok); } .value.fail { color: var(--err); }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
@media (max-width: 860px) { .grid2 { grid-template-columns: 1fr; } }
img.chart { width: 100%; height: auto; display: block; margin: 6px 0; }
.bar { background: #dbeafe; height: 10px; border-radius: 3px; min-width: 2px; }
.bar-cell { width: 45%; }
.issue { border-left: 4px solid var(--line); padding: 8px 14px; margin: 8px 0; background: #fbfdff;
         border-radius: 0 8px 8px 0; }
.issue.error { border-color: var(--err); } .issue.warning { border-color: var(--warn); }
.issue.info { border-color: var(--info); } .issue.ok { border-color: var(--ok); }
.issue .title { font-weight: 600; }
.issue .detail { white-space: pre-wrap; color: #334155; font-size: 13.5px; margin-top: 2px; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--blue); font-size: 13.5px; padding: 3px 0; }
footer { text-align: center; color: var(--muted); font-size: 12.5px; padding: 10px 0 30px; }
"""
