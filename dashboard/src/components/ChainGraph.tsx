// The root cause's causal chain, drawn as an SVG graph: cause → effect → … left to right.
import type { ChainLink, ServiceMetric } from "../api";

const W = 150;
const H = 48;
const GAP = 46;

function key(n: ServiceMetric): string {
  return `${n.service}::${n.metric ?? ""}`;
}

export function ChainGraph(props: { chain: ChainLink[]; root?: ServiceMetric | null }) {
  const nodes: ServiceMetric[] = [];
  const index = new Map<string, number>();
  const add = (n: ServiceMetric) => {
    const k = key(n);
    if (!index.has(k)) {
      index.set(k, nodes.length);
      nodes.push(n);
    }
    return index.get(k)!;
  };
  const edges = props.chain.map((l) => ({
    from: add(l.cause),
    to: add(l.effect),
    lag: typeof l.evidence?.lag_seconds === "number" ? (l.evidence.lag_seconds as number) : null,
  }));
  if (nodes.length === 0 && props.root) add(props.root);
  if (nodes.length === 0) return <p className="muted">No causal chain recorded.</p>;

  const width = nodes.length * (W + GAP) - GAP + 20;
  const height = H + 50;
  const x = (i: number) => 10 + i * (W + GAP);
  const y = 20;
  return (
    <div className="graph-wrap">
      <svg
        className="chain-graph"
        viewBox={`0 0 ${width} ${height}`}
        width="100%"
        style={{ maxWidth: width }}
        role="img"
        aria-label="causal chain"
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="currentColor" />
          </marker>
        </defs>
        {edges.map((e, i) => {
          const forward = e.to > e.from;
          const x1 = forward ? x(e.from) + W : x(e.from);
          const x2 = forward ? x(e.to) - 2 : x(e.to) + W + 2;
          const adjacent = Math.abs(e.to - e.from) === 1;
          const d = adjacent
            ? `M${x1},${y + H / 2} L${x2},${y + H / 2}`
            : `M${x(e.from) + W / 2},${y + H} C${x(e.from) + W / 2},${y + H + 30} ${x(e.to) + W / 2},${y + H + 30} ${x(e.to) + W / 2},${y + H + 2}`;
          return (
            <g key={i} className="chain-edge" data-testid="chain-edge">
              <path d={d} fill="none" stroke="currentColor" strokeWidth={1.6} markerEnd="url(#arrow)" />
              {e.lag !== null && adjacent && (
                <text x={(x1 + x2) / 2} y={y + H / 2 - 6} textAnchor="middle" className="edge-label">
                  +{Math.round(e.lag)}s
                </text>
              )}
            </g>
          );
        })}
        {nodes.map((n, i) => (
          <g key={key(n)} data-testid="chain-node" className={i === 0 ? "chain-node root" : "chain-node"}>
            <rect x={x(i)} y={y} width={W} height={H} rx={8} />
            <text x={x(i) + W / 2} y={y + 20} textAnchor="middle" className="node-service">
              {n.service}
            </text>
            <text x={x(i) + W / 2} y={y + 37} textAnchor="middle" className="node-metric">
              {n.metric ?? "service"}
            </text>
          </g>
        ))}
      </svg>
    </div>
  );
}
