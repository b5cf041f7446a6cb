//! Workload clients: open-loop operations at a fixed rate, recorded as a history on the
//! run's clock, then a final read of what the system holds.
//!
//! A scheduler thread starts operation k at `start + k / rate` whatever happened to earlier
//! ones (no coordinated omission): it hands each to a pool of `concurrency` worker threads,
//! and records an operation that finds every worker busy as `fail` rather than skipping
//! it. Each worker keeps its own connection. Workers share one "current endpoint" and move
//! to the next when an operation fails or times out, like a client library with a list of
//! nodes. Every thread enters the lab host's network namespace first.

pub mod etcd;
pub mod net;
pub mod pg;
pub mod redis;

use crate::model::spec::WorkloadSpec;
use crate::netns::Netns;
use crate::record::history::{FinalRead, History, Op, OpResult};
use crate::record::Clock;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default names, shared with the final read.
pub fn redis_key(w: &WorkloadSpec) -> String {
    w.redis
        .as_ref()
        .and_then(|r| r.key.clone())
        .unwrap_or_else(|| format!("murphy:{}", w.name))
}
pub fn etcd_prefix(w: &WorkloadSpec) -> String {
    w.etcd
        .as_ref()
        .and_then(|e| e.prefix.clone())
        .unwrap_or_else(|| format!("/murphy/{}/", w.name))
}
pub fn pg_table(w: &WorkloadSpec) -> String {
    w.postgres
        .as_ref()
        .and_then(|p| p.table.clone())
        .unwrap_or_else(|| "murphy_writes".into())
}
fn pg_params(w: &WorkloadSpec) -> pg::PgParams {
    let p = w.postgres.clone().unwrap_or_default();
    pg::PgParams {
        user: p.user.unwrap_or_else(|| "postgres".into()),
        password: p.password,
        database: p.database.unwrap_or_else(|| "postgres".into()),
        connect_timeout: w.connect_timeout(),
        user_timeout: w.timeout(),
    }
}

fn endpoints(w: &WorkloadSpec) -> Vec<SocketAddr> {
    w.endpoints.iter().filter_map(|e| e.parse().ok()).collect()
}

/// One worker's client and its connection.
enum Client {
    Http {
        path: String,
    },
    Redis {
        key: String,
        push: bool,
        conn: Option<Box<redis::Conn>>,
    },
    Etcd {
        prefix: String,
    },
    Pg(Box<PgClient>),
}

struct PgClient {
    rt: tokio::runtime::Runtime,
    params: pg::PgParams,
    sql: String,
    conn: Option<(SocketAddr, tokio_postgres::Client)>,
}

type OpOutcome = Result<(), (OpResult, String)>;

