//! The optional read-only dashboard (`[dashboard] listen`): the bloc-wide transparency figures
//! as the members published them, a chart of requests sent and received, and every member's
//! latest cosigned audit checkpoint. One page, no login, no case content: only what members
//! already publish to each other.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use plotters::prelude::*;

use crate::cases::Cases;
use crate::report::{Period, Report, collected, current_periods, escape};
use crate::store::Store;

#[derive(Clone)]
struct Dashboard {
    cases: Cases,
    store: Store,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dashboard")
    }
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    period: Option<String>,
}

/// Serves the dashboard on `listen` until the process ends.
pub async fn serve(listen: SocketAddr, cases: Cases, store: Store) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/", get(page))
        .with_state(Dashboard { cases, store });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the dashboard: {e}"))?;
    tracing::info!(%listen, "dashboard serving (read-only)");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn page(
    State(state): State<Dashboard>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, (StatusCode, String)> {
    let period: Period = match &query.period {
        Some(p) => p
            .parse()
            .map_err(|e: String| (StatusCode::BAD_REQUEST, e))?,
        None => current_periods(state.cases.now())
            .into_iter()
            .next()
            .ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "no current period".into(),
            ))?,
    };
    let reports = collected(&state.store, &period.name);
    let witnessed = crate::audit::witness::witnessed(&state.store);
    let cosigned_by = crate::audit::witness::cosigned_by(&state.store);
    Ok(Html(render(
        state.cases.jurisdiction().as_str(),
        &period,
        &reports,
        &witnessed,
        &cosigned_by,
    )))
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
    }
}
