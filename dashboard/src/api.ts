// The Sentinel HTTP API (prefix /api/v1), bearer-token auth, and the types the dashboard reads.

const TOKEN_KEY = "sentinel.token";
const ROLE_KEY = "sentinel.role";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROLE_KEY);
  }
}

/** What the UI has learned about the signed-in token's role. */
export interface RoleInfo {
  /** "viewer", "responder", "approver or admin", ... or null while unknown. */
  label: string | null;
  /** Whether the token may decide approvals: null while unknown. */
  canApprove: boolean | null;
  /** The signed-in user's name (from GET /me): a requester may not approve its own CRITICAL action. */
  user?: string | null;
  /** The user's role (from GET /me). */
  role?: string | null;
  /** Roles the policy lets approve each risk level (from GET /me). */
  approverRoles?: Record<string, string[]> | null;
}

/** GET /me as the API answers it. */
export interface Me {
  user: string;
  role: string;
  scopes: string[];
  can_approve: boolean;
  approver_roles: Record<string, string[]>;
}

export function roleFromMe(me: Me): RoleInfo {
  return {
    label: me.role,
    canApprove: me.can_approve,
    user: me.user,
    role: me.role,
    approverRoles: me.approver_roles,
  };
}

/** Who the token belongs to (GET /me); falls back to probing when the server has no /me. */
export async function whoAmI(token: string): Promise<RoleInfo> {
  try {
    return roleFromMe(await api<Me>("/me", { token }));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
    return probeRole(token);
  }
}

export function getRole(): RoleInfo {
  const raw = sessionStorage.getItem(ROLE_KEY);
  if (!raw) return { label: null, canApprove: null };
  try {
    return JSON.parse(raw) as RoleInfo;
  } catch {
    return { label: null, canApprove: null };
  }
}

export function setRole(r: RoleInfo): void {
  sessionStorage.setItem(ROLE_KEY, JSON.stringify(r));
}

export class ApiError extends Error {
  status: number;
  code: string;
  details: unknown;
  constructor(status: number, code: string, message: string, details: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export async function api<T>(
  path: string,
  opts: { method?: string; body?: unknown; text?: boolean; token?: string } = {},
): Promise<T> {
  const token = opts.token ?? getToken();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/api/v1${path}`, {
    method: opts.method ?? "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = res.statusText || `HTTP ${res.status}`;
    let details: unknown = null;
    try {
      const doc = await res.json();
      if (doc && doc.error) {
        code = doc.error.code ?? code;
        message = doc.error.message ?? message;
        details = doc.error.details ?? null;
      } else if (doc && doc.detail) {
        message = typeof doc.detail === "string" ? doc.detail : JSON.stringify(doc.detail);
      }
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message, details);
  }
  return (opts.text ? await res.text() : await res.json()) as T;
}

/**
 * Learn the role by trying, without side effects: deciding an approval that does not
 * exist answers 403 (with the role) for a token without approval rights, 404 otherwise.
 */
export async function probeRole(token: string): Promise<RoleInfo> {
  try {
    await api("/approvals/__role_probe__/approve", { method: "POST", body: { comment: "" }, token });
  } catch (e) {
    if (e instanceof ApiError) {
      if (e.status === 403) {
        const role = (e.details as { role?: string } | null)?.role ?? "no approval rights";
        return { label: role, canApprove: false };
      }
      if (e.status === 404) return { label: "approver or admin", canApprove: true };
      if (e.status === 401) throw e;
    }
  }
  return { label: null, canApprove: null };
}

export interface IncidentSummary {
  incident_id: string;
  status: string;
  service: string;
  title: string;
  severity: string | null;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
}

export interface IncidentPage {
  items: IncidentSummary[];
  next_cursor: string | null;
}

export interface Alert {
  alert_id: string;
  source: string;
  alertname: string;
  service: string;
  status: string;
  labels: Record<string, unknown>;
  annotations: Record<string, unknown>;
  starts_at: string | null;
  received_count: number;
  first_received_at: string;
}

export interface SeriesData {
  metric?: Record<string, string>;
  values?: [number, string | number][];
}

export interface SnapshotQuery {
  name?: string;
  query?: string;
  ok?: boolean;
  error?: string | null;
  data?: { series?: SeriesData[] } | null;
}

export interface Snapshot {
  snapshot_id: string;
  created_at: string;
  sources: Record<string, unknown>;
  data: Record<string, { ok?: boolean; error?: string | null; queries?: SnapshotQuery[] } | unknown>;
  size_bytes: number;
}

export interface ServiceMetric {
  service: string;
  metric: string | null;
}

export interface ChainLink {
  cause: ServiceMetric;
  effect: ServiceMetric;
  evidence?: Record<string, unknown>;
}

export interface Rca {
  hypothesis?: string;
  ranking?: { service: string; metric: string | null; score: number }[];
  chain?: ChainLink[];
  confidence?: number;
  explanation?: string;
}

export interface Decision {
  outcome?: string;
  risk?: string;
  rule_id?: string;
  reasons?: string[];
  policy_hash?: string;
  approval_id?: string | null;
  [k: string]: unknown;
}

export interface Plan {
  plan_id: string;
  proposed_action: string;
  target_resource: string;
  params: Record<string, unknown>;
  reasoning: string | null;
  planner: string;
  risk_level: string;
  decision: Decision | null;
  human_approved: boolean | null;
  execution_status: string;
}

export interface Incident extends IncidentSummary {
  rca_hypothesis: string | null;
  rca: Rca | null;
  escalation_reason: string | null;
  alerts: Alert[];
  context_snapshots: Snapshot[];
  plans: Plan[];
}

export interface TimelineEntry {
  seq: number;
  timestamp: string;
  actor: string;
  action_type: string;
  summary: string;
  details: Record<string, unknown>;
}

export interface Approval {
  approval_id: string;
  incident_id: string;
  plan_id: string;
  action_id: string;
  target: string;
  risk_level: string;
  requested_by: string;
  status: string;
  created_at: string;
  expires_at: string;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
  params: Record<string, unknown> | null;
}

export interface AuditVerify {
  ok: boolean;
  records: number;
  head: string | null;
  first_bad_seq: number | null;
  reason: string | null;
}

export interface AuditRecord {
  seq: number;
  cryptographic_hash: string;
  prev_hash: string;
  [k: string]: unknown;
}
