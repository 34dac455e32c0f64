"""Reports > Alerts: the MSP figures (alerts.services.metrics) with server-rendered SVG charts (no script,
no CDN)."""

from __future__ import annotations

from django.shortcuts import render

from alerts.services import metrics as svc
from psa.web.access import member_required

BY_LABELS = {"rule": "Rule", "client": "Client", "integration": "Integration"}
CHART_W, CHART_H, PAD_L, PAD_B = 720, 200, 40, 24


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def series_chart(points: list[dict], hourly: bool) -> dict:
    """Bar pairs (alerts, tickets) per bucket, scaled into the SVG box; labels every few buckets."""
    top = max([1, *(p["alerts"] for p in points), *(p["tickets"] for p in points)])
    n = max(1, len(points))
    slot = (CHART_W - PAD_L) / n
    width = max(1.0, slot * 0.4)
    plot_h = CHART_H - PAD_B - 8
    every = max(1, n // 8)
    bars = []
    for i, p in enumerate(points):
        x = PAD_L + i * slot
        a_h = plot_h * p["alerts"] / top
        t_h = plot_h * p["tickets"] / top
        bars.append({
            "x": round(x + slot * 0.1, 1), "x2": round(x + slot * 0.1 + width, 1), "w": round(width, 1),
            "ay": round(8 + plot_h - a_h, 1), "ah": round(a_h, 1), "ty": round(8 + plot_h - t_h, 1),
            "th": round(t_h, 1), "alerts": p["alerts"], "tickets": p["tickets"],
            "label": p["at"].strftime("%H:%M" if hourly else "%d %b") if i % every == 0 else "",
            "when": p["at"].strftime("%Y-%m-%d %H:%M" if hourly else "%Y-%m-%d"),
        })
    return {"bars": bars, "top": top, "w": CHART_W, "h": CHART_H, "base": CHART_H - PAD_B, "pad": PAD_L,
            "label_y": CHART_H - 8}


@member_required
def metrics_page(request):
    period = request.GET.get("period", "7d")
    by = request.GET.get("by", "rule")
    period = period if period in svc.PERIODS else "7d"
    by = by if by in svc.GROUPINGS else "rule"
    rows = svc.figures(by, period)
    top = max([1, *(r["alerts"] for r in rows)])
    for r in rows:
        r["alerts_pct"] = round(100 * r["alerts"] / top, 1)
        r["tickets_pct"] = round(100 * r["tickets"] / top, 1)
        r["dedup_pct"] = round(100 * r["dedup_ratio"], 1)
        r["mtta"], r["mttr"] = _duration(r["mtta_seconds"]), _duration(r["mttr_seconds"])
    totals = {k: sum(r[k] for r in rows) for k in ("alerts", "tickets", "suppressed", "ignored")}
    return render(request, "alerts/metrics_page.html", {
        "rows": rows, "period": period, "by": by, "periods": list(svc.PERIODS), "groupings": BY_LABELS,
        "by_label": BY_LABELS[by], "chart": series_chart(svc.series(period), period == "24h"), "totals": totals,
    })
