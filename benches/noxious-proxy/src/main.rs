//! `noxious-proxy LISTEN UPSTREAM LATENCY_MS`: one noxious proxy, as its server runs it
//! (`ProxyRunner` on a multi-threaded Tokio runtime), with a latency toxic on the
//! upstream stream (client → server) when LATENCY_MS > 0. Prints `listening` once bound.

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop};
use noxious::socket::TcpListener;
use noxious::toxic::{StreamDirection, Toxic, ToxicKind};
use std::io::Write;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, latency] = &args[..] else {
        eprintln!("usage: noxious-proxy LISTEN UPSTREAM LATENCY_MS");
        std::process::exit(2);
    };
    let latency: u64 = latency.parse().expect("LATENCY_MS");
    let config = ProxyConfig {
        name: "bench".into(),
        listen: listen.clone(),
        upstream: upstream.clone(),
        enabled: true,
        rand_seed: None,
    };
    let mut toxics = Toxics::empty();
    if latency > 0 {
        toxics.upstream.push(Toxic {
            kind: ToxicKind::Latency { latency, jitter: 0 },
            name: "latency".into(),
            toxicity: 1.0,
            direction: StreamDirection::Upstream,
        });
    }
    let (listener, info) = ProxyRunner::initialize_proxy::<TcpListener>(config, toxics)
        .await
        .expect("bind");
    println!("listening");
    std::io::stdout().flush().expect("stdout");
    let (_events, receiver) = bmrng::channel(1);
    let (stop, _stopper) = Stop::new();
    let (_close, closer) = Close::new();
    ProxyRunner::run_proxy(listener, info, receiver, stop, closer)
        .await
        .expect("proxy");
}