thread_local! {
    /// The HTTP status of the last answer this worker got (set by the HTTP client).
    static LAST_STATUS: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

fn net_err(e: net::NetError) -> (OpResult, String) {
    if e.sent {
        (OpResult::Info, e.message)
    } else {
        (OpResult::Fail, e.message)
    }
}

impl Client {
    fn new(w: &WorkloadSpec) -> Result<Client, String> {
        Ok(if let Some(h) = &w.http {
            Client::Http {
                path: h.path.clone().unwrap_or_else(|| "/".into()),
            }
        } else if w.redis.is_some() {
            Client::Redis {
                key: redis_key(w),
                push: w.redis.as_ref().is_some_and(|r| r.push),
                conn: None,
            }
        } else if w.etcd.is_some() {
            Client::Etcd {
                prefix: etcd_prefix(w),
            }
        } else {
            Client::Pg(Box::new(PgClient {
                rt: pg::runtime().map_err(|e| e.message)?,
                params: pg_params(w),
                sql: format!("INSERT INTO {} (v) VALUES ($1)", pg_table(w)),
                conn: None,
            }))
        })
    }

    fn writes(&self) -> bool {
        !matches!(self, Client::Http { .. })
    }

    fn op(
        &mut self,
        addr: SocketAddr,
        value: &str,
        connect: Duration,
        timeout: Duration,
        deadline: Instant,
    ) -> OpOutcome {
        match self {
            Client::Http { path } => {
                let r = net::http(addr, "GET", path, None, connect, deadline);
                LAST_STATUS.with(|c| c.set(r.as_ref().ok().map(|(s, _)| *s)));
                match r {
                    Ok((s, _)) if (200..400).contains(&s) => Ok(()),
                    Ok((s, _)) => Err((OpResult::Fail, format!("{addr}: HTTP {s}"))),
                    Err(e) => Err(net_err(e)),
                }
            }
            Client::Redis { key, push, conn } => {
                if conn.as_ref().is_none_or(|c| c.addr != addr) {
                    *conn = Some(Box::new(
                        redis::Conn::open(addr, connect.min(net::left(deadline)), timeout)
                            .map_err(net_err)?,
                    ));
                }
                let Some(c) = conn.as_mut() else {
                    return Err((OpResult::Fail, "no connection".into()));
                };
                let cmd: &[u8] = if *push { b"LPUSH" } else { b"SADD" };
                match c.call(&[cmd, key.as_bytes(), value.as_bytes()], deadline) {
                    Ok(redis::Reply::Int(_)) => Ok(()),
                    Ok(redis::Reply::Error(e)) => {
                        *conn = None;
                        Err((OpResult::Fail, format!("{addr}: {e}")))
                    }
                    Ok(other) => {
                        *conn = None;
                        Err((
                            OpResult::Info,
                            format!("{addr}: unexpected reply {other:?}"),
                        ))
                    }
                    Err(e) => {
                        *conn = None;
                        Err(net_err(e))
                    }
                }
            }
            Client::Etcd { prefix } => {
                etcd::put(addr, &format!("{prefix}{value}"), connect, deadline).map_err(net_err)
            }
            Client::Pg(p) => {
                let PgClient {
                    rt,
                    params,
                    sql,
                    conn,
                } = &mut **p;
                if conn.as_ref().is_none_or(|c| c.0 != addr) {
                    *conn = None;
                    let mut p = params.clone();
                    p.connect_timeout = p.connect_timeout.min(net::left(deadline));
                    *conn = Some((addr, pg::connect(rt, addr, &p).map_err(net_err)?));
                }
                let Some((_, client)) = conn.as_ref() else {
                    return Err((OpResult::Fail, "no connection".into()));
                };
                match pg::execute(rt, client, addr, sql, value, deadline) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        *conn = None;
                        Err(net_err(e))
                    }
                }
            }
        }
    }
}

struct Job {
    id: u64,
    due: Instant,
    attempt: u32,
}

/// Counters the runner reads while the workload runs (for progress and the timeline).
#[derive(Default)]
pub struct Live {
    pub ok: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub unknown: std::sync::atomic::AtomicU64,
    /// Set-up is done (or failed) and operations are being scheduled.
    pub started: AtomicBool,
    /// The most recently completed operation.
    last: Mutex<Option<LastOp>>,
    /// Its latency in microseconds (0: none yet).
    last_us: std::sync::atomic::AtomicU64,
}

/// How the most recently completed operation of a workload went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastOp {
    Ok,
    /// Failed or unknown, with the operation's error.
    Failed(String),
}

impl Live {
    pub fn last(&self) -> Option<LastOp> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
    /// The latency of the most recently completed operation.
    pub fn last_latency_ms(&self) -> Option<f64> {
        match self.last_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(us as f64 / 1000.0),
        }
    }
}

struct Shared {
    /// Retries waiting for their time, and (herd) failed requests waiting for a success.
    retries: Mutex<Vec<Job>>,
    herd: Mutex<Vec<Job>>,
    release: AtomicBool,
    next_id: std::sync::atomic::AtomicU64,
    live: Arc<Live>,
    spec: WorkloadSpec,
    eps: Vec<SocketAddr>,
    cur: AtomicUsize,
    busy: AtomicUsize,
    ops: Mutex<Vec<Op>>,
    clock: Clock,
}

