import { api, type Approval, type RoleInfo } from "../api";
import { ApprovalPanel } from "../components/ApprovalPanel";
import { Link } from "../router";
import { usePoll } from "../usePoll";
import { fmtTime } from "../format";

export function Approvals(props: { role: RoleInfo; onForbidden: () => void }) {
  const { data, error, refresh } = usePoll(() => api<Approval[]>("/approvals?status=pending"), 2000, []);
  return (
    <section>
      <div className="toolbar">
        <h1>Pending approvals</h1>
        <span className="muted small">live · every 2 s</span>
      </div>
      {error && <p className="error">{error.message}</p>}
      {data && data.length === 0 && <p className="muted">Nothing waits for a human.</p>}
      <div className="cards">
        {data?.map((a) => (
          <article key={a.approval_id} className="card" data-testid="pending-approval">
            <h2>
              <Link to={`/incidents/${encodeURIComponent(a.incident_id)}`}>Incident {a.incident_id}</Link>
            </h2>
            <p className="muted small">requested {fmtTime(a.created_at)}</p>
            <ApprovalPanel approval={a} role={props.role} onDecided={refresh} onForbidden={props.onForbidden} />
          </article>
        ))}
      </div>
    </section>
  );
}
