"""A small PromQL evaluator over the sandbox's own samples (when no Prometheus is installed).

It covers what the scenarios' alert rules and Sentinel's demo queries use, with
Prometheus' semantics where they matter for alerting:

- vector selectors with ``=``, ``!=``, ``=~``, ``!~`` matchers (regexes fully anchored),
  range selectors ``[20s]``/``[1m]``; an instant selector takes the newest sample within
  the 5-minute lookback;
- ``rate``, ``irate``, ``increase`` (Prometheus' extrapolation and counter resets),
  ``delta``, ``*_over_time`` (avg, min, max, sum, count, last), ``abs``,
  ``histogram_quantile``, ``clamp_min``, ``clamp_max``;
- aggregations ``sum``, ``avg``, ``min``, ``max``, ``count`` with ``by``/``without``;
- ``+ - * / % ^`` and comparisons (optionally ``bool``) between scalars and vectors;
  vector-vector operations match one-to-one on all labels but ``__name__`` (no
  ``on``/``ignoring``/``group_left``).

Anything else raises ``PromQLError`` (the HTTP layer answers 400 ``bad_data``).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

LOOKBACK_S = 300.0

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, __name__ included
STALE = math.nan  # a staleness marker


def _stale(v: float) -> bool:
    return math.isnan(v)


class PromQLError(ValueError):
    """The expression is outside the supported subset or malformed."""


# ---------------------------------------------------------------- storage


class SampleStore:
    """Time series kept in memory: one deque of (t, value) per label set, bounded in time."""

    def __init__(self, retention_s: float = 900.0) -> None:
        self.retention_s = retention_s
        self.series: dict[Labels, deque[tuple[float, float]]] = {}
        self.times: list[float] = []  # scrape timestamps, ascending

    def append(self, t: float, samples: list[tuple[str, dict[str, str], float]]) -> None:
        """One scrape at time t: (metric name, labels, value) triples.

        A series the previous scrape had and this one lacks (a deleted pod's) gets a
        staleness marker, as in Prometheus: instant queries stop returning it at once.
        Markers are NaN; the sandbox never exposes a NaN sample of its own.
        """
        present: set[Labels] = set()
        for name, labels, value in samples:
            key = tuple(sorted({**labels, "__name__": name}.items()))
            present.add(key)
            self.series.setdefault(key, deque()).append((t, float(value)))
        prev = self.times[-1] if self.times else None
        if prev is not None:
            for key, q in self.series.items():
                if key not in present and q and q[-1][0] == prev and not _stale(q[-1][1]):
                    q.append((t, STALE))
        self.times.append(t)
        cut = t - self.retention_s
        while self.times and self.times[0] < cut:
            self.times.pop(0)
        for key in list(self.series):
            q = self.series[key]
            while q and q[0][0] < cut:
                q.popleft()
            if not q:
                del self.series[key]

    @property
    def latest(self) -> float | None:
        return self.times[-1] if self.times else None

    def clear(self) -> None:
        self.series.clear()
        self.times.clear()


# ---------------------------------------------------------------- values


@dataclass
class Scalar:
    value: float


@dataclass
class Vector:
    samples: list[tuple[Labels, float]]


@dataclass
class Matrix:
    series: list[tuple[Labels, list[tuple[float, float]]]]


Value = Union[Scalar, Vector, Matrix]  # noqa: UP007 - a runtime alias


# ---------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+)(?=\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0x[0-9a-fA-F]+|(?i:inf|nan)(?![\w:]))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){}\[\],])
    """,
    re.VERBOSE,
)
_DUR = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DUR_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
AGGREGATIONS = ("sum", "avg", "min", "max", "count")
COMPARISONS = ("==", "!=", ">", "<", ">=", "<=")


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLError(f"unexpected character {expr[pos]!r} at position {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
    out.append(("eof", ""))
    return out


def parse_duration(text: str) -> float:
    total = sum(int(n) * _DUR_S[u] for n, u in _DUR.findall(text))
    if total <= 0:
        raise PromQLError(f"bad duration {text!r}")
    return float(total)


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# ---------------------------------------------------------------- AST


@dataclass
class Num:
    value: float


@dataclass
class Selector:
    name: str | None
    matchers: list[tuple[str, str, str]]  # (label, op, value)
    range_s: float | None = None


@dataclass
class Call:
    func: str
    args: list[Node]


@dataclass
class Agg:
    op: str
    expr: Node
    by: list[str] | None
    without: list[str] | None


@dataclass
class Binary:
    op: str
    lhs: Node
    rhs: Node
    bool_mod: bool = False


@dataclass
class Neg:
    expr: Node


Node = Union[Num, Selector, Call, Agg, Binary, Neg]  # noqa: UP007 - a runtime alias


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokens(expr)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self) -> tuple[str, str]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        k, v = self.take()
        if v != value:
            raise PromQLError(f"expected {value!r}, got {v or k!r}")

    def parse(self) -> Node:
        n = self.comparison()
        if self.peek()[0] != "eof":
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        return n

    def comparison(self) -> Node:
        lhs = self.additive()
        while self.peek()[1] in COMPARISONS:
            op = self.take()[1]
            b = False
            if self.peek() == ("ident", "bool"):
                self.take()
                b = True
            self._no_matching_modifiers()
            lhs = Binary(op, lhs, self.additive(), b)
        return lhs

    def _no_matching_modifiers(self) -> None:
        k, v = self.peek()
        if k == "ident" and v in ("on", "ignoring", "group_left", "group_right"):
            raise PromQLError(f"vector matching modifier {v!r} is not supported here")

    def additive(self) -> Node:
        lhs = self.multiplicative()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            self._no_matching_modifiers()
            lhs = Binary(op, lhs, self.multiplicative())
        return lhs

    def multiplicative(self) -> Node:
        lhs = self.power()
        while self.peek()[1] in ("*", "/", "%"):
            op = self.take()[1]
            self._no_matching_modifiers()
            lhs = Binary(op, lhs, self.power())
        return lhs

    def power(self) -> Node:
        lhs = self.unary()
        if self.peek()[1] == "^":
            self.take()
            return Binary("^", lhs, self.power())
        return lhs

    def unary(self) -> Node:
        if self.peek()[1] in ("-", "+"):
            op = self.take()[1]
            inner = self.unary()
            return Neg(inner) if op == "-" else inner
        return self.primary()

    def primary(self) -> Node:
        k, v = self.peek()
        if k == "number":
            self.take()
            return Num(float(int(v, 16)) if v.lower().startswith("0x") else float(v))
        if v == "(":
            self.take()
            n = self.comparison()
            self.expect(")")
            return n
        if v == "{":
            return self.selector(None)
        if k == "ident":
            self.take()
            if v in AGGREGATIONS:
                return self.aggregation(v)
            if self.peek()[1] == "(":
                return self.call(v)
            if v in ("offset", "by", "without", "bool"):
                raise PromQLError(f"unexpected keyword {v!r}")
            return self.selector(v)
        raise PromQLError(f"unexpected {v or k!r}")

    def labels_list(self) -> list[str]:
        self.expect("(")
        out: list[str] = []
        while self.peek()[1] != ")":
            k, v = self.take()
            if k != "ident":
                raise PromQLError(f"expected a label name, got {v!r}")
            out.append(v)
            if self.peek()[1] == ",":
                self.take()
        self.expect(")")
        return out

    def aggregation(self, op: str) -> Node:
        by: list[str] | None = None
        without: list[str] | None = None
        if self.peek()[1] in ("by", "without"):
            kw = self.take()[1]
            lst = self.labels_list()
            by, without = (lst, None) if kw == "by" else (None, lst)
        self.expect("(")
        inner = self.comparison()
        self.expect(")")
        if self.peek()[1] in ("by", "without"):
            kw = self.take()[1]
            lst = self.labels_list()
            by, without = (lst, None) if kw == "by" else (None, lst)
        return Agg(op, inner, by, without)

    def call(self, func: str) -> Node:
        if func not in FUNCTIONS:
            raise PromQLError(f"function {func!r} is not supported here")
        self.expect("(")
        args: list[Node] = []
        while self.peek()[1] != ")":
            args.append(self.comparison())
            if self.peek()[1] == ",":
                self.take()
        self.expect(")")
        return Call(func, args)

    def selector(self, name: str | None) -> Node:
        matchers: list[tuple[str, str, str]] = []
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                k, label = self.take()
                if k != "ident":
                    raise PromQLError(f"expected a label name, got {label!r}")
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"bad matcher operator {op!r}")
                k2, val = self.take()
                if k2 != "string":
                    raise PromQLError(f"expected a string, got {val!r}")
                matchers.append((label, op, _unquote(val)))
                if self.peek()[1] == ",":
                    self.take()
            self.expect("}")
        if name is None and not matchers:
            raise PromQLError("a selector needs a metric name or a matcher")
        sel = Selector(name, matchers)
        if self.peek()[1] == "[":
            self.take()
            k, dur = self.take()
            if k != "duration":
                raise PromQLError(f"expected a duration, got {dur!r}")
            self.expect("]")
            sel.range_s = parse_duration(dur)
        if self.peek() == ("ident", "offset"):
            raise PromQLError("offset is not supported here")
        return sel


