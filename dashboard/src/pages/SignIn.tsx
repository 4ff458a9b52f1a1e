import { useState, type FormEvent } from "react";
import { api, ApiError, setRole, setToken, whoAmI, type RoleInfo } from "../api";

export function SignIn(props: { onSignedIn: (role: RoleInfo) => void }) {
  const [token, setTok] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    setError(null);
    try {
      await api("/incidents?limit=1", { token: t });
      const role = await whoAmI(t);
      setToken(t);
      setRole(role);
      props.onSignedIn(role);
    } catch (err) {
      setError(
        err instanceof ApiError && (err.status === 401 || err.status === 403)
          ? `This token was refused (${err.status}): ${err.message}`
          : `Sign-in failed: ${(err as Error).message}`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="signin card">
      <h1>Sign in to Sentinel</h1>
      <p className="muted">
        Paste your API token (from <code>sentinel users create NAME --role ROLE</code>). It is kept in this
        tab's session storage only.
      </p>
      <form onSubmit={submit}>
        <label>
          Token
          <input
            type="password"
            name="token"
            autoComplete="off"
            value={token}
            onChange={(e) => setTok(e.target.value)}
            placeholder="bearer token"
          />
        </label>
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
    </section>
  );
}
