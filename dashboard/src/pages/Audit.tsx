import { api, type AuditRecord, type AuditVerify } from "../api";
import { fmtTime, short } from "../format";
import { Link } from "../router";
import { usePoll } from "../usePoll";

export function Audit(props: { incidentId: string }) {
  const id = props.incidentId;
  const records = usePoll(
    () => api<{ items: AuditRecord[] }>(`/audit?incident_id=${encodeURIComponent(id)}&limit=1000`),
    5000,
    [id],
  );
  const verify = usePoll(() => api<AuditVerify>("/audit/verify"), 10000, []);
  const v = verify.data;
  return (
    <section>
      <div className="toolbar">
        <h1>Audit · incident {id}</h1>
        <Link to={`/incidents/${encodeURIComponent(id)}`}>← incident</Link>
      </div>
      <div className="card" data-testid="audit-verify">
        <h2>Chain verification</h2>
        {verify.error && <p className="error">{verify.error.message}</p>}
        {!v && !verify.error && <p className="muted">Verifying…</p>}
        {v && (
          <p>
            <span className={v.ok ? "badge st-closed" : "badge st-escalated"}>{v.ok ? "chain intact" : "chain broken"}</span>{" "}
            {v.records} records · head <code title={v.head ?? ""}>{short(v.head, 16)}</code>
            {!v.ok && (
              <>
                {" "}· first bad seq <b>{v.first_bad_seq ?? "?"}</b> — {v.reason}
              </>
            )}
          </p>
        )}
      </div>
      {records.error && <p className="error">{records.error.message}</p>}
      <table className="list audit">
        <thead>
          <tr>
            <th>Seq</th>
            <th>Time</th>
            <th>Actor</th>
            <th>Type</th>
            <th>Hash</th>
            <th>Prev</th>
          </tr>
        </thead>
        <tbody>
          {records.data?.items.map((r) => (
            <tr key={r.seq}>
              <td data-label="Seq">{r.seq}</td>
              <td data-label="Time">{fmtTime(r.timestamp as string)}</td>
              <td data-label="Actor">{String(r.actor ?? "")}</td>
              <td data-label="Type">{String(r.action_type ?? "")}</td>
              <td data-label="Hash">
                <code title={r.cryptographic_hash}>{short(r.cryptographic_hash)}</code>
              </td>
              <td data-label="Prev">
                <code title={r.prev_hash}>{short(r.prev_hash)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
