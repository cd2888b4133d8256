"""The HTML of the console's pages: small, server-rendered, every value escaped.

Templates are constants formatted by `render`, which escapes every value that is not `Markup`
built here: alert labels, incident titles and reasons are attacker-influenced and must never
become markup. The stylesheet is a constant too, allowed by its hash in the page's CSP.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from remediator.clock import describe_duration
from remediator.model import Alert, Approval, Incident
from remediator.web.sessions import PATH, Session

APPROVALS_PAGE = f"{PATH}/approvals"
INCIDENTS_PAGE = f"{PATH}/incidents"
STATS_PAGE = f"{PATH}/stats"
CONTROLS_PAGE = f"{PATH}/controls"
SIGN_IN_PAGE = f"{PATH}/login"
SIGN_OUT = f"{PATH}/logout"


class Markup(str):
    """HTML built by this module from escaped parts: inserted as is."""

    __slots__ = ()


def render(template: str, **values: object) -> Markup:
    return Markup(template.format(**{k: v if isinstance(v, Markup) else html.escape(str(v), quote=True)
                                     for k, v in values.items()}))


def join(parts: Iterable[Markup]) -> Markup:
    return Markup("".join(parts))


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f4f6f8}
header{display:flex;flex-wrap:wrap;gap:.4rem 1rem;justify-content:space-between;align-items:center;padding:.6rem 1rem;
background:#1d3557;color:#fff;overflow-wrap:anywhere}
header h1{font-size:1.2rem;margin:0}header form{display:inline}header a{color:#fff}
nav a{margin-right:.8rem;font-weight:600}
main{max-width:62rem;margin:1rem auto;padding:0 1rem;overflow-wrap:anywhere}
.mode{margin:.8rem 0;padding:.5rem 1rem;border-radius:6px;font-weight:600}
.mode.dry-run{background:#fff4d6;border:2px dashed #b26a00;color:#6b3f00}
.mode.enforce{background:#fdecea;border:1px solid #c62828;color:#7f1111}
.breach{color:#c62828;font-weight:600}.sev{font-weight:700}.sev.P1{color:#c62828}.sev.P2{color:#ef6c00}
svg{display:block;max-width:100%;height:auto;background:#fff;border:1px solid #d4dae1;border-radius:6px}
svg text{font-size:12px;fill:#1d2430}svg.timeline{max-width:46rem}svg.timeline text{font-size:13px}
svg .tick{fill:#5a6473}svg .grid{stroke:#e3e7ec}svg .axis{stroke:#5a6473}
svg .lane-line{stroke:#eef1f4}svg .lane{font-weight:600}
.phase{fill:#90a4ae}.phase.detect{fill:#ef9a9a}.phase.triage{fill:#ffcc80}.phase.contain{fill:#fff59d}
.phase.recover{fill:#a5d6a7}.phase.verify{fill:#80cbc4}.phase.closed{fill:#b0bec5}
.target{stroke:#1565c0;stroke-width:2;stroke-dasharray:5 3}.target.breached{stroke:#c62828}
.now{stroke:#1d2430;stroke-width:1.5}
svg .target-label{fill:#1565c0}svg .target-label.breached{fill:#c62828;font-weight:600}
.mark{stroke:#fff;stroke-width:1.5;fill:#546e7a}.mark.alerts{fill:#c62828}.mark.decisions{fill:#6a1b9a}
.mark.actions{fill:#1565c0}.mark.approvals{fill:#2e7d32}.mark.escalations{fill:#ef6c00}.mark.people{fill:#00838f}
.bar.P1{fill:#c62828}.bar.P2{fill:#ef6c00}.bar.P3{fill:#f9a825}.bar.P4{fill:#78909c}
.pair{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start;margin:1rem 0}
.pair>*{flex:1 1 18rem;min-width:0;margin:0}
.checklist{list-style:none;padding:0}
table.events td:nth-child(-n+3){overflow-wrap:normal;white-space:nowrap}.checklist .todo{color:#7f1111}
form.period{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
.flash{padding:.6rem 1rem;border-radius:6px;background:#e8f1fb;border:1px solid #9cc3ea}
.flash.bad{background:#fdecea;border-color:#f1a7a0}
article{background:#fff;border:1px solid #d4dae1;border-left:6px solid #999;border-radius:6px;padding:.8rem 1rem;
margin:1rem 0}
article.P1{border-left-color:#c62828}article.P2{border-left-color:#ef6c00}
h2{font-size:1.05rem}h3{margin:.1rem 0 .4rem;font-size:1.05rem}
.plan{font-size:1.05rem}dl{display:grid;grid-template-columns:9rem 1fr;gap:.2rem .8rem;margin:.6rem 0}
dt{color:#5a6473}dd{margin:0}code{font-size:.85rem;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff}table.stack{margin:1rem 0}
th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #e3e7ec;vertical-align:top}table.params{width:auto;min-width:20rem}
.decide{display:flex;gap:.5rem;align-items:end;flex-wrap:wrap;margin-top:.6rem}
.decide label{flex:1;min-width:16rem}.decide input[type=text]{width:100%;padding:.4rem;box-sizing:border-box}
button{padding:.45rem 1rem;border-radius:5px;border:1px solid #777;cursor:pointer;font-weight:600}
button.approve{background:#2e7d32;color:#fff;border-color:#2e7d32}
button.reject{background:#fff;color:#b71c1c;border-color:#b71c1c}
.muted{color:#5a6473}.labels span{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 .35rem;
margin:0 .25rem .2rem 0;font-size:.85rem}
form.login{background:#fff;border:1px solid #d4dae1;border-radius:6px;padding:1rem;max-width:26rem}
form.login input{width:100%;padding:.4rem;margin:.3rem 0 .8rem;box-sizing:border-box}
@media (max-width:40rem){table.stack thead{display:none}table.stack tr{display:block;border-bottom:2px solid #d4dae1}
table.stack td{display:block;border:0}table.stack td::before{content:attr(data-label) ": ";color:#5a6473}
table.params{min-width:0}dl{grid-template-columns:1fr}dt{font-weight:600}table.stack td.act::before{content:none}}
form.control{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.6rem 0}
form.control label{flex:1 1 12rem;min-width:0}form.control input,form.control select{width:100%;padding:.4rem;
box-sizing:border-box}form.inline{display:inline}.state{font-size:1.1rem;font-weight:700}.state.on{color:#c62828}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} · remediator</title><style>{style}</style></head>
<body><header><h1>remediator · {title}</h1>{nav}{who}</header><main>{mode}{flash}{body}</main></body></html>
"""
WHO = """<div>Signed in as <strong>{name}</strong> ({roles})
<form method="post" action="{sign_out}"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Sign out</button></form></div>"""


