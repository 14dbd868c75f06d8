//! The optional read-only dashboard (`[dashboard] listen`): the bloc-wide transparency figures
//! as the members published them, a chart of requests sent and received, and (in `internal`
//! mode) every member's latest cosigned audit checkpoint. One page, no login, no case content:
//! only what members already publish to each other.
//!
//! In `public` mode it serves only the members' signed aggregate reports — the page, and the
//! reports with their signed bytes (`/reports.json`) for anyone to check — so that a bloc can
//! publish it. Either way every answer carries strict security headers (a content security
//! policy that allows nothing but the page's own inline style), an ETag, and a cache lifetime;
//! and requests are bounded per client address and in all (429 beyond).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plotters::prelude::*;

use crate::cases::Cases;
use crate::config::{DashboardMode, DashboardSection};
use crate::network::admission::Bucket;
use crate::report::{Period, Report, collected, current_periods, escape};
use crate::store::Store;

/// Client addresses whose request rate is tracked at once; beyond, the table starts afresh.
const MAX_CLIENTS: usize = 10_000;

/// The content security policy of every answer: nothing loads, nothing runs, nothing frames
/// the page; only its inline style and inline SVG are drawn.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

#[derive(Clone)]
struct Dashboard {
    cases: Cases,
    store: Store,
    settings: DashboardSection,
    limits: Arc<Mutex<Limits>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dashboard")
    }
}

/// The request buckets: one per client address, one for all.
#[derive(Debug)]
struct Limits {
    all: Bucket,
    clients: HashMap<IpAddr, Bucket>,
}

impl Limits {
    /// Whether a request from `client` may be answered now.
    fn admit(&mut self, client: IpAddr, settings: &DashboardSection, now: Instant) -> bool {
        let per_client = settings.requests_per_second_per_client;
        // One IPv6 client holds a whole /64: counted as one.
        let client = match client {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            v4 => v4,
        };
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&client) {
            self.clients.clear();
        }
        let bucket = self
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(per_client, now));
        bucket.take(per_client, now) && self.all.take(settings.requests_per_second, now)
    }
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    period: Option<String>,
}

/// Serves the dashboard on `listen` until the process ends.
pub async fn serve(
    listen: SocketAddr,
    settings: DashboardSection,
    cases: Cases,
    store: Store,
) -> anyhow::Result<()> {
    let state = Dashboard {
        cases,
        store,
        limits: Arc::new(Mutex::new(Limits {
            all: Bucket::full(settings.requests_per_second, Instant::now()),
            clients: HashMap::new(),
        })),
        settings,
    };
    let mode = state.settings.mode;
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/reports.json", get(reports_json))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the dashboard: {e}"))?;
    tracing::info!(%listen, ?mode, "dashboard serving (read-only)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Bounds the request rate, and gives every answer its security headers, its cache lifetime
/// and an ETag (answering 304 to a client that holds the same bytes).
async fn guard(
    State(state): State<Dashboard>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let admitted = state
        .limits
        .lock()
        .map(|mut l| l.admit(client.ip(), &state.settings, Instant::now()))
        .unwrap_or(false);
    let mut response = if admitted {
        let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
        let response = next.run(request).await;
        with_etag(response, if_none_match).await
    } else {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests: try again in a second\n",
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    };
    secure(response.headers_mut(), &state.settings);
    response
}

fn secure(headers: &mut HeaderMap, settings: &DashboardSection) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    set(
        headers,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    let cache = match settings.mode {
        DashboardMode::Public => format!("public, max-age={}", settings.cache_secs),
        DashboardMode::Internal => "no-store".to_owned(),
    };
    set(headers, "cache-control", &cache);
}

/// An ETag of the answer's bytes; 304 without them when the client already holds them.
async fn with_etag(response: Response, if_none_match: Option<HeaderValue>) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be read\n",
        )
            .into_response();
    };
    let etag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..32]);
    if if_none_match.is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, v);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn period_of(state: &Dashboard, query: &PageQuery) -> Result<Period, (StatusCode, String)> {
    match &query.period {
        Some(p) => p.parse().map_err(|e: String| (StatusCode::BAD_REQUEST, e)),
        None => current_periods(state.cases.now())
            .into_iter()
            .next()
            .ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "no current period".into(),
            )),
    }
}