def parse(expr: str) -> Node:
    """Parse an expression of the supported subset."""
    return _Parser(expr).parse()


# ---------------------------------------------------------------- evaluation


def _drop_name(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != "__name__")


def _match(labels: Labels, name: str | None, matchers: list[tuple[str, str, str]]) -> bool:
    d = dict(labels)
    if name is not None and d.get("__name__") != name:
        return False
    for label, op, val in matchers:
        have = d.get(label, "")
        if op == "=" and have != val:
            return False
        if op == "!=" and have == val:
            return False
        if op == "=~" and not re.fullmatch(val, have):
            return False
        if op == "!~" and re.fullmatch(val, have):
            return False
    return True


def _extrapolated(samples: list[tuple[float, float]], t: float, rng: float, kind: str) -> float:
    """Prometheus' extrapolatedRate (rate / increase / delta)."""
    first_t, first_v = samples[0]
    last_t, last_v = samples[-1]
    counter = kind in ("rate", "increase")
    result = last_v - first_v
    if counter:
        prev = first_v
        for _, v in samples[1:]:
            if v < prev:
                result += prev
            prev = v
    start, end = t - rng, t
    to_start = first_t - start
    to_end = end - last_t
    sampled = last_t - first_t
    avg_step = sampled / (len(samples) - 1)
    if counter and result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = avg_step * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else avg_step / 2
    interval += to_end if to_end < threshold else avg_step / 2
    factor = interval / sampled
    if kind == "rate":
        factor /= rng
    return result * factor


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]):
        return math.nan
    # monotonic counts (ensureMonotonic)
    mono: list[tuple[float, float]] = []
    hi = -math.inf
    for ub, c in buckets:
        hi = max(hi, c)
        mono.append((ub, hi))
    buckets = mono
    if len(buckets) < 2:
        return math.nan
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


