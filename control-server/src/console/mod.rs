//! The web console (`/console/…`): plain server-rendered HTML pages over the
//! same operations as the admin API ([`crate::admin::Admin`]), for an
//! operator with a browser: devices (search by id, SP, gateway), one
//! device's history, SPs, gateways (connected or not, acknowledged
//! sequence, outbox lag), recent hand-overs and refused ones.
//!
//! Why it is built like this:
//! * No JavaScript and no external assets: one inline style sheet, forms and
//!   links. The Content-Security-Policy allows nothing else, so an injected
//!   script would not run even if escaping failed.
//! * Everything shown is escaped ([`esc`]): device ids and SP names are
//!   validated on the way in, but refused hand-overs carry what an
//!   unauthenticated sender wrote.
//! * Log-in takes the admin token once and sets a session cookie (HttpOnly,
//!   SameSite=Strict, path `/console`) that is an HMAC of its expiry under
//!   the stored credential ([`crate::admin::auth`]); the console has no
//!   state-changing page besides log-in and log-out, which SameSite=Strict
//!   keeps other sites from submitting with the cookie.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::admin::auth::{Credential, SESSION_COOKIE, SESSION_TTL_MS};
use crate::admin::http::{AdminState, HandoverQuery, ListQuery, OFF_MESSAGE, outcome_filter};
use crate::admin::AdminError;
use crate::clock;

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query or path component.
fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) fn router() -> Router<AdminState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/devices") }))
        .route("/console/", get(|| async { Redirect::to("/console/devices") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/devices", get(devices))
        .route("/console/devices/{device_id}", get(device))
        .route("/console/sps", get(sps))
        .route("/console/gateways", get(gateways))
        .route("/console/handovers", get(handovers))
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1c2430;background:#f4f6f8}\
header{background:#1f3a5f;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}\
header b{font-size:16px}header a{color:#cfe0f5;text-decoration:none}header a.on{color:#fff;border-bottom:2px solid #fff}\
header form{margin-left:auto}main{padding:16px 24px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}\
table{border-collapse:collapse;background:#fff;min-width:60%}th,td{border:1px solid #d5dbe3;padding:5px 10px;text-align:left;vertical-align:top}\
th{background:#e8edf3}td{white-space:nowrap}td.wrap{white-space:normal;max-width:36em}tr:nth-child(even) td{background:#f9fbfc}.ok{color:#176b2c;font-weight:600}.bad{color:#a3261b;font-weight:600}\
.muted{color:#66707c}form.search{display:flex;gap:8px;align-items:end;margin-bottom:12px}label{display:flex;flex-direction:column;font-size:12px}\
input{font:inherit;padding:4px 6px;border:1px solid #aab4c0;border-radius:3px}button{font:inherit;padding:4px 12px}\
.msg{background:#fdecea;border:1px solid #f0b4ad;padding:8px 12px;margin-bottom:12px}dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}\
dt{color:#66707c}dd{margin:0}code{font-family:ui-monospace,monospace}";

fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A whole page: navigation (when logged in) and `body` (already escaped).
fn page(title: &str, active: Option<&str>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(active) = active {
        for (href, name) in [
            ("/console/devices", "Devices"),
            ("/console/sps", "SPs"),
            ("/console/gateways", "Gateways"),
            ("/console/handovers", "Hand-overs"),
        ] {
            let class = if name == active { " class=\"on\"" } else { "" };
            let _ = write!(nav, "<a href=\"{href}\"{class}>{name}</a>");
        }
        nav.push_str("<form method=\"post\" action=\"/console/logout\"><button type=\"submit\">Log out</button></form>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · control server</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body><header><b>Control server</b>{nav}</header><main>{body}</main></body></html>",
        esc(title)
    )
}

fn error_page(status: StatusCode, title: &str, message: &str, logged_in: bool) -> Response {
    let body = format!("<h1>{}</h1><p class=\"msg\">{}</p>", esc(title), esc(message));
    html_response(status, page(title, logged_in.then_some(""), &body))
}

fn admin_error(e: AdminError) -> Response {
    let (_, status) = crate::admin::http::code_and_status(&e);
    if status.is_server_error() {
        tracing::warn!(error = %e, "console request failed");
    }
    error_page(status, "Cannot show this", &e.to_string(), true)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a console page is not shown.
enum Gate {
    Off,
    Login,
    Failed(String),
}

impl IntoResponse for Gate {
    fn into_response(self) -> Response {
        match self {
            Gate::Off => error_page(StatusCode::FORBIDDEN, "The console is off", OFF_MESSAGE, false),
            Gate::Login => Redirect::to("/console/login").into_response(),
            Gate::Failed(m) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "Storage failure", &m, false),
        }
    }
}

async fn credential(state: &AdminState) -> Result<Credential, Gate> {
    match state.auth.credential().await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Gate::Off),
        Err(e) => Err(Gate::Failed(e.to_string())),
    }
}

/// Lets in only a browser with a valid session cookie.
async fn session(state: &AdminState, headers: &HeaderMap) -> Result<(), Gate> {
    let cred = credential(state).await?;
    match cookie(headers, SESSION_COOKIE) {
        Some(v) if cred.session_valid(v, clock::now_ms()) => Ok(()),
        _ => Err(Gate::Login),
    }
}

fn login_form(message: Option<&str>) -> String {
    let msg = message.map(|m| format!("<p class=\"msg\" id=\"login-error\">{}</p>", esc(m))).unwrap_or_default();
    format!(
        "<h1>Log in</h1>{msg}<form method=\"post\" action=\"/console/login\" class=\"search\">\
         <label>Admin token<input type=\"password\" name=\"token\" id=\"token\" size=\"72\" autocomplete=\"off\" autofocus></label>\
         <button type=\"submit\" id=\"login\">Log in</button></form>\
         <p class=\"muted\">The token is the one <code>control-server admin-token</code> printed.</p>"
    )
}

async fn login_page(State(state): State<AdminState>) -> Response {
    if let Err(gate) = credential(&state).await {
        return gate.into_response();
    }
    html_response(StatusCode::OK, page("Log in", None, &login_form(None)))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<AdminState>, form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>) -> Response {
    let cred = match credential(&state).await {
        Ok(c) => c,
        Err(gate) => return gate.into_response(),
    };
    let Ok(Form(form)) = form else {
        return html_response(StatusCode::BAD_REQUEST, page("Log in", None, &login_form(Some("Send the form with a token."))));
    };
    if !cred.verifies(form.token.trim()) {
        tracing::info!("console: a log-in with a wrong admin token was refused");
        return html_response(
            StatusCode::UNAUTHORIZED,
            page("Log in", None, &login_form(Some("Wrong admin token. `control-server admin-token` makes a new one."))),
        );
    }
    let value = cred.session(clock::now_ms() + SESSION_TTL_MS);
    let cookie = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    let mut response = Redirect::to("/console/devices").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cs_admin_session=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0"),
    );
    response
}

fn opt(text: &Option<String>) -> String {
    text.as_deref().map(esc).unwrap_or_else(|| "<span class=\"muted\">–</span>".into())
}

fn device_link(id: &str) -> String {
    format!("<a href=\"/console/devices/{}\">{}</a>", url(id), esc(id))
}

async fn devices(
    State(state): State<AdminState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if let Err(gate) = session(&state, &headers).await {
        return gate.into_response();
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Bad search", &e.body_text(), true),
    };
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return admin_error(e),
    };
    let page_rows = match state.admin("console").list(filter).await {
        Ok(p) => p,
        Err(e) => return admin_error(e),
    };
    let v = |s: &Option<String>| esc(s.as_deref().unwrap_or(""));
    let mut body = format!(
        "<h1>Devices</h1><form method=\"get\" action=\"/console/devices\" class=\"search\">\
         <label>Device id contains<input name=\"q\" id=\"q\" value=\"{}\" placeholder=\"00-80\"></label>\
         <label>SP<input name=\"sp\" id=\"sp\" value=\"{}\"></label>\
         <label>Gateway<input name=\"gateway\" id=\"gateway\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"search\">Search</button></form>",
        v(&q.q),
        v(&q.sp),
        v(&q.gateway)
    );
    let _ = write!(body, "<p id=\"count\">{} device(s) match.</p>", page_rows.total);
    if !page_rows.mappings.is_empty() {
        body.push_str(
            "<table id=\"devices\"><tr><th>Device</th><th>SP</th><th>Service type</th><th>Access</th><th>Gateways</th>\
             <th>Updated</th><th>Validated</th></tr>",
        );
        for m in &page_rows.mappings {
            let gateways: Vec<String> = m
                .gateways
                .iter()
                .map(|g| format!("<a href=\"/console/devices?gateway={}\">{}</a>", url(g), esc(g)))
                .collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"/console/devices?sp={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                device_link(&m.device_id),
                url(&m.sp),
                esc(&m.sp),
                opt(&m.service_type),
                opt(&m.access),
                gateways.join(", "),
                esc(&m.updated_at),
                esc(&m.validated_at)
            );
        }
        body.push_str("</table>");
    }
    if let Some(next) = &page_rows.next {
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"/console/devices?q={}&amp;sp={}&amp;gateway={}&amp;after={}\">Next page →</a></p>",
            url(q.q.as_deref().unwrap_or("")),
            url(q.sp.as_deref().unwrap_or("")),
            url(q.gateway.as_deref().unwrap_or("")),
            url(next)
        );
    }
    html_response(StatusCode::OK, page("Devices", Some("Devices"), &body))
}

async fn device(State(state): State<AdminState>, headers: HeaderMap, Path(device): Path<String>) -> Response {
    if let Err(gate) = session(&state, &headers).await {
        return gate.into_response();
    }
    let admin = state.admin("console");
    let history = match admin.history(&device).await {
        Ok(h) => h,
        Err(e) => return admin_error(e),
    };
    let id = match crate::admin::canonical_device_id(&device) {
        Ok(id) => id,
        Err(e) => return admin_error(e),
    };
    let mut body = format!("<h1 id=\"device-id\">{}</h1>", esc(&id));
    match admin.show(&id).await {
        Ok(m) => {
            let gateways: Vec<String> = m.gateways.iter().map(|g| esc(g)).collect();
            let _ = write!(
                body,
                "<dl id=\"mapping\"><dt>SP</dt><dd>{}</dd><dt>Service type</dt><dd>{}</dd><dt>Access</dt><dd>{}</dd>\
                 <dt>Gateways</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Updated</dt><dd>{}</dd><dt>Validated</dt><dd>{}</dd></dl>",
                esc(&m.sp),
                opt(&m.service_type),
                opt(&m.access),
                if gateways.is_empty() { "<span class=\"muted\">none yet</span>".into() } else { gateways.join(", ") },
                esc(&m.created_at),
                esc(&m.updated_at),
                esc(&m.validated_at)
            );
        }
        Err(AdminError::UnknownDevice(_)) => {
            body.push_str("<p class=\"msg\">Not in the mapping table any more (removed); its history follows.</p>");
        }
        Err(e) => return admin_error(e),
    }
    body.push_str("<h2>SP history</h2><table id=\"history\"><tr><th>When</th><th>From</th><th>To</th><th>By</th><th>Message</th></tr>");
    for h in &history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&h.at),
            opt(&h.old_sp),
            esc(&h.new_sp),
            esc(&h.changed_by),
            opt(&h.message_id)
        );
    }
    body.push_str("</table>");
    match state.server.store.admin_log(Some(&id), 100).await {
        Ok(log) if !log.is_empty() => {
            body.push_str("<h2>Admin actions</h2><table id=\"admin-log\"><tr><th>When</th><th>Who</th><th>What</th><th>Detail</th></tr>");
            for e in &log {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&clock::rfc3339(e.at)),
                    esc(&e.actor),
                    esc(&e.action),
                    esc(&e.detail)
                );
            }
            body.push_str("</table>");
        }
        Ok(_) => {}
        Err(e) => return admin_error(e.into()),
    }
    html_response(StatusCode::OK, page(&id, Some("Devices"), &body))
}

async fn sps(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(gate) = session(&state, &headers).await {
        return gate.into_response();
    }
    let sps = match state.admin("console").sps().await {
        Ok(s) => s,
        Err(e) => return admin_error(e),
    };
    let mut body = String::from(
        "<h1>Service providers</h1><table id=\"sps\"><tr><th>Identity</th><th>Base URL</th><th>Devices</th>\
         <th>May release to</th><th>May claim</th><th>Key</th><th>Endpoint</th></tr>",
    );
    for sp in &sps {
        let release = if sp.may_release { esc(&sp.may_move_to.join(", ")) } else { "<span class=\"muted\">no</span>".into() };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><a href=\"/console/devices?sp={}\">{}</a></td><td>{}</td><td>{}</td><td><code>{}…</code></td><td>{}</td></tr>",
            esc(&sp.identity),
            esc(&sp.base_url),
            url(&sp.identity),
            sp.devices,
            release,
            if sp.may_claim { "yes" } else { "no" },
            esc(sp.public_key.get(..16).unwrap_or(&sp.public_key)),
            sp.endpoint.as_deref().map(esc).unwrap_or_else(|| "<span class=\"muted\">none</span>".into())
        );
    }
    body.push_str("</table>");
    html_response(StatusCode::OK, page("SPs", Some("SPs"), &body))
}

