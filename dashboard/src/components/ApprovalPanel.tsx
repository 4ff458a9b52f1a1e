// Approve or reject a pending action, with a comment. Disabled when the token has no
// approval rights, after expiry, and once decided; Approve alone is disabled when the policy
// does not let this role approve this risk, or when the user requested this CRITICAL action
// (they may still reject it). Shows the API's 403/409 messages.
import { useState } from "react";
import { api, ApiError, type Approval, type RoleInfo } from "../api";
import { fmtTime } from "../format";

/** Why the whole panel (approve and reject) is disabled, or null. */
export function disabledReason(a: Approval, role: RoleInfo, now: Date): string | null {
  if (a.status !== "PENDING") return `Already ${a.status.toLowerCase()}${a.decided_by ? ` by ${a.decided_by}` : ""}.`;
  if (new Date(a.expires_at).getTime() <= now.getTime()) return `Expired at ${fmtTime(a.expires_at)}.`;
  if (role.canApprove === false)
    return `Your role (${role.label ?? "unknown"}) may not decide approvals.`;
  return null;
}

/** Why this user may not approve (though may reject) this request, or null; the API enforces both. */
export function approveBlockedReason(a: Approval, role: RoleInfo): string | null {
  const allowed = role.approverRoles?.[a.risk_level];
  if (role.role && allowed && !allowed.includes(role.role))
    return `The policy lets only ${allowed.join(", ")} approve ${a.risk_level} actions; your role is ${role.role}.`;
  if (a.risk_level === "CRITICAL" && role.user && role.user === a.requested_by)
    return `You requested this CRITICAL action, so another approver must approve it.`;
  return null;
}

export function ApprovalPanel(props: {
  approval: Approval;
  role: RoleInfo;
  now?: Date;
  onDecided?: (a: Approval) => void;
  onForbidden?: (e: ApiError) => void;
}) {
  const { approval: a, role } = props;
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const reason = disabledReason(a, role, props.now ?? new Date());
  const approveReason = reason === null ? approveBlockedReason(a, role) : null;
  const disabled = reason !== null || busy || done !== null;

  const decide = async (verb: "approve" | "reject") => {
    setBusy(true);
    setError(null);
    try {
      const out = await api<Approval>(`/approvals/${encodeURIComponent(a.approval_id)}/${verb}`, {
        method: "POST",
        body: { comment },
      });
      setDone(`${out.status.toLowerCase()} by ${out.decided_by ?? "you"}`);
      props.onDecided?.(out);
    } catch (e) {
      if (e instanceof ApiError) {
        const prefix =
          e.status === 403 ? "Forbidden (403)" : e.status === 409 ? "Conflict (409)" : `Error (${e.status})`;
        setError(`${prefix}: ${e.message}`);
        if (e.status === 403) props.onForbidden?.(e);
      } else setError(String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="approval-panel" data-testid="approval-panel">
      <div className="kv">
        <span>Action</span>
        <b>{a.action_id}</b>
        <span>Target</span>
        <code>{a.target}</code>
        <span>Risk</span>
        <span className={`badge risk-${a.risk_level.toLowerCase()}`}>{a.risk_level}</span>
        <span>Requested by</span>
        <span>{a.requested_by}</span>
        <span>Expires</span>
        <span>{fmtTime(a.expires_at)}</span>
        <span>Status</span>
        <span>{a.status}</span>
      </div>
      {a.params && <pre className="params">{JSON.stringify(a.params, null, 2)}</pre>}
      <label className="comment">
        Comment
        <textarea
          value={comment}
          onChange={(e) => setComment(e.target.value)}
          disabled={disabled}
          maxLength={2000}
          rows={2}
          placeholder="why (recorded in the audit log)"
        />
      </label>
      <div className="buttons">
        <button
          className="approve"
          disabled={disabled || approveReason !== null}
          title={approveReason ?? undefined}
          onClick={() => decide("approve")}
        >
          Approve
        </button>
        <button className="reject" disabled={disabled} onClick={() => decide("reject")}>
          Reject
        </button>
      </div>
      {reason && <p className="muted" data-testid="disabled-reason">{reason}</p>}
      {approveReason && (
        <p className="muted" data-testid="approve-blocked-reason">
          {approveReason}
        </p>
      )}
      {done && <p className="ok" role="status">Decision recorded: {done}.</p>}
      {error && <p className="error" role="alert">{error}</p>}
    </div>
  );
}