impl Shared {
    fn record(&self, op: Op) {
        let counter = match op.result {
            OpResult::Ok => &self.live.ok,
            OpResult::Fail => &self.live.failed,
            OpResult::Info => &self.live.unknown,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let us = ((op.complete_ms - op.invoke_ms).max(0.001) * 1000.0) as u64;
        self.live.last_us.store(us.max(1), Ordering::Relaxed);
        if let Ok(mut l) = self.live.last.lock() {
            *l = Some(if op.result == OpResult::Ok {
                LastOp::Ok
            } else {
                LastOp::Failed(op.error.clone())
            });
        }
        if let Ok(mut v) = self.ops.lock() {
            v.push(op);
        }
    }
    fn value(&self, id: u64, writes: bool) -> String {
        if writes {
            format!("{}-{id:06}", self.spec.name)
        } else {
            String::new()
        }
    }
}

fn worker(sh: Arc<Shared>, rx: Arc<Mutex<Receiver<Job>>>, netns: Option<Netns>) {
    if let Err(e) = crate::probe::enter(netns.as_ref()) {
        tracing::error!(workload = %sh.spec.name, "worker cannot enter the namespace: {e}");
        return;
    }
    let mut client = match Client::new(&sh.spec) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(workload = %sh.spec.name, "worker: {e}");
            return;
        }
    };
    let (connect, timeout) = (sh.spec.connect_timeout(), sh.spec.timeout());
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv_timeout(Duration::from_millis(100)),
            Err(_) => return,
        };
        let job = match job {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let n = sh.eps.len().max(1);
        let i = if sh.spec.spread {
            job.id as usize
        } else {
            sh.cur.load(Ordering::SeqCst)
        };
        let addr = sh.eps[i % n];
        let value = sh.value(job.id, client.writes());
        let deadline = job.due + timeout;
        LAST_STATUS.with(|c| c.set(None));
        let r = if Instant::now() >= deadline {
            Err((OpResult::Fail, "not started in time: client backlog".into()))
        } else {
            client.op(addr, &value, connect, timeout, deadline)
        };
        let complete_ms = sh.clock.now_ms();
        let (result, error) = match r {
            Ok(()) => (OpResult::Ok, String::new()),
            Err((res, e)) => {
                // Move on to the next node (once, however many workers saw the failure).
                let _ = sh
                    .cur
                    .compare_exchange(i, i + 1, Ordering::SeqCst, Ordering::SeqCst);
                (res, e)
            }
        };
        if let Some(rs) = &sh.spec.retry {
            if result == OpResult::Ok {
                sh.release.store(true, Ordering::SeqCst);
            } else if job.attempt < rs.attempts {
                let again = Job {
                    id: sh.next_id.fetch_add(1, Ordering::SeqCst),
                    due: Instant::now() + rs.backoff.map_or(Duration::ZERO, |b| b.as_std()),
                    attempt: job.attempt + 1,
                };
                let list = if rs.herd { &sh.herd } else { &sh.retries };
                if let Ok(mut l) = list.lock() {
                    l.push(again);
                }
            }
        }
        sh.record(Op {
            id: job.id,
            value,
            invoke_ms: sh.clock.ms_at(job.due),
            complete_ms,
            result,
            endpoint: addr.to_string(),
            error,
            status: LAST_STATUS.with(|c| c.get()),
            attempt: job.attempt,
        });
        sh.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Prepare the system for the workload (PostgreSQL: create the table on the primary).
fn setup(spec: &WorkloadSpec) -> Result<(), String> {
    if spec.postgres.is_none() {
        return Ok(());
    }
    let rt = pg::runtime().map_err(|e| e.message)?;
    let p = pg_params(spec);
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} (v text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
        pg_table(spec)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        for addr in endpoints(spec) {
            if let Ok(c) = pg::connect(&rt, addr, &p) {
                let r = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), c.batch_execute(&sql)).await
                });
                match r {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => last = format!("{addr}: {e}"),
                    Err(_) => last = format!("{addr}: timed out"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!("could not create the table: {last}"))
}