async fn gateways(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(gate) = session(&state, &headers).await {
        return gate.into_response();
    }
    let gateways = match state.gateways().await {
        Ok(g) => g,
        Err(e) => return admin_error(e),
    };
    let mut body = String::from(
        "<h1>Gateways</h1><table id=\"gateways\"><tr><th>Gateway</th><th>State</th><th>Open streams</th><th>Last seen</th>\
         <th>Last sequence</th><th>Acknowledged</th><th>Outbox lag</th><th>Devices</th></tr>",
    );
    for g in &gateways {
        let status = if g.revoked {
            "<span class=\"bad\">revoked</span>"
        } else if g.connected == Some(true) {
            "<span class=\"ok\">connected</span>"
        } else {
            "<span class=\"muted\">not connected</span>"
        };
        let seen = match (g.open_streams, g.last_seen_secs_ago) {
            (Some(n), _) if n > 0 => "now (open)".to_owned(),
            (_, Some(s)) => format!("{s} s ago"),
            _ => "never (this replica)".to_owned(),
        };
        let lag = if g.lag > 0 { format!("<span class=\"bad\">{}</span>", g.lag) } else { "0".into() };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{lag}</td>\
             <td><a href=\"/console/devices?gateway={}\">{}</a></td></tr>",
            esc(&g.id),
            g.open_streams.unwrap_or(0),
            esc(&seen),
            g.last_seq,
            g.acked_seq,
            url(&g.id),
            g.devices
        );
    }
    body.push_str(
        "</table><p class=\"muted\">Connected: a stream or long-poll open on this replica, or one in the last 60 s.</p>",
    );
    html_response(StatusCode::OK, page("Gateways", Some("Gateways"), &body))
}