@dataclass(frozen=True, slots=True)
class Pending:
    """One approval waiting for a decision, with what a person needs to decide."""

    approval: Approval
    summary: str
    why: str  # the policy's description: what it is for
    incident: Incident | None
    alert: Alert | None
    may_vote: bool
    why_not: str = ""


NOTHING = Markup("")


NAV = """<nav><a href="{incidents}">Incidents</a><a href="{approvals}">Approvals</a><a href="{stats}">Stats</a>
<a href="{controls}">Controls</a></nav>"""
MODES = {
    "dry-run": "DRY-RUN: this daemon decides and records, but touches nothing. An approved plan is recorded "
               "as dry-run, not run.",
    "enforce": "ENFORCE: this daemon runs actions against the estate. An approved plan runs.",
}


def mode_banner(mode: str) -> Markup:
    """What the daemon does with what people decide, said before anyone decides."""
    return render('<p class="mode {mode}" id="mode" role="note">{text}</p>', mode=mode,
                  text=MODES.get(mode, f"Mode: {mode}"))


def page(body: Markup, session: Session | None, flash: Markup = NOTHING, *, title: str = "Approvals",
         mode: str | None = None) -> str:
    who = render(WHO, name=session.name, roles=", ".join(session.roles), csrf=session.csrf,
                 sign_out=SIGN_OUT) if session else ""
    nav = render(NAV, incidents=INCIDENTS_PAGE, approvals=APPROVALS_PAGE, stats=STATS_PAGE,
                 controls=CONTROLS_PAGE) if session else NOTHING
    banner = mode_banner(mode) if session and mode else NOTHING
    return render(LAYOUT, style=Markup(STYLE), title=title, nav=nav, who=who, mode=banner, flash=flash, body=body)


def flash_box(message: str, good: bool) -> Markup:
    return render('<p class="flash{bad}" role="status">{message}</p>', bad=Markup("" if good else " bad"),
                  message=message)


def login_form(nonce: str, wanted: str = "") -> Markup:
    """The sign-in form; `wanted` (a console path, checked by the caller) is where it leads afterwards."""
    back_to = render('<input type="hidden" name="next" value="{page}">', page=wanted) if wanted else NOTHING
    return render("""<h2>Sign in</h2>
<form class="login" method="post" action="{action}" autocomplete="off">
<input type="hidden" name="nonce" value="{nonce}">{back_to}
<label for="name">Token name</label>
<input id="name" name="name" type="text" required autocomplete="username" spellcheck="false">
<label for="token">API token</label>
<input id="token" name="token" type="password" required autocomplete="off" spellcheck="false">
<button type="submit">Sign in</button>
<p class="muted">Your token is sent once, in this form's body; the page keeps a signed session cookie.</p>
</form>""", nonce=nonce, action=SIGN_IN_PAGE, back_to=back_to)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _params(params: Mapping[str, object]) -> Markup:
    not_set = Markup('<span class="muted">not set</span>')
    rows = join(render("<tr><th>{k}</th><td>{v}</td></tr>", k=k,
                       v=render("<code>{v}</code>", v=v) if v is not None else not_set) for k, v in params.items())
    return render('<table class="params">{rows}</table>', rows=rows) if params else Markup("<p>(no parameters)</p>")


