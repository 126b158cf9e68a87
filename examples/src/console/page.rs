//! The console's one page, rendered on the server from the store (no JavaScript: replay and purge are forms).
//!
//! Every figure carries a `data-k` attribute (and its row a `data-source` or `data-id`) so the browser test can
//! read what is shown and compare it with the store.

use std::fmt::Write as _;
use std::time::Duration;

use sync_core::Store;

use super::{ConsoleConfig, Flash, redact};
use crate::human;

/// How many dead letters the page lists (the count shown is the store's total).
const DEAD_SHOWN: u32 = 50;
/// The throughput window.
const WINDOW: Duration = Duration::from_secs(3600);

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

const STYLE: &str = "\
:root{color-scheme:light dark;--b:#8884;--warn:#c60;--bad:#c22;--ok:#282}\
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:.75rem}\
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.4rem 0 .4rem;border-bottom:1px solid var(--b)}\
.meta{opacity:.75;font-size:.85rem}.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--b);text-align:left;vertical-align:top}\
td.n,th.n{text-align:right}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn)}.ok{color:var(--ok)}\
.flash{padding:.5rem;border:1px solid var(--ok);border-radius:.3rem;margin:.5rem 0}\
article.dead{border:1px solid var(--b);border-radius:.4rem;padding:.5rem .7rem;margin:.5rem 0}\
article.dead header{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:baseline}\
pre{white-space:pre-wrap;word-break:break-all;font-size:.8rem;max-height:20rem;overflow:auto;margin:.3rem 0}\
button{font:inherit;padding:.35rem .9rem;border-radius:.3rem;border:1px solid var(--b);cursor:pointer}\
form.inline{display:inline}.err{white-space:pre-wrap;word-break:break-word}";