async fn page(
    State(state): State<Dashboard>,
    Query(query): Query<PageQuery>,
) -> Result<axum::response::Html<String>, (StatusCode, String)> {
    let period = period_of(&state, &query)?;
    let reports = collected(&state.store, &period.name);
    let page = match state.settings.mode {
        DashboardMode::Public => render_public(&period, &reports),
        DashboardMode::Internal => {
            let witnessed = crate::audit::witness::witnessed(&state.store);
            let cosigned_by = crate::audit::witness::cosigned_by(&state.store);
            render(
                state.cases.jurisdiction().as_str(),
                &period,
                &reports,
                &witnessed,
                &cosigned_by,
            )
        }
    };
    Ok(axum::response::Html(page))
}

/// The members' reports of a period as they signed them: each report, and its signed bytes
/// (COSE_Sign1, hex) for anyone to check against the member's key.
async fn reports_json(
    State(state): State<Dashboard>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<serde_json::Value>, (StatusCode, String)> {
    let period = period_of(&state, &query)?;
    let reports: Vec<serde_json::Value> = crate::report::collected_signed(&state.store, &period.name)
        .into_iter()
        .map(|(published, signed)| {
            serde_json::json!({ "published": published, "cose_sign1": hex::encode(signed) })
        })
        .collect();
    Ok(axum::Json(
        serde_json::json!({ "period": period.name, "reports": reports }),
    ))
}

/// The public page: the members' signed reports and nothing else.
pub fn render_public(period: &Period, reports: &[Report]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Comity bloc, {p}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}</style></head><body>\n\
         <h1>Bloc transparency, {p}</h1>\n<p>Aggregate figures as each member published and signed them; the signed reports are at <code>reports.json</code>.</p>\n",
        p = escape(&period.name),
    );
    summary(&mut out, reports);
    for r in reports {
        out.push_str(&crate::report::html_section(r));
    }
    out.push_str("</body></html>\n");
    out
}

type Cosigned = [(String, u64, comity_protocol::Timestamp)];

/// The whole page.
pub fn render(
    me: &str,
    period: &Period,
    reports: &[Report],
    witnessed: &Cosigned,
    cosigned_by: &Cosigned,
) -> String {
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Comity bloc, {p}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}</style></head><body>\n\
         <h1>Bloc transparency, {p}</h1>\n<p>As published and signed by each member; seen from {me}.</p>\n",
        p = escape(&period.name),
        me = escape(me),
    );
    summary(&mut out, reports);
    out.push_str("\n<h2>Audit checkpoints</h2>\n<table id=\"checkpoints\">\n<tr><th>log</th><th>entries</th><th>cosigned by</th><th>at</th></tr>\n");
    for (member, size, at) in witnessed {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{size}</td><td>{}</td><td>{at}</td></tr>",
            escape(member),
            escape(me)
        );
    }
    for (witness, size, at) in cosigned_by {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{size}</td><td>{}</td><td>{at}</td></tr>",
            escape(me),
            escape(witness)
        );
    }
    out.push_str("</table>\n");
    for r in reports {
        out.push_str(&crate::report::html_section(r));
    }
    out.push_str("</body></html>\n");
    out
}