def _labels(alert: Alert | None) -> Markup:
    if alert is None:
        return Markup("—")
    spans = join(render("<span>{k}={v}</span>", k=k, v=v) for k, v in sorted(alert.labels.items()))
    return render('{name} <span class="labels">{spans}</span>', name=alert.name, spans=spans)


def pending_item(item: Pending, session: Session, now: datetime) -> Markup:
    a, incident = item.approval, item.incident
    about = render('<a href="{page}/{id}">{id}</a> — {title} ({severity}, {phase})', page=INCIDENTS_PAGE,
                   id=a.incident_id, title=incident.title, severity=incident.severity.value,
                   phase=incident.phase.value) if incident else a.incident_id
    left = describe_duration(a.expires_at - now) if a.expires_at > now else "now"
    form = render("""<form class="decide" method="post" action="{page}/{id}/decide">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="plan_hash" value="{hash}">
<label>Reason (required)<input type="text" name="reason" required maxlength="500"
 placeholder="what you checked, why this is right"></label>
<button class="approve" type="submit" name="choice" value="approve">Approve</button>
<button class="reject" type="submit" name="choice" value="reject">Reject</button></form>""",
                  page=APPROVALS_PAGE, id=a.id, csrf=session.csrf, hash=a.plan_hash) if item.may_vote else \
        render('<p class="muted">{why}</p>', why=item.why_not)
    return render("""<article class="{severity}" id="{id}" data-approval="{id}">
<h3>{severity} · {id}</h3>
<p class="plan">Run <strong>{action}</strong> on <strong>{target}</strong>: {summary}</p>{why}
{params}
<dl><dt>Incident</dt><dd>{about}</dd><dt>Alert</dt><dd>{labels}</dd>
<dt>Requested by</dt><dd>{requester}: {reason}</dd>
<dt>Expires</dt><dd>{expires} (in {left})</dd>
<dt>Approvals</dt><dd>{count} of {required}{by}</dd>
<dt>Plan hash</dt><dd><code>{hash}</code></dd></dl>
{form}</article>""", severity=a.severity.value, id=a.id, action=a.action, target=a.target, summary=item.summary,
                  why=render('<p class="muted">{why}</p>', why=item.why) if item.why else NOTHING,
                  params=_params(a.params), about=about, labels=_labels(item.alert), requester=a.requested_by,
                  reason=a.reason, expires=_when(a.expires_at), left=left, count=len(a.approvers),
                  required=a.required, by=f": {', '.join(a.approvers)}" if a.approvers else "", hash=a.plan_hash,
                  form=form)


def history_table(decided: Sequence[Approval]) -> Markup:
    if not decided:
        return Markup('<p class="muted">No decisions yet.</p>')
    rows = join(render("""<tr id="history-{id}"><td data-label="Decided">{when}</td><td data-label="Approval">{id}</td>
<td data-label="Plan">{action} on {target}</td><td class="status" data-label="Status">{status}</td>
<td data-label="Votes">{votes}</td><td class="outcome" data-label="Result">{outcome}</td></tr>""",
                       when=_when(a.decided_at), id=a.id, action=a.action, target=a.target, status=a.status.value,
                       votes="; ".join(f"{v.by} {v.choice.value}d: {v.reason}" for v in a.votes) or "—",
                       outcome=(f"{a.outcome.value}: " if a.outcome else "") + a.detail) for a in decided)
    return render("""<table class="stack"><thead><tr><th>Decided</th><th>Approval</th><th>Plan</th><th>Status</th>
<th>Votes</th><th>Result</th></tr></thead><tbody>{rows}</tbody></table>""", rows=rows)


def approvals_body(pending: Sequence[Pending], decided: Sequence[Approval], session: Session, now: datetime) -> Markup:
    items = join(pending_item(p, session, now) for p in pending) if pending else \
        Markup('<p class="muted">Nothing is waiting for a decision.</p>')
    return render("""<section id="pending"><h2>Waiting for a decision ({count})</h2>{items}</section>
<section id="history"><h2>Last decisions</h2>{history}</section>""", count=len(pending), items=items,
                  history=history_table(decided))
