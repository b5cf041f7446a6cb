//! Watches: a component's own view, sampled through the run on the experiment's clock.
//! haproxy is read through its stats socket (`show stat`): each server's status as the
//! balancer sees it, and the sessions it has served.

pub use crate::record::watch::WatchSample;
use crate::record::Clock;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Parse haproxy's `show stat` CSV.
pub fn parse_haproxy_stat(watch: &str, t_ms: f64, csv: &str) -> Vec<WatchSample> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st), Some(stot), Some(scur)) = (
        col("pxname"),
        col("svname"),
        col("status"),
        col("stot"),
        col("scur"),
    ) else {
        return Vec::new();
    };
    lines
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(WatchSample {
                watch: watch.to_string(),
                t_ms,
                proxy: f.get(px)?.to_string(),
                server: f.get(sv)?.to_string(),
                status: f
                    .get(st)?
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
                total: f.get(stot)?.parse().unwrap_or(0),
                current: f.get(scur)?.parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Where a haproxy's stats socket is.
#[derive(Clone, Debug, PartialEq)]
pub enum StatsSource {
    /// A unix socket on this machine (`stats socket <path>`).
    Unix(PathBuf),
    /// On the network (`stats socket ipv4@<ip>:<port>`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for StatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsSource::Unix(p) => write!(f, "{}", p.display()),
            StatsSource::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// One `show stat` (haproxy answers and closes: non-interactive mode).
fn haproxy_show_stat(src: &StatsSource) -> std::io::Result<String> {
    const T: Duration = Duration::from_millis(500);
    fn ask(mut s: impl Read + Write) -> std::io::Result<String> {
        s.write_all(b"show stat\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }
    match src {
        StatsSource::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(T))?;
            s.set_write_timeout(Some(T))?;
            ask(s)
        }
        StatsSource::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, T)?;
            s.set_read_timeout(Some(T))?;
            s.set_write_timeout(Some(T))?;
            ask(s)
        }
    }
}

pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Vec<WatchSample>, Option<String>)>>,
}

impl Drop for WatchHandle {
    /// A watch dropped without `stop` (its run forgotten) stops sampling all the same.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl WatchHandle {
    /// Stop sampling; the samples, and the last error if sampling ever failed.
    pub fn stop(mut self) -> (Vec<WatchSample>, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Sample a haproxy stats socket every `interval`.
pub fn spawn_haproxy(
    name: String,
    socket: StatsSource,
    interval: Duration,
    clock: Clock,
) -> WatchHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || {
            let mut out = Vec::new();
            let mut err = None;
            while !flag.load(Ordering::SeqCst) {
                let t = clock.now_ms();
                match haproxy_show_stat(&socket) {
                    Ok(csv) => out.extend(parse_haproxy_stat(&name, t, &csv)),
                    Err(e) => err = Some(format!("{socket}: {e}")),
                }
                std::thread::sleep(interval);
            }
            (out, err)
        })
        .ok();
    WatchHandle { stop, thread }
}

/// Start sampling a watch whose source is resolved ([`crate::plan::resolve_watch`]) every
/// 250 ms; `None` when it has no readable source.
pub fn spawn(w: &crate::model::spec::WatchSpec, clock: Clock) -> Option<WatchHandle> {
    let h = w.haproxy.as_ref()?;
    let src = match (&h.socket, &h.address) {
        (Some(p), _) => StatsSource::Unix(p.into()),
        (None, Some(a)) => StatsSource::Tcp(a.parse().ok()?),
        _ => return None,
    };
    Some(spawn_haproxy(
        w.name.clone(),
        src,
        Duration::from_millis(250),
        clock,
    ))
}

/// Stop the watches: their samples, and the timeline's events (a watch without samples,
/// each server a balancer marked up or down). Both doors end their watches this way.
pub fn stop_all(
    watches: Vec<(String, WatchHandle)>,
    now_ms: f64,
) -> (Vec<WatchSample>, Vec<crate::record::Event>) {
    let mut all = Vec::new();
    let mut events = Vec::new();
    for (name, h) in watches {
        let (samples, err) = h.stop();
        if samples.is_empty() {
            events.push(crate::record::Event {
                t_ms: now_ms,
                kind: "watch".into(),
                fault: None,
                message: format!(
                    "{name}: no samples{}",
                    err.map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            });
        }
        let mut backends: Vec<&str> = samples
            .iter()
            .filter(|s| s.server != "BACKEND" && s.server != "FRONTEND")
            .map(|s| s.proxy.as_str())
            .collect();
        backends.sort();
        backends.dedup();
        for b in backends {
            for f in crate::verdict::load::server_flips(&samples, &name, b, &[]) {
                events.push(crate::record::Event {
                    t_ms: f.t_ms,
                    kind: "watch".into(),
                    fault: None,
                    message: format!("{name}: {b}/{} marked {}", f.who, f.to),
                });
            }
        }
        all.extend(samples);
    }
    (all, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_stat() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,status\n\
                   web,FRONTEND,,,2,5,100,340,0,0,OPEN\n\
                   app,web1,0,0,1,3,,120,0,0,UP\n\
                   app,web2,0,0,0,3,,100,0,0,DOWN 1/2\n\
                   app,BACKEND,0,0,1,5,,220,0,0,UP\n";
        let s = parse_haproxy_stat("lb", 5.0, csv);
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].server, "web1");
        assert_eq!(s[1].total, 120);
        assert_eq!(s[2].status, "DOWN");
        assert_eq!(s[0].status, "OPEN");
        assert!(parse_haproxy_stat("lb", 0.0, "garbage").is_empty());
    }
}