async fn handovers(
    State(state): State<AdminState>,
    headers: HeaderMap,
    q: Result<Query<HandoverQuery>, QueryRejection>,
) -> Response {
    if let Err(gate) = session(&state, &headers).await {
        return gate.into_response();
    }
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Bad filter", &e.body_text(), true),
    };
    let accepted = match outcome_filter(q.outcome.as_deref()) {
        Ok(a) => a,
        Err(e) => return admin_error(e),
    };
    let entries = match state.server.store.recent_handovers(accepted, q.limit.unwrap_or(200).clamp(1, 1000)).await {
        Ok(e) => e,
        Err(e) => return admin_error(e.into()),
    };
    let mut body = String::from("<h1>SP hand-overs</h1><p>");
    for (value, name) in [("all", "All"), ("accepted", "Accepted"), ("refused", "Refused")] {
        let on = match (accepted, value) {
            (None, "all") | (Some(true), "accepted") | (Some(false), "refused") => " <b>",
            _ => " ",
        };
        let off = if on == " <b>" { "</b>" } else { "" };
        let _ = write!(body, "{on}<a href=\"/console/handovers?outcome={value}\">{name}</a>{off}");
    }
    body.push_str(
        "</p><table id=\"handovers\"><tr><th>When</th><th>Outcome</th><th>Sender (claimed)</th><th>New SP</th><th>Devices</th>\
         <th>Changed</th><th>Events</th><th>Why</th><th>Message</th></tr>",
    );
    for e in &entries {
        let outcome = if e.accepted {
            "<span class=\"ok\">accepted</span>".to_owned()
        } else {
            format!("<span class=\"bad\">refused: {}</span>", esc(&e.code))
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{outcome}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td><td><code>{}</code></td></tr>",
            esc(&clock::rfc3339(e.at)),
            opt(&e.sender),
            opt(&e.new_sp),
            e.devices,
            e.changed,
            e.events,
            esc(&e.reason),
            esc(&e.message_id)
        );
    }
    body.push_str("</table>");
    if entries.is_empty() {
        body.push_str("<p class=\"muted\">No hand-overs logged yet.</p>");
    }
    html_response(StatusCode::OK, page("Hand-overs", Some("Hand-overs"), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<script>\"x\" & 'y'</script>"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;");
        assert_eq!(url("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn finds_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; cs_admin_session=xyz; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
