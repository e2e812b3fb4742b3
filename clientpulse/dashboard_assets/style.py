"""The one stylesheet, inlined into every page and the HTML report: no file or font to fetch."""

CSS = """
:root{--ink:#1e293b;--muted:#64748b;--line:#e2e8f0;--bg:#f1f5f9;--card:#fff;--blue:#2563eb;--red:#dc2626;
--green:#16a34a;--amber:#d97706;--violet:#7c3aed;--teal:#0d9488}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",
"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;font-variant-numeric:tabular-nums}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
header.top{background:#0f172a;color:#e2e8f0;padding:10px 24px;display:flex;gap:24px;align-items:center;
flex-wrap:wrap;position:sticky;top:0;z-index:2}
header.top .brand{font-weight:700;font-size:16px;color:#fff;letter-spacing:.2px}
header.top .brand small{font-weight:400;color:#94a3b8;margin-left:8px}
header.top nav{display:flex;gap:16px;flex-wrap:wrap}header.top nav a{color:#cbd5e1}
header.top form{margin-left:auto;display:flex;gap:6px}
header.top input{border:1px solid #334155;background:#1e293b;color:#fff;border-radius:6px;padding:5px 8px;width:150px}
header.top button{border:0;background:var(--blue);color:#fff;border-radius:6px;padding:5px 10px;cursor:pointer}
main{max-width:1320px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:28px 0 10px;display:flex;gap:10px;align-items:baseline}
h2 small,h1 small,.sub{color:var(--muted);font-weight:400;font-size:13px}
.bar-row{display:flex;justify-content:space-between;align-items:flex-end;flex-wrap:wrap;gap:10px}
.windows a{display:inline-block;padding:3px 10px;border:1px solid var(--line);border-radius:14px;margin-left:4px;
background:#fff;color:var(--ink)}.windows a.on{background:var(--ink);color:#fff;border-color:var(--ink)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin-top:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:24px;font-weight:650;margin:2px 0}
.delta{font-size:12px}.up{color:var(--green)}.down{color:var(--red)}.flat{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px}
.grid.spaced{margin-top:14px}
@media (max-width:860px){.grid{grid-template-columns:1fr}}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;min-width:0}
.panel h3{margin:0 0 6px;font-size:14px}.panel h3 small{color:var(--muted);font-weight:400}
svg.chart{display:block;max-width:100%;height:auto}
table{width:100%;border-collapse:collapse;background:var(--card)}
th,td{text-align:left;padding:7px 9px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#f8fafc}
td.num,th.num{text-align:right;white-space:nowrap}
.table-wrap{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:auto}
ul.tight{margin:0;padding-left:16px}ul.tight li{margin:1px 0}td ul.tight{min-width:170px}
.panel th,.panel td{padding:5px 6px;font-size:12.5px}.panel td.num{white-space:normal}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;color:#fff;
white-space:nowrap}
.tier-key{background:var(--violet)}.tier-stable{background:var(--blue)}.tier-potential{background:var(--teal)}
.tier-none{background:#94a3b8}.abc{background:#475569}
.sev-critical{background:var(--red)}.sev-high{background:#ea580c}.sev-warning{background:var(--amber)}
.sev-info{background:#64748b}.ok{background:var(--green)}.bad{background:var(--red)}
.chips{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 10px}
.chip{background:#fff;border:1px solid var(--line);border-radius:8px;padding:6px 10px;font-size:13px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:6px 18px;margin:10px 0}
.facts div span{display:block;color:var(--muted);font-size:12px}
.risk-box{border-left:4px solid var(--red);background:#fff7f7;padding:8px 12px;border-radius:6px;margin:10px 0}
.risk-box.calm{border-color:var(--green);background:#f6fef9}
.zh{color:var(--muted);font-size:12px}
footer{color:var(--muted);font-size:12px;margin-top:30px}
@media print{header.top{position:static}.windows,header.top form{display:none}.table-wrap{overflow:visible}}
"""
