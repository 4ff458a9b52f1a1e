import { describe, expect, it } from "vitest";
import { chartsFromSnapshot } from "./snapshot";
import type { Snapshot } from "./api";

const snap = (data: Snapshot["data"]): Snapshot => ({
  snapshot_id: "s1",
  created_at: "2026-11-25T05:00:00Z",
  sources: {},
  data,
  size_bytes: 1,
});

describe("chartsFromSnapshot", () => {
  it("reads data[source].queries[].data.series[].values, one chart per query", () => {
    const specs = chartsFromSnapshot(
      snap({
        prometheus: {
          ok: true,
          queries: [
            {
              name: "error_ratio",
              ok: true,
              data: {
                series: [
                  { metric: { service: "checkout", pod: "c-1" }, values: [[100, "0.1"], [115, "0.4"], [130, "NaN"]] },
                  { metric: {}, values: [[100, "1"]] },
                ],
              },
            },
            { name: "empty", ok: true, data: { series: [] } },
            { name: "failed", ok: false, error: "timeout", data: null },
          ],
        },
        kubernetes: { ok: true, events: [] },
      }),
    );
    expect(specs).toHaveLength(1);
    expect(specs[0].title).toBe("prometheus: error_ratio");
    expect(specs[0].series.map((s) => s.label)).toEqual(["service=checkout,pod=c-1", "value"]);
    expect(specs[0].series[0].points).toEqual([
      [100, 0.1],
      [115, 0.4],
    ]);
  });

  it("is empty without a snapshot", () => {
    expect(chartsFromSnapshot(undefined)).toEqual([]);
  });
});
