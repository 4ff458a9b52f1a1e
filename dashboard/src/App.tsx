import { useEffect, useState } from "react";
import { getRole, getToken, setRole, setToken, whoAmI, type RoleInfo } from "./api";
import { Approvals } from "./pages/Approvals";
import { Audit } from "./pages/Audit";
import { IncidentList } from "./pages/IncidentList";
import { IncidentPage } from "./pages/IncidentPage";
import { SignIn } from "./pages/SignIn";
import { Link, navigate, usePath } from "./router";

export function App() {
  const path = usePath();
  const [token, setTok] = useState<string | null>(getToken());
  const [role, setRoleState] = useState<RoleInfo>(getRole());

  // A session from before GET /me existed knows the role but not the user: ask once.
  useEffect(() => {
    if (!token || role.user) return;
    let live = true;
    whoAmI(token)
      .then((r) => {
        if (!live) return;
        setRole(r);
        setRoleState(r);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [token, role.user]);

  const learnForbidden = () => {
    // A 403 on a decision: this token may not decide approvals (of this risk, at least).
    if (role.canApprove !== false) {
      const r = { label: role.label ?? "no approval rights", canApprove: role.canApprove === true ? true : false };
      setRole(r);
      setRoleState(r);
    }
  };

  if (!token) {
    return (
      <div className="app">
        <header className="top">
          <span className="brand">Sentinel</span>
        </header>
        <main>
          <SignIn
            onSignedIn={(r) => {
              setTok(getToken());
              setRoleState(r);
              if (path === "/signin") navigate("/");
            }}
          />
        </main>
      </div>
    );
  }

  let page;
  let m: RegExpMatchArray | null;
  if ((m = path.match(/^\/incidents\/([^/]+)\/audit\/?$/))) page = <Audit incidentId={decodeURIComponent(m[1])} />;
  else if ((m = path.match(/^\/incidents\/([^/]+)\/?$/)))
    page = <IncidentPage key={m[1]} id={decodeURIComponent(m[1])} role={role} onForbidden={learnForbidden} />;
  else if (path.startsWith("/approvals")) page = <Approvals role={role} onForbidden={learnForbidden} />;
  else page = <IncidentList />;

  return (
    <div className="app">
      <header className="top">
        <Link to="/" className="brand">
          Sentinel
        </Link>
        <nav>
          <Link to="/">Incidents</Link>
          <Link to="/approvals">Approvals</Link>
        </nav>
        <span className="who" data-testid="role">
          {role.user ? `${role.user} · ` : ""}
          {role.label ? `role: ${role.label}` : "role: unknown"}
        </span>
        <button
          className="link"
          onClick={() => {
            setToken(null);
            setTok(null);
            setRoleState({ label: null, canApprove: null });
          }}
        >
          Sign out
        </button>
      </header>
      <main>{page}</main>
    </div>
  );
}