def _arith(op: str, a: float, b: float) -> float:
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
            return a / b
        if op == "%":
            return math.fmod(a, b) if b != 0 else math.nan
        if op == "^":
            return float(a**b)
    except (OverflowError, ValueError):
        return math.nan
    raise PromQLError(f"operator {op!r}")


def _compare(op: str, a: float, b: float) -> bool:
    return {
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        "<": a < b,
        ">=": a >= b,
        "<=": a <= b,
    }[op]


class Evaluator:
    """Evaluates a parsed expression at a time against a SampleStore."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store

    def instant(self, node: Node, t: float) -> Value:
        if isinstance(node, Num):
            return Scalar(node.value)
        if isinstance(node, Neg):
            v = self.instant(node.expr, t)
            if isinstance(v, Scalar):
                return Scalar(-v.value)
            if isinstance(v, Vector):
                return Vector([(_drop_name(lb), -x) for lb, x in v.samples])
            raise PromQLError("cannot negate a range vector")
        if isinstance(node, Selector):
            return self.select(node, t)
        if isinstance(node, Call):
            return self.call(node, t)
        if isinstance(node, Agg):
            return self.aggregate(node, t)
        return self.binary(node, t)

    def select(self, sel: Selector, t: float) -> Value:
        if sel.range_s is not None:
            out_m: list[tuple[Labels, list[tuple[float, float]]]] = []
            for labels, q in self.store.series.items():
                if not _match(labels, sel.name, sel.matchers):
                    continue
                # closed windows, as Prometheus 2.x; staleness markers are not samples
                pts = [(ts, v) for ts, v in q if t - sel.range_s <= ts <= t and not _stale(v)]
                if pts:
                    out_m.append((labels, pts))
            return Matrix(out_m)
        out_v: list[tuple[Labels, float]] = []
        for labels, q in self.store.series.items():
            if not _match(labels, sel.name, sel.matchers):
                continue
            ts_list = [ts for ts, _ in q]
            i = bisect_right(ts_list, t) - 1
            if i >= 0 and q[i][0] > t - LOOKBACK_S and not _stale(q[i][1]):
                out_v.append((labels, q[i][1]))
        return Vector(out_v)

    def _vector(self, node: Node, t: float) -> Vector:
        v = self.instant(node, t)
        if not isinstance(v, Vector):
            raise PromQLError("expected an instant vector")
        return v

    def _scalar(self, node: Node, t: float) -> float:
        v = self.instant(node, t)
        if not isinstance(v, Scalar):
            raise PromQLError("expected a scalar")
        return v.value

    def call(self, c: Call, t: float) -> Value:
        f = c.func
        if f in ("rate", "irate", "increase", "delta") or f.endswith("_over_time"):
            if len(c.args) != 1 or not isinstance(c.args[0], Selector):
                raise PromQLError(f"{f} takes one range selector")
            m = self.select(c.args[0], t)
            assert isinstance(m, Matrix)
            rng = c.args[0].range_s
            if rng is None:
                raise PromQLError(f"{f} needs a range vector")
            out: list[tuple[Labels, float]] = []
            for labels, pts in m.series:
                val = _range_fn(f, pts, t, rng)
                if val is not None:
                    out.append((_drop_name(labels), val))
            return Vector(out)
        if f == "histogram_quantile":
            if len(c.args) != 2:
                raise PromQLError("histogram_quantile(φ, vector)")
            q = self._scalar(c.args[0], t)
            vec = self._vector(c.args[1], t)
            groups: dict[Labels, list[tuple[float, float]]] = {}
            for labels, x in vec.samples:
                d = dict(labels)
                le = d.pop("le", None)
                if le is None:
                    continue
                d.pop("__name__", None)
                try:
                    ub = float(le)
                except ValueError:
                    continue
                groups.setdefault(tuple(sorted(d.items())), []).append((ub, x))
            return Vector([(k, _bucket_quantile(q, b)) for k, b in groups.items()])
        if f == "abs":
            vec = self._vector(c.args[0], t)
            return Vector([(_drop_name(lb), abs(x)) for lb, x in vec.samples])
        if f in ("clamp_min", "clamp_max"):
            vec = self._vector(c.args[0], t)
            lim = self._scalar(c.args[1], t)
            pick = max if f == "clamp_min" else min
            return Vector([(_drop_name(lb), pick(x, lim)) for lb, x in vec.samples])
        if f == "time":
            return Scalar(t)
        if f == "vector":
            return Vector([((), self._scalar(c.args[0], t))])
        if f == "scalar":
            vec = self._vector(c.args[0], t)
            return Scalar(vec.samples[0][1] if len(vec.samples) == 1 else math.nan)
        raise PromQLError(f"function {f!r} is not supported here")

    def aggregate(self, a: Agg, t: float) -> Value:
        vec = self._vector(a.expr, t)
        groups: dict[Labels, list[float]] = {}
        for labels, x in vec.samples:
            d = dict(labels)
            key: Labels
            if a.by is None and a.without is None:
                key = ()
            elif a.by is not None:
                key = tuple(sorted((k, d[k]) for k in a.by if k in d and d[k] != ""))
            else:
                drop = {"__name__", *(a.without or [])}
                key = tuple(sorted((k, v) for k, v in d.items() if k not in drop))
            groups.setdefault(key, []).append(x)
        out: list[tuple[Labels, float]] = []
        for key, xs in groups.items():
            if a.op == "sum":
                val = math.fsum(xs)
            elif a.op == "avg":
                val = math.fsum(xs) / len(xs)
            elif a.op == "min":
                val = min(xs, key=lambda x: (math.isnan(x), x))
            elif a.op == "max":
                val = max(xs, key=lambda x: (not math.isnan(x), x))
            else:
                val = float(len(xs))
            out.append((key, val))
        return Vector(out)

    def binary(self, b: Binary, t: float) -> Value:
        lhs = self.instant(b.lhs, t)
        rhs = self.instant(b.rhs, t)
        if isinstance(lhs, Matrix) or isinstance(rhs, Matrix):
            raise PromQLError("binary operators need instant vectors or scalars")
        cmp = b.op in COMPARISONS
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            if cmp:
                if not b.bool_mod:
                    raise PromQLError("comparisons between scalars must use bool")
                return Scalar(float(_compare(b.op, lhs.value, rhs.value)))
            return Scalar(_arith(b.op, lhs.value, rhs.value))
        if isinstance(lhs, Vector) and isinstance(rhs, Vector):
            right = {_drop_name(lb): x for lb, x in rhs.samples}
            out: list[tuple[Labels, float]] = []
            for lb, x in lhs.samples:
                key = _drop_name(lb)
                if key not in right:
                    continue
                y = right[key]
                if cmp:
                    ok = _compare(b.op, x, y)
                    if b.bool_mod:
                        out.append((key, float(ok)))
                    elif ok:
                        out.append((lb, x))
                else:
                    out.append((key, _arith(b.op, x, y)))
            return Vector(out)
        # one side a scalar
        vec_left = isinstance(lhs, Vector)
        vec = lhs if isinstance(lhs, Vector) else rhs
        sc = rhs.value if isinstance(rhs, Scalar) else lhs.value  # type: ignore[union-attr]
        assert isinstance(vec, Vector)
        out2: list[tuple[Labels, float]] = []
        for lb, x in vec.samples:
            a_, b_ = (x, sc) if vec_left else (sc, x)
            if cmp:
                ok = _compare(b.op, a_, b_)
                if b.bool_mod:
                    out2.append((_drop_name(lb), float(ok)))
                elif ok:
                    out2.append((lb, x))
            else:
                out2.append((_drop_name(lb), _arith(b.op, a_, b_)))
        return Vector(out2)


def _range_fn(f: str, pts: list[tuple[float, float]], t: float, rng: float) -> float | None:
    if f in ("rate", "increase", "delta"):
        return _extrapolated(pts, t, rng, f) if len(pts) >= 2 else None
    if f == "irate":
        if len(pts) < 2:
            return None
        (t0, v0), (t1, v1) = pts[-2], pts[-1]
        d = v1 - v0 if v1 >= v0 else v1
        return d / (t1 - t0) if t1 > t0 else None
    vals = [v for _, v in pts]
    fns: dict[str, Callable[[list[float]], float]] = {
        "avg_over_time": lambda xs: math.fsum(xs) / len(xs),
        "min_over_time": min,
        "max_over_time": max,
        "sum_over_time": math.fsum,
        "count_over_time": lambda xs: float(len(xs)),
        "last_over_time": lambda xs: xs[-1],
    }
    if f not in fns:
        raise PromQLError(f"function {f!r} is not supported here")
    return fns[f](vals)


FUNCTIONS = {
    "rate",
    "irate",
    "increase",
    "delta",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "histogram_quantile",
    "abs",
    "clamp_min",
    "clamp_max",
    "time",
    "vector",
    "scalar",
}


# ---------------------------------------------------------------- the HTTP API shape


def fmt_value(v: float) -> str:
    """Prometheus' sample value formatting (NaN, +Inf, -Inf, shortest float)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if v != int(v) or abs(v) >= 1e15 else str(int(v))


