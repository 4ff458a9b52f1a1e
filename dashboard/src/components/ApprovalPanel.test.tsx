import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { ApprovalPanel, approveBlockedReason, disabledReason } from "./ApprovalPanel";
import { roleFromMe, whoAmI, type Approval, type RoleInfo } from "../api";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const NOW = new Date("2026-11-25T06:00:00Z");
const approval = (over: Partial<Approval> = {}): Approval => ({
  approval_id: "ap-1",
  incident_id: "inc-1",
  plan_id: "pl-1",
  action_id: "rollback_deployment",
  target: "k8s:shop/deployment/checkout",
  risk_level: "CRITICAL",
  requested_by: "sentinel",
  status: "PENDING",
  created_at: "2026-11-25T05:50:00Z",
  expires_at: "2026-11-25T06:20:00Z",
  decided_by: null,
  decided_at: null,
  comment: null,
  params: { namespace: "shop", deployment: "checkout", to_revision: 6 },
  ...over,
});
const APPROVER: RoleInfo = { label: "approver or admin", canApprove: true };
const VIEWER: RoleInfo = { label: "viewer", canApprove: false };
const UNKNOWN: RoleInfo = { label: null, canApprove: null };

const buttons = () => [screen.getByRole("button", { name: "Approve" }), screen.getByRole("button", { name: "Reject" })];

function stubFetch(status: number, body: unknown) {
  const f = vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
  vi.stubGlobal("fetch", f);
  return f;
}

describe("ApprovalPanel", () => {
  it("is enabled for an approver on a pending, unexpired request", () => {
    render(<ApprovalPanel approval={approval()} role={APPROVER} now={NOW} />);
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(false);
    expect(screen.queryByTestId("disabled-reason")).toBeNull();
    expect(screen.getByText("k8s:shop/deployment/checkout")).toBeTruthy();
  });

  it("is disabled for a viewer", () => {
    render(<ApprovalPanel approval={approval()} role={VIEWER} now={NOW} />);
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("disabled-reason").textContent).toContain("viewer");
  });

  it("is disabled after expiry", () => {
    render(<ApprovalPanel approval={approval({ expires_at: "2026-11-25T05:59:59Z" })} role={APPROVER} now={NOW} />);
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("disabled-reason").textContent).toContain("Expired");
  });

  it("is disabled once decided", () => {
    expect(disabledReason(approval({ status: "APPROVED", decided_by: "alice" }), APPROVER, NOW)).toBe(
      "Already approved by alice.",
    );
    expect(disabledReason(approval(), UNKNOWN, NOW)).toBeNull();
  });

  it("shows the 403 message and reports it", async () => {
    const f = stubFetch(403, { error: { code: "forbidden", message: "the requester of a CRITICAL action may not approve it", details: null } });
    const onForbidden = vi.fn();
    render(<ApprovalPanel approval={approval()} role={UNKNOWN} now={NOW} onForbidden={onForbidden} />);
    fireEvent.change(screen.getByRole("textbox"), { target: { value: "roll back" } });
    fireEvent.click(buttons()[0]);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("Forbidden (403)"));
    expect(screen.getByRole("alert").textContent).toContain("may not approve it");
    expect(onForbidden).toHaveBeenCalledOnce();
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/approvals/ap-1/approve");
    expect(JSON.parse(String(init.body))).toEqual({ comment: "roll back" });
  });

  it("shows the 409 message", async () => {
    stubFetch(409, { error: { code: "conflict", message: "approval ap-1 is already APPROVED", details: {} } });
    render(<ApprovalPanel approval={approval()} role={APPROVER} now={NOW} />);
    fireEvent.click(buttons()[1]);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("Conflict (409)"));
    expect(screen.getByRole("alert").textContent).toContain("already APPROVED");
  });

  it("records a decision and then disables itself", async () => {
    stubFetch(200, { ...approval(), status: "APPROVED", decided_by: "alice" });
    const onDecided = vi.fn();
    render(<ApprovalPanel approval={approval()} role={APPROVER} now={NOW} onDecided={onDecided} />);
    fireEvent.click(buttons()[0]);
    await waitFor(() => expect(screen.getByRole("status").textContent).toContain("approved by alice"));
    expect(onDecided).toHaveBeenCalledOnce();
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(true);
  });
});

// The current user as GET /me reports it (name, role, and the policy's approver roles per risk).
const POLICY_ROLES = { SAFE: ["admin", "approver"], WARNING: ["admin", "approver"], CRITICAL: ["admin"] };
const me = (user: string, role: string): RoleInfo =>
  roleFromMe({
    user,
    role,
    scopes: role === "viewer" ? ["read"] : ["approve", "read", "respond"],
    can_approve: role !== "viewer",
    approver_roles: POLICY_ROLES,
  });

describe("ApprovalPanel disabled states, knowing the current user", () => {
  it("is disabled, with the reason, for a user without the role", () => {
    render(<ApprovalPanel approval={approval()} role={me("bob", "viewer")} now={NOW} />);
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("disabled-reason").textContent).toBe("Your role (viewer) may not decide approvals.");
  });

  it("does not let an approver approve what the policy reserves for admins (reject stays open)", () => {
    render(<ApprovalPanel approval={approval()} role={me("alice", "approver")} now={NOW} />);
    const [approve, reject] = buttons() as HTMLButtonElement[];
    expect(approve.disabled).toBe(true);
    expect(reject.disabled).toBe(false);
    expect(screen.getByTestId("approve-blocked-reason").textContent).toContain(
      "The policy lets only admin approve CRITICAL actions; your role is approver.",
    );
  });

  it("does not let the requester approve its own CRITICAL action", () => {
    const mine = approval({ requested_by: "root" });
    render(<ApprovalPanel approval={mine} role={me("root", "admin")} now={NOW} />);
    const [approve, reject] = buttons() as HTMLButtonElement[];
    expect(approve.disabled).toBe(true);
    expect(reject.disabled).toBe(false);
    expect(screen.getByTestId("approve-blocked-reason").textContent).toBe(
      "You requested this CRITICAL action, so another approver must approve it.",
    );
    expect(approve.title).toContain("another approver");
  });

  it("lets the requester approve a non-CRITICAL action, and another admin approve the CRITICAL one", () => {
    expect(approveBlockedReason(approval({ requested_by: "root", risk_level: "WARNING" }), me("root", "admin"))).toBeNull();
    expect(approveBlockedReason(approval({ requested_by: "root" }), me("carol", "admin"))).toBeNull();
  });

  it("is disabled after expiry, whoever the user is", () => {
    render(
      <ApprovalPanel approval={approval({ expires_at: "2026-11-25T05:59:59Z" })} role={me("carol", "admin")} now={NOW} />,
    );
    for (const b of buttons()) expect((b as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("disabled-reason").textContent).toMatch(/^Expired at /);
    expect(screen.queryByTestId("approve-blocked-reason")).toBeNull();
  });

  it("learns the user from GET /me", async () => {
    const f = stubFetch(200, {
      user: "root",
      role: "admin",
      scopes: ["admin", "approve", "ingest", "read", "respond"],
      can_approve: true,
      approver_roles: POLICY_ROLES,
    });
    const r = await whoAmI("snt_test");
    expect(r).toEqual({ label: "admin", canApprove: true, user: "root", role: "admin", approverRoles: POLICY_ROLES });
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/me");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer snt_test");
  });
});
