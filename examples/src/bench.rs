//! Helpers shared by the bench binaries (`scaleout`, `throughput`): ports, readiness of spawned `serve` processes,
//! and request rates measured on the fakes' arrival times.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api_core::fake::LoggedRequest;

/// A free TCP port on 127.0.0.1.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A `serve` process of a bench: the child (killed on drop) and the port it listens on.
#[derive(Debug)]
pub struct Serve {
    /// The process.
    pub process: tokio::process::Child,
    /// Its webhook port on 127.0.0.1.
    pub port: u16,
}

/// Starts `bin serve --config <config> --database <database>` on a free port with `env` added, logging warnings to
/// `log` (its stdout dropped).
///
/// # Errors
/// No free port, the log file cannot be created, or the binary cannot start.
pub fn spawn_serve(
    bin: &Path,
    config: &Path,
    database: &str,
    env: &[(&str, String)],
    log: &Path,
) -> anyhow::Result<Serve> {
    let port = free_port()?;
    let log = std::fs::File::create(log)?;
    let process = tokio::process::Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--database")
        .arg(database)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Serve { process, port })
}

/// Arrival times of the logged requests `keep` selects.
pub fn arrivals(log: &[LoggedRequest], keep: impl Fn(&LoggedRequest) -> bool) -> Vec<Instant> {
    log.iter().filter(|r| keep(r)).map(|r| r.at).collect()
}

/// Request rates over a run, measured on arrival times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests counted.
    pub requests: usize,
    /// Requests per second from the first to the last.
    pub whole: f64,
    /// Requests per second without the first and last tenth (ramp-up and drain).
    pub steady: f64,
    /// The most requests in any sliding second (what a vendor's window limit sees).
    pub max_in_second: usize,
}

/// The rates of `at` (any order).
#[must_use]
#[allow(clippy::cast_precision_loss)] // request counts of a bench run are far below 2^52
pub fn rate(mut at: Vec<Instant>) -> Rate {
    at.sort();
    let n = at.len();
    if n < 2 {
        return Rate { requests: n, whole: 0.0, steady: 0.0, max_in_second: n };
    }
    let per_sec = |a: Instant, b: Instant, k: usize| {
        let secs = b.duration_since(a).as_secs_f64();
        if secs > 0.0 { k as f64 / secs } else { 0.0 }
    };
    let whole = per_sec(at[0], at[n - 1], n - 1);
    let (lo, hi) = (n / 10, n - n / 10 - 1);
    let steady = if hi > lo { per_sec(at[lo], at[hi], hi - lo) } else { whole };
    let (mut max_in_second, mut start) = (0, 0);
    for end in 0..n {
        while at[end].duration_since(at[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        max_in_second = max_in_second.max(end - start + 1);
    }
    Rate { requests: n, whole, steady, max_in_second }
}

/// Waits (up to 120 s) until the `serve` process `pid` listening on `port` reports its validation ready on
/// `/readyz`.
///
/// # Errors
/// When it is not ready in time.
pub async fn wait_ready(port: u16, pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let suffix = format!(":{pid}");
    loop {
        if let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && let Ok(body) = resp.json::<serde_json::Value>().await
            && body["components"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["component"] == "validation"
                        && c["state"] == "ready"
                        && c["instance"].as_str().is_some_and(|i| i.ends_with(&suffix))
                })
            })
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("serve on port {port} not ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_in_second_is_a_sliding_window_on_arrivals() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 3 in [0, 999 ms], the 4th at 1000 ms starts a new window with the 2nd and 3rd still inside
        let r = rate(vec![ms(0), ms(400), ms(900), ms(1000), ms(1300)]);
        assert_eq!(r.max_in_second, 4);
        assert_eq!(r.requests, 5);
        assert!((r.whole - 4.0 / 1.3).abs() < 1e-9);
    }
}
