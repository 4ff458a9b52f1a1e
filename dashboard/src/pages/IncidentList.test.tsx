import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { IncidentList, IncidentTable } from "./IncidentList";
import type { IncidentSummary } from "../api";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const inc = (id: string, status: string, service: string): IncidentSummary => ({
  incident_id: id,
  status,
  service,
  title: `HighErrorRate on ${service}`,
  severity: "page",
  created_at: "2026-11-25T05:00:00Z",
  updated_at: "2026-11-25T05:01:00Z",
  closed_at: null,
});

describe("IncidentTable", () => {
  it("renders one row per incident with a link to its page", () => {
    render(<IncidentTable items={[inc("i-1", "OPEN", "cart"), inc("i-2", "AWAITING_APPROVAL", "checkout")]} />);
    const rows = screen.getAllByTestId("incident-row");
    expect(rows).toHaveLength(2);
    expect(rows[1].textContent).toContain("AWAITING_APPROVAL");
    const link = screen.getByRole("link", { name: "HighErrorRate on checkout" });
    expect(link.getAttribute("href")).toBe("/incidents/i-2");
  });

  it("says when there are none", () => {
    render(<IncidentTable items={[]} />);
    expect(screen.getByText("No incidents.")).toBeTruthy();
  });
});

describe("IncidentList", () => {
  it("fetches with the bearer token and the status filter", async () => {
    sessionStorage.setItem("sentinel.token", "tok-1");
    const f = vi.fn(async (url: string) => {
      const items = url.includes("status=CLOSED") ? [inc("i-9", "CLOSED", "db")] : [inc("i-1", "OPEN", "cart")];
      return new Response(JSON.stringify({ items, next_cursor: null }), { status: 200 });
    });
    vi.stubGlobal("fetch", f);
    render(<IncidentList />);
    await waitFor(() => expect(screen.getAllByTestId("incident-row")).toHaveLength(1));
    expect(screen.getByText("cart")).toBeTruthy();
    const [, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer tok-1");
    fireEvent.change(screen.getByLabelText("status filter"), { target: { value: "CLOSED" } });
    await waitFor(() => expect(screen.getByText("db")).toBeTruthy());
    expect(f.mock.calls.some((c) => String(c[0]).includes("status=CLOSED"))).toBe(true);
  });
});
