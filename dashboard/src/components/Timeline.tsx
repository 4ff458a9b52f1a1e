// The incident's path through the graph, from the audit log.
import { useState } from "react";
import type { TimelineEntry } from "../api";
import { fmtTime } from "../format";

function detailLine(e: TimelineEntry): string | null {
  const d = e.details as Record<string, any>;
  if (e.action_type === "SCRIPT_EXEC" && d.phase) return `${d.phase}${d.status ? `: ${d.status}` : ""}`;
  if (e.action_type === "VERIFICATION" && d.output) {
    const o = d.output as Record<string, unknown>;
    return `${o.recovered ? "recovered" : "not recovered"}${o.reason ? ` — ${o.reason}` : ""}`;
  }
  if (e.action_type === "POLICY_EVAL" && d.output?.outcome) return String(d.output.outcome);
  if (e.action_type === "APPROVAL" && d.decision) return `${d.decision} by ${d.user ?? "?"}`;
  if (d.reason) return String(d.reason);
  if (d.step && d.step !== e.summary) return String(d.step);
  return null;
}

export function Timeline(props: { entries: TimelineEntry[] }) {
  const [open, setOpen] = useState<number | null>(null);
  if (!props.entries.length) return <p className="muted">Nothing recorded yet.</p>;
  return (
    <ol className="timeline" data-testid="timeline">
      {props.entries.map((e) => {
        const line = detailLine(e);
        return (
          <li key={e.seq} className={`tl-${e.action_type.toLowerCase()}`}>
            <button className="tl-head" onClick={() => setOpen(open === e.seq ? null : e.seq)}>
              <span className="tl-time">{fmtTime(e.timestamp)}</span>
              {e.action_type !== e.summary && <span className="tl-type">{e.action_type}</span>}
              <span className="tl-summary">{e.summary}</span>
              <span className="tl-actor">{e.actor}</span>
            </button>
            {line && <div className="tl-line">{line}</div>}
            {open === e.seq && <pre className="tl-details">{JSON.stringify(e.details, null, 2)}</pre>}
          </li>
        );
      })}
    </ol>
  );
}

/** Execution results (SCRIPT_EXEC phase=result) and verification outcomes from the timeline. */
export function ExecutionAndVerification(props: { entries: TimelineEntry[] }) {
  const results = props.entries.filter(
    (e) => e.action_type === "SCRIPT_EXEC" && (e.details as Record<string, unknown>).phase === "result",
  );
  const verifications = props.entries.filter((e) => e.action_type === "VERIFICATION");
  return (
    <div className="exec">
      <h3>Execution</h3>
      {results.length === 0 ? (
        <p className="muted">Nothing executed yet.</p>
      ) : (
        results.map((e) => {
          const d = e.details as Record<string, unknown>;
          return (
            <div key={e.seq} data-testid="execution-result">
              <p>
                <b>{String(d.status ?? e.summary)}</b> at {fmtTime(e.timestamp)}
                {d.target ? <> on <code>{String(d.target)}</code></> : null}
              </p>
              <pre className="output">{JSON.stringify(d.result ?? d, null, 2)}</pre>
            </div>
          );
        })
      )}
      <h3>Verification</h3>
      {verifications.length === 0 ? (
        <p className="muted">No verification recorded.</p>
      ) : (
        verifications.map((e) => {
          const o = ((e.details as Record<string, unknown>).output ?? {}) as Record<string, unknown>;
          return (
            <p key={e.seq} data-testid="verification">
              <span className={o.recovered ? "badge st-closed" : "badge st-escalated"}>
                {o.recovered ? "recovered" : "not recovered"}
              </span>{" "}
              {String(o.reason ?? e.summary)}
            </p>
          );
        })
      )}
    </div>
  );
}