/// The page.
pub(super) async fn render(store: &Store, config: &ConsoleConfig, flash: &Flash) -> anyhow::Result<String> {
    let figures = store.source_figures(WINDOW).await?;
    let status = store.status().await?;
    let dead = store.dead_letters(DEAD_SHOWN).await?;
    let budgets = store.budget_states().await?;
    let health = store.health().await?;
    let airtable_hook = store.cursor_get("airtable-webhook", "current").await?;
    // the store's clock (on PostgreSQL anchored to the database server's), the time base of every stored time
    let now = sync_core::clock::ms_to_datetime(sync_core::Clock::now_ms(store.clock().as_ref()));
    let ago = |t: chrono::DateTime<chrono::Utc>| human((now - t).to_std().unwrap_or_default());

    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>sync console</title><style>{STYLE}</style></head><body>\
         <h1>Sync console</h1><p class=meta>{} · store: {} · {} UTC · <a href=\"/\">reload</a> · \
         <a href=\"/metrics\">/metrics</a></p>",
        esc(&config.instance),
        store.backend_name(),
        now.format("%Y-%m-%d %H:%M:%S"),
    );
    if let Some(id) = flash.replayed {
        let _ = write!(o, "<p class=flash id=flash>Event #{id} is queued again.</p>");
    }
    if let Some(n) = flash.purged {
        let _ = write!(o, "<p class=flash id=flash>{n} done events purged.</p>");
    }

    // ---- sources
    // the figures an operator acts on first (queued, dead, retrying, lag) come first: on a phone the table scrolls
    o.push_str(
        "<h2>Queues</h2><div class=scroll><table id=sources><thead><tr><th>source</th>\
         <th class=n>queued</th><th class=n>dead</th><th class=n>retrying</th><th>oldest queued</th>\
         <th class=n>running</th><th class=n title=\"done or dead in the last hour\">finished / h</th>\
         <th class=n>done</th><th class=n>skipped</th><th>flow</th></tr></thead><tbody>",
    );
    let mut sources: Vec<(String, String)> = config.flows.clone();
    for s in figures.keys() {
        if !sources.iter().any(|(known, _)| known == s) {
            sources.push((s.clone(), String::new()));
        }
    }
    for (source, flow) in &sources {
        let f = figures.get(source).cloned().unwrap_or_default();
        let oldest = f.oldest_queued_age.map_or_else(|| "—".to_owned(), human);
        let dead_class = if f.dead > 0 { " bad" } else { "" };
        let _ = write!(
            o,
            "<tr data-source=\"{s}\"><td>{s}</td><td class=n data-k=queued>{}</td>\
             <td class=\"n{dead_class}\" data-k=dead>{}</td><td class=n data-k=retrying>{}</td>\
             <td data-k=oldest>{oldest}</td><td class=n data-k=running>{}</td>\
             <td class=n data-k=throughput>{}</td><td class=n data-k=done>{}</td><td class=n data-k=skipped>{}</td>\
             <td>{flow}</td></tr>",
            f.queued,
            f.dead,
            f.retrying,
            f.running,
            f.finished_in_window,
            f.done,
            f.skipped,
            s = esc(source),
            flow = esc(flow),
        );
    }
    o.push_str("</tbody></table></div>");
    match status.oldest_due_age {
        Some(age) => {
            let _ = write!(o, "<p>Oldest due event waiting: <b data-k=lag>{}</b></p>", human(age));
        }
        None => o.push_str("<p>Nothing due is waiting.</p>"),
    }

    // ---- dead letters
    let _ = write!(o, "<h2>Dead letters (<span id=dead-count>{}</span>)</h2>", status.dead);
    if dead.is_empty() {
        o.push_str("<p class=ok>None.</p>");
    }
    for d in &dead {
        let r = &d.row;
        let _ = write!(
            o,
            "<article class=dead data-id=\"{id}\"><header><b>#{id}</b><span>{source}</span>\
             <code>{key}</code><span>attempts: <b data-k=attempts>{attempts}</b></span>\
             <span class=meta>received {received} ago{finished}</span>\
             <form class=inline method=post action=\"/replay/{id}\"><input type=hidden name=csrf value=\"{csrf}\">\
             <button type=submit name=replay value=\"{id}\">Replay</button></form></header>\
             <p class=\"err bad\" data-k=error>{error}</p>",
            id = r.id,
            source = esc(&r.source),
            key = esc(&r.dedup_key),
            attempts = r.attempts,
            received = ago(r.received_at),
            finished = r.finished_at.map(|t| format!(", dead for {}", ago(t))).unwrap_or_default(),
            csrf = esc(&config.csrf_token),
            error = esc(r.last_error.as_deref().unwrap_or("-")),
        );
        let headers = redact::headers(&d.headers);
        if !headers.is_empty() {
            o.push_str("<details><summary>headers</summary><pre data-k=headers>");
            for (k, v) in &headers {
                let _ = writeln!(o, "{}: {}", esc(k), esc(v));
            }
            o.push_str("</pre></details>");
        }
        let _ = write!(
            o,
            "<details><summary>payload ({} bytes)</summary><pre data-k=payload>{}</pre></details></article>",
            d.payload.len(),
            esc(&redact::payload(&d.payload))
        );
    }
    if status.dead > i64::from(DEAD_SHOWN) {
        let _ = write!(o, "<p class=meta>The oldest {DEAD_SHOWN} are shown.</p>");
    }

    // ---- skipped
    let total: i64 = status.skipped.values().sum();
    let _ = write!(o, "<h2>Skipped on purpose (<span id=skipped-count>{total}</span>)</h2>");
    if status.skipped.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        o.push_str(
            "<div class=scroll><table id=skipped><thead><tr><th class=n>events</th><th>source</th><th>reason</th>\
             </tr></thead><tbody>",
        );
        let mut reasons: Vec<_> = status.skipped.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for ((source, reason), n) in reasons.iter().take(50) {
            let _ = write!(o, "<tr><td class=n>{n}</td><td>{}</td><td>{}</td></tr>", esc(source), esc(reason));
        }
        o.push_str("</tbody></table></div>");
    }

    // ---- budgets
    o.push_str("<h2>Vendor budgets</h2>");
    if budgets.is_empty() {
        o.push_str("<p>No request has drawn from a shared budget yet.</p>");
    } else {
        o.push_str(
            "<div class=scroll><table id=budgets><thead><tr><th>budget key</th><th>next slot</th><th>hold (429 / ban)</th>\
             </tr></thead><tbody>",
        );
        for b in &budgets {
            let next = if b.next_at > now {
                format!("in {}", human((b.next_at - now).to_std().unwrap_or_default()))
            } else {
                "free".to_owned()
            };
            let hold = b.paused_until.map_or_else(
                || "<td data-k=hold>—</td>".to_owned(),
                |t| {
                    format!(
                        "<td class=bad data-k=hold>held for {} more</td>",
                        human((t - now).to_std().unwrap_or_default())
                    )
                },
            );
            let _ = write!(o, "<tr data-key=\"{k}\"><td>{k}</td><td>{next}</td>{hold}</tr>", k = esc(&b.key));
        }
        o.push_str("</tbody></table></div>");
    }

    // ---- components and webhooks
    o.push_str("<h2>Components and webhooks</h2>");
    if health.is_empty() {
        o.push_str("<p>No component has reported.</p>");
    } else {
        o.push_str(
            "<div class=scroll><table id=components><thead><tr><th>component</th><th>instance</th><th>state</th>\
             <th>since</th><th>updated</th><th class=n>attempts</th><th>last error</th></tr></thead><tbody>",
        );
        for c in &health {
            let class = match c.state {
                sync_core::HealthState::Ready => "ok",
                sync_core::HealthState::Failing => "bad",
                _ => "warn",
            };
            let _ = write!(
                o,
                "<tr data-component=\"{comp}\"><td>{comp}</td><td>{inst}</td><td class={class} data-k=state>{state}</td>\
                 <td>{since} ago</td><td>{upd} ago</td><td class=n>{att}</td><td class=err>{err}</td></tr>",
                comp = esc(&c.component),
                inst = esc(&c.instance),
                state = c.state.as_str(),
                since = ago(c.since),
                upd = ago(c.updated_at),
                att = c.attempts,
                err = esc(c.last_error.as_deref().unwrap_or("")),
            );
        }
        o.push_str("</tbody></table></div>");
    }
    if let Some(raw) = airtable_hook {
        // only the id and the expiry: the stored record also holds the MAC secret
        #[derive(serde::Deserialize)]
        struct Hook {
            id: String,
            #[serde(default)]
            expiration_time: Option<String>,
        }
        if let Ok(h) = serde_json::from_str::<Hook>(&raw) {
            let expiry = h
                .expiration_time
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let text = match expiry {
                Some(t) if t > now => {
                    let left = (t - now).to_std().unwrap_or_default();
                    let class = if left < Duration::from_secs(2 * 86_400) { "warn" } else { "ok" };
                    format!(
                        "<span class={class}>expires in {}</span> ({})",
                        human(left),
                        t.format("%Y-%m-%d %H:%M UTC")
                    )
                }
                Some(t) => {
                    format!("<span class=bad>expired {} ago</span>", human((now - t).to_std().unwrap_or_default()))
                }
                None => "no expiry recorded".to_owned(),
            };
            let _ = write!(o, "<p id=airtable-webhook>Airtable webhook <code>{}</code>: {text}</p>", esc(&h.id));
        }
    }

    // ---- purge
    let _ = write!(
        o,
        "<h2>Maintenance</h2><form method=post action=\"/purge\"><input type=hidden name=csrf value=\"{}\">\
         <label>Purge done events finished more than <input name=days type=number min=1 value=\"{}\" \
         style=\"width:4rem\"> days ago</label> <button type=submit>Purge</button></form>\
         <p class=meta>Dead letters are kept until replayed. Keep the age longer than every vendor's retry period: a \
         purged event's dedup key is forgotten.</p></body></html>",
        esc(&config.csrf_token),
        config.retention_days.max(1),
    );
    Ok(o)
}