/// The members' summary table and the chart.
fn summary(out: &mut String, reports: &[Report]) {
    out.push_str("<table id=\"summary\">\n<tr><th>member</th><th>sent</th><th>received</th><th>accepted</th><th>refused</th><th>overdue</th><th>purges</th><th>policy overrides</th><th>median minutes to decision</th></tr>\n");
    for r in reports {
        let outcome = |o: &str| {
            r.by_outcome
                .get(o)
                .map(|c| c.sent + c.received)
                .unwrap_or(0)
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.jurisdiction),
            r.requests.sent,
            r.requests.received,
            outcome("accepted"),
            outcome("refused"),
            r.overdue,
            r.purges,
            r.overrides,
            r.decision_minutes_median
                .map(|m| m.to_string())
                .unwrap_or_else(|| "–".into()),
        );
    }
    out.push_str("</table>\n");
    match chart(reports) {
        Ok(svg) => out.push_str(&svg),
        Err(e) => {
            let _ = writeln!(out, "<p>(chart unavailable: {})</p>", escape(&e));
        }
    }
}

/// Requests sent and received per member, as grouped bars (SVG).
fn chart(reports: &[Report]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let members = reports.len().max(1);
        let top = reports
            .iter()
            .map(|r| r.requests.sent.max(r.requests.received))
            .max()
            .unwrap_or(0)
            + 1;
        let mut chart = ChartBuilder::on(&root)
            .caption("Requests sent and received", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d((0..members).into_segmented(), 0u64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => reports
                    .get(*i)
                    .map(|r| r.jurisdiction.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc("requests")
            .draw()
            .map_err(|e| e.to_string())?;
        let sent = RGBColor(0x1f, 0x77, 0xb4);
        let received = RGBColor(0xff, 0x7f, 0x0e);
        chart
            .draw_series(reports.iter().enumerate().map(|(i, r)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0),
                        (SegmentValue::CenterOf(i), r.requests.sent),
                    ],
                    sent.filled(),
                );
                bar.set_margin(0, 0, 6, 1);
                bar
            }))
            .map_err(|e| e.to_string())?
            .label("sent")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], sent.filled()));
        chart
            .draw_series(reports.iter().enumerate().map(|(i, r)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::CenterOf(i), 0),
                        (SegmentValue::Exact(i + 1), r.requests.received),
                    ],
                    received.filled(),
                );
                bar.set_margin(0, 0, 1, 6);
                bar
            }))
            .map_err(|e| e.to_string())?
            .label("received")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], received.filled()));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_numbers_and_an_svg_chart() {
        let mut de = crate::report::compute("DE", &[], None, |_| false);
        de.requests.received = 7;
        let fr = crate::report::compute("FR", &[], None, |_| false);
        let period: Period = "2026-11".parse().unwrap();
        let at = comity_protocol::Timestamp::now();
        let page = render(
            "FR",
            &period,
            &[de, fr],
            &[("DE".into(), 42, at)],
            &[("DE".into(), 17, at)],
        );
        assert!(page.contains("<td>DE</td><td>0</td><td>7</td>"), "{page}");
        assert!(page.contains("<svg"), "{page}");
        assert!(page.contains("<td>DE</td><td>42</td><td>FR</td>"));
        assert!(page.contains("<td>FR</td><td>17</td><td>DE</td>"));
        assert!(!page.contains("chart unavailable"), "{page}");

        // The public page: the reports, and no checkpoint, no node of its own.
        let public = render_public(&period, &[]);
        assert!(!public.contains("checkpoints") && !public.contains("seen from"));
    }

    #[test]
    fn requests_are_bounded_per_client_and_in_all() {
        let settings = DashboardSection {
            requests_per_second_per_client: 2,
            requests_per_second: 5,
            ..DashboardSection::default()
        };
        let now = Instant::now();
        let mut limits = Limits {
            all: Bucket::full(settings.requests_per_second, now),
            clients: HashMap::new(),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        // Two seconds' worth at once, then nothing until the bucket refills.
        let admitted = (0..10).filter(|_| limits.admit(a, &settings, now)).count();
        assert_eq!(admitted, 4);
        // Others are not held back by one client's flood, up to the bound for all.
        let others = (2..20u8)
            .filter(|i| limits.admit(IpAddr::from([192, 0, 2, *i]), &settings, now))
            .count();
        assert_eq!(others, 6, "ten for all, four taken by the first client");
        let later = now + std::time::Duration::from_secs(1);
        assert!(limits.admit(a, &settings, later));
    }
}