/// A running workload.
pub struct Handle {
    pub live: Arc<Live>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<History>>,
    name: String,
}

impl Handle {
    /// Stop starting operations, wait for those in flight, and return the history.
    pub fn stop(mut self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        let name = self.name.clone();
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_else(|| History {
                workload: name,
                ..Default::default()
            })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Start a workload. Set-up problems are recorded as failed operations, never hidden.
pub fn spawn(spec: WorkloadSpec, netns: Option<Netns>, clock: Clock) -> Handle {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = spec.name.clone();
    let live = Arc::new(Live::default());
    let l2 = live.clone();
    let thread = std::thread::Builder::new()
        .name(format!("workload-{}", spec.name))
        .spawn(move || schedule(spec, netns, clock, flag, l2))
        .ok();
    Handle {
        live,
        stop,
        thread,
        name,
    }
}

fn schedule(
    spec: WorkloadSpec,
    netns: Option<Netns>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
) -> History {
    let mut hist = History {
        workload: spec.name.clone(),
        client: spec.client_kind().into(),
        started_ms: clock.now_ms(),
        ..Default::default()
    };
    if let Err(e) = crate::probe::enter(netns.as_ref()) {
        hist.notes.push(format!("cannot enter the namespace: {e}"));
        hist.stopped_ms = clock.now_ms();
        return hist;
    }
    if let Err(e) = setup(&spec) {
        hist.notes.push(e);
    }
    live.started.store(true, Ordering::SeqCst);
    let sh = Arc::new(Shared {
        retries: Mutex::new(Vec::new()),
        herd: Mutex::new(Vec::new()),
        release: AtomicBool::new(false),
        next_id: std::sync::atomic::AtomicU64::new(0),
        live,
        eps: endpoints(&spec),
        spec: spec.clone(),
        cur: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        ops: Mutex::new(Vec::new()),
        clock,
    });
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<JoinHandle<()>> = (0..spec.concurrency())
        .filter_map(|i| {
            let (sh, rx, ns) = (sh.clone(), rx.clone(), netns.clone());
            std::thread::Builder::new()
                .name(format!("wl-{}-{i}", spec.name))
                .spawn(move || worker(sh, rx, ns))
                .ok()
        })
        .collect();
    let start = Instant::now();
    hist.started_ms = clock.ms_at(start);
    let writes = Client::new(&spec).map(|c| c.writes()).unwrap_or(true);
    let mut next_due = start;
    // Hand a job to a free worker, or record it failed when every worker is busy.
    let dispatch = |job: Job| -> bool {
        if sh.busy.load(Ordering::SeqCst) >= spec.concurrency() {
            sh.record(Op {
                id: job.id,
                value: sh.value(job.id, writes),
                invoke_ms: clock.ms_at(job.due),
                complete_ms: clock.ms_at(job.due),
                result: OpResult::Fail,
                endpoint: String::new(),
                error: format!("client saturated: all {} workers busy", spec.concurrency()),
                status: None,
                attempt: job.attempt,
            });
            true
        } else {
            sh.busy.fetch_add(1, Ordering::SeqCst);
            tx.send(job).is_ok()
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        // Retries that are due, and (herd) everything held once a request succeeded.
        let mut ready: Vec<Job> = Vec::new();
        let mut next_retry = None;
        if let Ok(mut l) = sh.retries.lock() {
            let (due, wait): (Vec<Job>, Vec<Job>) = l.drain(..).partition(|j| j.due <= now);
            next_retry = wait.iter().map(|j| j.due).min();
            *l = wait;
            ready.extend(due);
        }
        if sh.release.swap(false, Ordering::SeqCst) {
            if let Ok(mut l) = sh.herd.lock() {
                ready.extend(l.drain(..).map(|j| Job { due: now, ..j }));
            }
        }
        let mut open = true;
        for j in ready {
            open &= dispatch(j);
        }
        if !open {
            break;
        }
        if next_due > now {
            let until = next_retry.map_or(next_due, |r| r.min(next_due));
            let cap = if spec.retry.is_some() { 2 } else { 50 };
            std::thread::sleep(
                until
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(cap)),
            );
            continue;
        }
        let id = sh.next_id.fetch_add(1, Ordering::SeqCst);
        if !dispatch(Job {
            id,
            due: next_due,
            attempt: 0,
        }) {
            break;
        }
        let rate = spec.rate_at(next_due - start).max(0.001);
        next_due += Duration::from_secs_f64(1.0 / rate);
    }
    hist.stopped_ms = clock.now_ms();
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
    let mut ops = sh.ops.lock().map(|v| v.clone()).unwrap_or_default();
    ops.sort_by_key(|o| o.id);
    hist.ops = ops;
    hist
}

/// Read back what the system holds, retrying until the deadline. `None` for workloads
/// without a final read (HTTP).
/// The spec to read delivered values with: the sink's endpoints and client.
fn sink_spec(spec: &WorkloadSpec) -> Option<WorkloadSpec> {
    let d = spec.delivered_to.as_ref()?;
    let mut s = spec.clone();
    s.endpoints = d.endpoints.clone();
    s.read_endpoints = Vec::new();
    s.redis = d.redis.clone();
    s.postgres = d.postgres.clone();
    s.etcd = d.etcd.clone();
    s.http = None;
    s.delivered_to = None;
    Some(s)
}

/// Stop each workload (waiting for the operations in flight), then, when `read`, read back
/// what the system holds, after every client has stopped writing. Both doors end their
/// workloads this way.
pub fn stop_and_read(
    workloads: Vec<(WorkloadSpec, Option<Netns>, Handle)>,
    clock: Clock,
    read: bool,
) -> Vec<History> {
    let stopped: Vec<_> = workloads
        .into_iter()
        .map(|(spec, netns, h)| (spec, netns, h.stop()))
        .collect();
    stopped
        .into_iter()
        .map(|(spec, netns, mut hist)| {
            if read {
                let acked: Vec<String> = hist
                    .ops
                    .iter()
                    .filter(|o| o.result == OpResult::Ok && o.is_write())
                    .map(|o| o.value.clone())
                    .collect();
                hist.final_read = final_read(&spec, netns.as_ref(), clock, &acked);
            }
            hist
        })
        .collect()
}

/// Read back what the system holds (or, with `deliveredTo`, what reached the sink, waiting
/// until every value in `want` is there or the deadline passes).
pub fn final_read(
    spec: &WorkloadSpec,
    netns: Option<&Netns>,
    clock: Clock,
    want: &[String],
) -> Option<FinalRead> {
    if spec.http.is_some() {
        return None;
    }
    let (spec, want) = match sink_spec(spec) {
        Some(s) => (s, want.to_vec()),
        None => (spec.clone(), Vec::new()),
    };
    let ns = netns.cloned();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = crate::probe::enter(ns.as_ref()) {
                return FinalRead {
                    ok: false,
                    error: Some(e),
                    t_ms: clock.now_ms(),
                    ..Default::default()
                };
            }
            read_until(&spec, clock, &want)
        })
        .join()
        .ok()
    })
}

