import { useEffect, useState } from "react";
import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";
import { api, ApiError, type Approval, type Incident, type RoleInfo, type TimelineEntry } from "../api";
import { ApprovalPanel } from "../components/ApprovalPanel";
import { ChainGraph } from "../components/ChainGraph";
import { MetricsCharts } from "../components/MetricsChart";
import { ExecutionAndVerification, Timeline } from "../components/Timeline";
import { fmtTime, statusClass } from "../format";
import { Link } from "../router";
import { usePoll } from "../usePoll";

interface Bundle {
  incident: Incident;
  timeline: TimelineEntry[];
  approvals: Approval[];
}

export function IncidentPage(props: { id: string; role: RoleInfo; onForbidden: () => void }) {
  const id = props.id;
  const enc = encodeURIComponent(id);
  const { data, error, refresh } = usePoll<Bundle>(
    async () => {
      const [incident, timeline, approvals] = await Promise.all([
        api<Incident>(`/incidents/${enc}`),
        api<TimelineEntry[]>(`/incidents/${enc}/timeline`),
        api<Approval[]>(`/approvals`),
      ]);
      return { incident, timeline, approvals: approvals.filter((a) => a.incident_id === id) };
    },
    2000,
    [id],
  );
  const [postmortem, setPostmortem] = useState<string | null>(null);
  const status = data?.incident.status;
  const seqs = data?.timeline.length ?? 0;
  useEffect(() => {
    if (!status) return;
    api<string>(`/incidents/${enc}/postmortem`, { text: true })
      .then(setPostmortem)
      .catch((e: Error) => setPostmortem(`_Post-mortem unavailable: ${e.message}_`));
  }, [enc, status, seqs]);

  if (error && !data) {
    const nf = error instanceof ApiError && error.status === 404;
    return <p className="error">{nf ? `Incident ${id} not found.` : error.message}</p>;
  }
  if (!data) return <p className="muted">Loading…</p>;
  const { incident: inc, timeline, approvals } = data;
  const rca = inc.rca;
  const snapshot = inc.context_snapshots[inc.context_snapshots.length - 1];
  const created = Date.parse(inc.created_at) / 1000;
  const pending = approvals.find((a) => a.status === "PENDING");
  const shownApprovals = pending ? [pending] : approvals.slice(0, 1);

  return (
    <section className="incident">
      <div className="toolbar">
        <h1>{inc.title || inc.incident_id}</h1>
        <span className={statusClass(inc.status)} data-testid="incident-status">
          {inc.status}
        </span>
      </div>
      <p className="muted small">
        {inc.incident_id} · service <b>{inc.service}</b> · severity {inc.severity ?? "—"} · opened {fmtTime(inc.created_at)}
        {inc.closed_at && <> · closed {fmtTime(inc.closed_at)}</>} · <Link to={`/incidents/${enc}/audit`}>audit</Link>
      </p>
      {error && <p className="error small">Refresh failed: {error.message}</p>}
      {inc.escalation_reason && (
        <p className="escalation" role="note">
          Escalated: {inc.escalation_reason}
        </p>
      )}

      <div className="grid">
        <div className="col">
          <article className="card">
            <h2>Root cause</h2>
            {rca ? (
              <>
                <p data-testid="hypothesis">{rca.hypothesis ?? inc.rca_hypothesis}</p>
                {typeof rca.confidence === "number" && (
                  <p className="small">
                    confidence <b>{(rca.confidence * 100).toFixed(0)}%</b>
                  </p>
                )}
                <ChainGraph chain={rca.chain ?? []} root={rca.ranking?.[0] ?? null} />
                {rca.ranking && rca.ranking.length > 0 && (
                  <table className="list compact">
                    <thead>
                      <tr>
                        <th>#</th>
                        <th>Service</th>
                        <th>Metric</th>
                        <th>Score</th>
                      </tr>
                    </thead>
                    <tbody>
                      {rca.ranking.slice(0, 5).map((r, i) => (
                        <tr key={`${r.service}-${r.metric}`}>
                          <td data-label="#">{i + 1}</td>
                          <td data-label="Service">{r.service}</td>
                          <td data-label="Metric">{r.metric ?? "—"}</td>
                          <td data-label="Score">{r.score.toFixed(3)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
                {rca.explanation && <p className="small muted">{rca.explanation}</p>}
              </>
            ) : (
              <p className="muted">{inc.rca_hypothesis ?? "No analysis yet."}</p>
            )}
          </article>

          <article className="card">
            <h2>Key metrics</h2>
            <MetricsCharts snapshot={snapshot} markAt={Number.isFinite(created) ? created : null} />
          </article>

          <article className="card">
            <h2>Proposed action</h2>
            {inc.plans.length === 0 && <p className="muted">No plan yet.</p>}
            {inc.plans.map((p) => (
              <div key={p.plan_id} className="plan" data-testid="plan">
                <p>
                  <b>{p.proposed_action}</b> on <code>{p.target_resource}</code>{" "}
                  <span className={`badge risk-${p.risk_level.toLowerCase()}`}>{p.risk_level}</span>
                </p>
                <pre className="params">{JSON.stringify(p.params, null, 2)}</pre>
                {p.reasoning && <p className="small">{p.reasoning}</p>}
                {p.decision && (
                  <div className="decision">
                    <p>
                      Policy decision: <b data-testid="decision-outcome">{p.decision.outcome}</b> · rule{" "}
                      <code>{p.decision.rule_id}</code> · risk {p.decision.risk}
                    </p>
                    {p.decision.reasons && p.decision.reasons.length > 0 && (
                      <ul>
                        {p.decision.reasons.map((r, i) => (
                          <li key={i}>{r}</li>
                        ))}
                      </ul>
                    )}
                    {p.decision.policy_hash && (
                      <p className="small muted">
                        policy <code>{String(p.decision.policy_hash).slice(0, 16)}</code>
                      </p>
                    )}
                  </div>
                )}
                <p className="small">
                  planner {p.planner} · human approved{" "}
                  {p.human_approved === null ? "—" : p.human_approved ? "yes" : "no"} · execution{" "}
                  <b data-testid="execution-status">{p.execution_status}</b>
                </p>
              </div>
            ))}
          </article>

          <article className="card">
            <h2>Approval</h2>
            {shownApprovals.length === 0 ? (
              <p className="muted">No approval requested for this incident.</p>
            ) : (
              shownApprovals.map((a) => (
                <ApprovalPanel
                  key={`${a.approval_id}-${a.status}`}
                  approval={a}
                  role={props.role}
                  onDecided={refresh}
                  onForbidden={props.onForbidden}
                />
              ))
            )}
          </article>

          <article className="card">
            <ExecutionAndVerification entries={timeline} />
          </article>
        </div>

        <div className="col">
          <article className="card">
            <h2>Timeline</h2>
            <Timeline entries={timeline} />
          </article>
          <article className="card">
            <h2>Alerts</h2>
            {inc.alerts.length === 0 && <p className="muted">None.</p>}
            <ul className="alerts">
              {inc.alerts.map((a) => (
                <li key={a.alert_id}>
                  <b>{a.alertname}</b> on {a.service} <span className="badge">{a.status}</span>
                  <span className="small muted">
                    {" "}
                    · {a.source} · ×{a.received_count} · since {fmtTime(a.starts_at ?? a.first_received_at)}
                  </span>
                  {typeof a.annotations?.summary === "string" && <div className="small">{a.annotations.summary}</div>}
                  <div className="labels">
                    {Object.entries(a.labels ?? {}).map(([k, v]) => (
                      <code key={k}>
                        {k}={String(v)}
                      </code>
                    ))}
                  </div>
                </li>
              ))}
            </ul>
          </article>
        </div>
      </div>

      <article className="card postmortem" data-testid="postmortem">
        <h2>Post-mortem</h2>
        {postmortem === null ? <p className="muted">Loading…</p> : <Markdown remarkPlugins={[remarkGfm]}>{postmortem}</Markdown>}
      </article>
    </section>
  );
}
