import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import { ChainGraph } from "./ChainGraph";

afterEach(cleanup);

describe("ChainGraph", () => {
  it("draws one node per distinct service/metric and one edge per link", () => {
    render(
      <ChainGraph
        chain={[
          { cause: { service: "db", metric: "latency" }, effect: { service: "payments", metric: "latency" }, evidence: { lag_seconds: 30 } },
          { cause: { service: "payments", metric: "latency" }, effect: { service: "checkout", metric: "error" } },
        ]}
      />,
    );
    const nodes = screen.getAllByTestId("chain-node");
    expect(nodes).toHaveLength(3);
    expect(nodes.map((n) => n.textContent)).toEqual(["dblatency", "paymentslatency", "checkouterror"]);
    expect(nodes[0].getAttribute("class")).toContain("root");
    expect(screen.getAllByTestId("chain-edge")).toHaveLength(2);
    expect(screen.getByText("+30s")).toBeTruthy();
  });

  it("falls back to the top-ranked cause alone", () => {
    render(<ChainGraph chain={[]} root={{ service: "cart", metric: null }} />);
    const nodes = screen.getAllByTestId("chain-node");
    expect(nodes).toHaveLength(1);
    expect(nodes[0].textContent).toBe("cartservice");
    expect(screen.queryAllByTestId("chain-edge")).toHaveLength(0);
  });

  it("says so when nothing was found", () => {
    render(<ChainGraph chain={[]} />);
    expect(screen.getByText("No causal chain recorded.")).toBeTruthy();
  });
});