fn read_until(spec: &WorkloadSpec, clock: Clock, want: &[String]) -> FinalRead {
    let deadline = Instant::now() + spec.final_read_deadline();
    let mut attempts = 0;
    let mut last = String::from("not tried");
    let rt = if spec.postgres.is_some() {
        match pg::runtime() {
            Ok(r) => Some(r),
            Err(e) => {
                return FinalRead {
                    ok: false,
                    error: Some(e.message),
                    ..Default::default()
                }
            }
        }
    } else {
        None
    };
    // The last read that succeeded while deliveries were still awaited: what the system
    // holds if the deadline passes before everything arrives (a sleep that overruns on a
    // loaded machine must not turn a good read into "no read").
    let mut last_read: Option<(String, Vec<String>)> = None;
    while Instant::now() < deadline {
        attempts += 1;
        match read_once(spec, rt.as_ref()) {
            Ok((endpoint, values)) => {
                // Waiting for deliveries: read again until everything wanted has arrived.
                let have: std::collections::HashSet<&str> =
                    values.iter().map(String::as_str).collect();
                let missing = want.iter().filter(|w| !have.contains(w.as_str())).count();
                if missing > 0 && Instant::now() + Duration::from_millis(500) < deadline {
                    last = format!("{missing} value(s) not delivered yet");
                    last_read = Some((endpoint, values));
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                return read_ok(clock, endpoint, values, attempts);
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if let Some((endpoint, values)) = last_read {
        return read_ok(clock, endpoint, values, attempts);
    }
    FinalRead {
        ok: false,
        t_ms: clock.now_ms(),
        attempts,
        error: Some(last),
        ..Default::default()
    }
}

/// A final read that succeeded: what `endpoint` holds now.
fn read_ok(clock: Clock, endpoint: String, values: Vec<String>, attempts: u32) -> FinalRead {
    FinalRead {
        ok: true,
        t_ms: clock.now_ms(),
        endpoint,
        values,
        attempts,
        error: None,
    }
}

/// One attempt: find the one primary and read from it.
fn read_once(
    spec: &WorkloadSpec,
    rt: Option<&tokio::runtime::Runtime>,
) -> Result<(String, Vec<String>), String> {
    let eps: Vec<SocketAddr> = if spec.read_endpoints.is_empty() {
        endpoints(spec)
    } else {
        spec.read_endpoints
            .iter()
            .filter_map(|e| e.parse().ok())
            .collect()
    };
    let t = Duration::from_secs(2);
    if spec.etcd.is_some() {
        let mut errs = Vec::new();
        for a in &eps {
            match etcd::list(
                *a,
                &etcd_prefix(spec),
                t,
                Instant::now() + Duration::from_secs(5),
            ) {
                Ok(v) => return Ok((a.to_string(), v)),
                Err(e) => errs.push(e.message),
            }
        }
        return Err(errs.join("; "));
    }
    // Redis and PostgreSQL: exactly one primary must answer.
    let mut primaries = Vec::new();
    let mut roles = Vec::new();
    for a in &eps {
        let r = if spec.redis.is_some() {
            redis::role(*a, t).map(|r| r == "master")
        } else if let Some(rt) = rt {
            pg::is_primary(rt, *a, &pg_params(spec))
        } else {
            Err(net::NetError::before("no runtime".into()))
        };
        match r {
            Ok(true) => {
                primaries.push(*a);
                roles.push(format!("{a}: primary"));
            }
            Ok(false) => roles.push(format!("{a}: replica")),
            Err(e) => roles.push(format!("{a}: {e}")),
        }
    }
    if primaries.len() != 1 {
        return Err(format!(
            "waiting for exactly one primary, found {} ({})",
            primaries.len(),
            roles.join(", ")
        ));
    }
    let a = primaries[0];
    if spec.redis.is_some() {
        let mut c = redis::Conn::open(a, t, t).map_err(|e| e.message)?;
        let key = redis_key(spec);
        let push = spec.redis.as_ref().is_some_and(|r| r.push);
        let args: Vec<&[u8]> = if push {
            vec![b"LRANGE", key.as_bytes(), b"0", b"-1"]
        } else {
            vec![b"SMEMBERS", key.as_bytes()]
        };
        match c
            .call(&args, Instant::now() + Duration::from_secs(10))
            .map_err(|e| e.message)?
        {
            redis::Reply::Array(Some(v)) => Ok((
                a.to_string(),
                v.iter().filter_map(redis::Reply::text).collect(),
            )),
            other => Err(format!("SMEMBERS on {a}: {other:?}")),
        }
    } else {
        let rt = rt.ok_or("no runtime")?;
        pg::read_all(
            rt,
            a,
            &pg_params(spec),
            &pg_table(spec),
            Duration::from_secs(10),
        )
        .map(|v| (a.to_string(), v))
        .map_err(|e| e.message)
    }
}
