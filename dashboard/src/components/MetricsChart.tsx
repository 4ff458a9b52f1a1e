// Key metrics from the stored context snapshot, one uPlot chart per query.
import { useEffect, useMemo, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Snapshot } from "../api";
import { chartsFromSnapshot, type ChartSpec } from "../snapshot";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

function aligned(spec: ChartSpec): uPlot.AlignedData {
  const xs = Array.from(new Set(spec.series.flatMap((s) => s.points.map((p) => p[0])))).sort((a, b) => a - b);
  const pos = new Map(xs.map((x, i) => [x, i]));
  const ys = spec.series.map((s) => {
    const arr: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, y] of s.points) arr[pos.get(t)!] = y;
    return arr;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

export function MetricChart(props: { spec: ChartSpec; markAt?: number | null }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = () => Math.max(240, el.clientWidth || 600);
    const mark = props.markAt;
    const opts: uPlot.Options = {
      width: width(),
      height: 180,
      legend: { show: true },
      scales: { x: { time: true } },
      series: [
        {},
        ...props.spec.series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: true,
        })),
      ],
      hooks:
        mark != null
          ? {
              draw: [
                (u: uPlot) => {
                  const x = u.valToPos(mark, "x", true);
                  const ctx = u.ctx;
                  ctx.save();
                  ctx.strokeStyle = "#dc2626";
                  ctx.setLineDash([4, 4]);
                  ctx.beginPath();
                  ctx.moveTo(x, u.bbox.top);
                  ctx.lineTo(x, u.bbox.top + u.bbox.height);
                  ctx.stroke();
                  ctx.restore();
                },
              ],
            }
          : {},
    };
    const plot = new uPlot(opts, aligned(props.spec), el);
    const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => plot.setSize({ width: width(), height: 180 })) : null;
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      plot.destroy();
    };
  }, [props.spec, props.markAt]);
  return (
    <figure className="chart">
      <figcaption>{props.spec.title}</figcaption>
      <div ref={ref} />
    </figure>
  );
}

export function MetricsCharts(props: { snapshot: Snapshot | undefined; markAt?: number | null }) {
  const id = props.snapshot?.snapshot_id;
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const specs = useMemo(() => chartsFromSnapshot(props.snapshot), [id]);
  if (!specs.length) return <p className="muted">No metric series in the stored snapshot.</p>;
  return (
    <div className="charts">
      {specs.map((s) => (
        <MetricChart key={s.title} spec={s} markAt={props.markAt} />
      ))}
    </div>
  );
}
