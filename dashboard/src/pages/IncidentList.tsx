import { useState } from "react";
import { api, type IncidentPage, type IncidentSummary } from "../api";
import { fmtTime, statusClass } from "../format";
import { Link } from "../router";
import { usePoll } from "../usePoll";

export const STATUSES = ["OPEN", "ANALYZING", "AWAITING_APPROVAL", "MITIGATING", "VERIFYING", "ESCALATED", "CLOSED"];

export function IncidentTable(props: { items: IncidentSummary[] }) {
  if (!props.items.length) return <p className="muted">No incidents.</p>;
  return (
    <table className="list" data-testid="incident-table">
      <thead>
        <tr>
          <th>Status</th>
          <th>Incident</th>
          <th>Service</th>
          <th>Severity</th>
          <th>Opened</th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((i) => (
          <tr key={i.incident_id} data-testid="incident-row">
            <td data-label="Status">
              <span className={statusClass(i.status)}>{i.status}</span>
            </td>
            <td data-label="Incident">
              <Link to={`/incidents/${encodeURIComponent(i.incident_id)}`}>{i.title || i.incident_id}</Link>
            </td>
            <td data-label="Service">{i.service}</td>
            <td data-label="Severity">{i.severity ?? "—"}</td>
            <td data-label="Opened">{fmtTime(i.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function IncidentList() {
  const [status, setStatus] = useState("");
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const q = new URLSearchParams({ limit: "50" });
  if (status) q.set("status", status);
  if (cursor) q.set("cursor", cursor);
  const { data, error } = usePoll(() => api<IncidentPage>(`/incidents?${q}`), 2000, [status, cursor]);
  return (
    <section>
      <div className="toolbar">
        <h1>Incidents</h1>
        <label>
          Status{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value);
              setCursors([null]);
            }}
            aria-label="status filter"
          >
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span className="muted small">live · every 2 s</span>
      </div>
      {error && <p className="error">{error.message}</p>}
      {data ? <IncidentTable items={data.items} /> : !error && <p className="muted">Loading…</p>}
      <div className="pager">
        {cursors.length > 1 && <button onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>}
        {data?.next_cursor && <button onClick={() => setCursors([...cursors, data.next_cursor])}>Older</button>}
      </div>
    </section>
  );
}
