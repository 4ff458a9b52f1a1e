// Metric series of a stored context snapshot, shaped for charts.
import type { Snapshot, SnapshotQuery } from "./api";

export interface ChartSeries {
  label: string;
  points: [number, number][];
}

export interface ChartSpec {
  title: string;
  series: ChartSeries[];
}

function labelOf(metric: Record<string, string> | undefined): string {
  if (!metric) return "value";
  const keys = ["service", "deployment", "pod", "instance", "job"];
  const parts = keys.filter((k) => metric[k]).map((k) => `${k}=${metric[k]}`);
  return parts.length ? parts.join(",") : Object.entries(metric).map(([k, v]) => `${k}=${v}`).join(",") || "value";
}

/** data[source].queries[].data.series[].values → chart specs (at most `max`). */
export function chartsFromSnapshot(snap: Snapshot | undefined, max = 6): ChartSpec[] {
  if (!snap) return [];
  const out: ChartSpec[] = [];
  for (const [source, raw] of Object.entries(snap.data ?? {})) {
    const queries = (raw as { queries?: SnapshotQuery[] } | null)?.queries ?? [];
    for (const q of queries) {
      const series = q?.data?.series ?? [];
      const cs: ChartSeries[] = [];
      for (const s of series.slice(0, 8)) {
        const pts: [number, number][] = [];
        for (const v of s.values ?? []) {
          const t = Number(v[0]);
          const y = Number(v[1]);
          if (Number.isFinite(t) && Number.isFinite(y)) pts.push([t, y]);
        }
        if (pts.length) cs.push({ label: labelOf(s.metric), points: pts });
      }
      if (cs.length) out.push({ title: `${source}: ${q.name ?? q.query ?? "query"}`, series: cs });
      if (out.length >= max) return out;
    }
  }
  return out;
}
