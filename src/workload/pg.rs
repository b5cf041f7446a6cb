//! PostgreSQL through tokio-postgres (maintained, async) on a current-thread runtime per
//! worker thread, so sockets are made in the thread's network namespace.

use super::net::NetError;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, Config, NoTls};

#[derive(Clone, Debug)]
pub struct PgParams {
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub connect_timeout: Duration,
    pub user_timeout: Duration,
}

/// The single-threaded runtime the PostgreSQL client runs on.
pub fn runtime() -> Result<Runtime, NetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetError::before(format!("tokio runtime: {e}")))
}

fn config(addr: SocketAddr, p: &PgParams) -> Config {
    let mut c = Config::new();
    c.hostaddr(addr.ip())
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(&p.user)
        .dbname(&p.database)
        .application_name("murphy")
        .connect_timeout(p.connect_timeout)
        .tcp_user_timeout(p.user_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3);
    if let Some(pw) = &p.password {
        c.password(pw.as_bytes());
    }
    c
}

/// Connect; the connection task runs on `rt` while the thread is inside `block_on`.
pub fn connect(rt: &Runtime, addr: SocketAddr, p: &PgParams) -> Result<Client, NetError> {
    let cfg = config(addr, p);
    let limit = p.connect_timeout + Duration::from_millis(200);
    rt.block_on(async {
        match tokio::time::timeout(limit, cfg.connect(NoTls)).await {
            Ok(Ok((client, conn))) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(client)
            }
            Ok(Err(e)) => Err(NetError::before(format!("connect {addr}: {e}"))),
            Err(_) => Err(NetError::before(format!("connect {addr}: timed out"))),
        }
    })
}

/// Classify a statement's error: a server error means it was not applied; anything else
/// after sending (closed connection, timeout) leaves the outcome unknown.
fn classify(addr: SocketAddr, e: &tokio_postgres::Error) -> NetError {
    match e.as_db_error() {
        Some(db) => NetError::before(format!("{addr}: {} ({})", db.message(), db.code().code())),
        None => NetError::after(format!("{addr}: {e}")),
    }
}

/// Run one statement with parameters by `deadline`.
pub fn execute(
    rt: &Runtime,
    client: &Client,
    addr: SocketAddr,
    sql: &str,
    value: &str,
    deadline: Instant,
) -> Result<u64, NetError> {
    let left = super::net::left(deadline);
    rt.block_on(async {
        match tokio::time::timeout(left, client.execute(sql, &[&value])).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(classify(addr, &e)),
            Err(_) => Err(NetError::after(format!("no answer from {addr} in time"))),
        }
    })
}

/// `pg_is_in_recovery()` is false on the primary.
pub fn is_primary(rt: &Runtime, addr: SocketAddr, p: &PgParams) -> Result<bool, NetError> {
    let client = connect(rt, addr, p)?;
    let limit = p.connect_timeout.max(Duration::from_secs(1));
    rt.block_on(async {
        match tokio::time::timeout(limit, client.query_one("SELECT pg_is_in_recovery()", &[])).await
        {
            Ok(Ok(row)) => row
                .try_get::<_, bool>(0)
                .map(|r| !r)
                .map_err(|e| NetError::after(e.to_string())),
            Ok(Err(e)) => Err(NetError::after(format!("{addr}: {e}"))),
            Err(_) => Err(NetError::after(format!("{addr}: no answer in time"))),
        }
    })
}

/// Every value in `table`.
pub fn read_all(
    rt: &Runtime,
    addr: SocketAddr,
    p: &PgParams,
    table: &str,
    timeout: Duration,
) -> Result<Vec<String>, NetError> {
    let client = connect(rt, addr, p)?;
    rt.block_on(async {
        match tokio::time::timeout(
            timeout,
            client.query(&format!("SELECT v FROM {table}"), &[]),
        )
        .await
        {
            Ok(Ok(rows)) => rows
                .iter()
                .map(|r| {
                    r.try_get::<_, String>(0)
                        .map_err(|e| NetError::after(e.to_string()))
                })
                .collect(),
            Ok(Err(e)) => Err(NetError::after(format!("{addr}: {e}"))),
            Err(_) => Err(NetError::after(format!("{addr}: no answer in time"))),
        }
    })
}