def query(store: SampleStore, expr: str, t: float) -> dict[str, Any]:
    """``/api/v1/query``'s ``data``: resultType and result."""
    v = Evaluator(store).instant(parse(expr), t)
    if isinstance(v, Scalar):
        return {"resultType": "scalar", "result": [t, fmt_value(v.value)]}
    if isinstance(v, Matrix):
        return {
            "resultType": "matrix",
            "result": [
                {"metric": dict(lb), "values": [[ts, fmt_value(x)] for ts, x in pts]}
                for lb, pts in v.series
            ],
        }
    return {
        "resultType": "vector",
        "result": [{"metric": dict(lb), "value": [t, fmt_value(x)]} for lb, x in v.samples],
    }


def query_range(
    store: SampleStore, expr: str, start: float, end: float, step: float
) -> dict[str, Any]:
    """``/api/v1/query_range``'s ``data``: a matrix of the expression at each step."""
    if step <= 0:
        raise PromQLError("step must be positive")
    if (end - start) / step > 11000:
        raise PromQLError("exceeded maximum resolution of 11,000 points per timeseries")
    node = parse(expr)
    ev = Evaluator(store)
    series: dict[Labels, list[list[Any]]] = {}
    t = start
    while t <= end + 1e-9:
        v = ev.instant(node, t)
        if isinstance(v, Scalar):
            series.setdefault((), []).append([round(t, 3), fmt_value(v.value)])
        elif isinstance(v, Vector):
            for lb, x in v.samples:
                series.setdefault(lb, []).append([round(t, 3), fmt_value(x)])
        else:
            raise PromQLError("range queries need an instant vector or scalar expression")
        t += step
    return {
        "resultType": "matrix",
        "result": [{"metric": dict(lb), "values": vals} for lb, vals in series.items()],
    }
