//! Netlink in process against the real kernel: each table a fault writes is applied over
//! Murphy's own nf_tables encoder, then `nft` (the reference) lists it — what `nft`
//! decompiles from the kernel's bytecode must read as the rule that was meant. Routes and
//! links are checked the same way against `ip`. Needs root; makes and removes its own
//! namespace.

mod common;

use common::require_root;
use murphy::netlink::nft::Nft;
use murphy::netlink::route::{Route, RouteSpec};
use murphy::netns::Netns;
use serde_json::json;
use std::process::Command;

struct Space(String);

impl Space {
    fn new(name: &str) -> Space {
        require_root();
        if std::path::Path::new("/run/netns").join(name).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        sh(&["ip", "netns", "add", name]);
        // No dummy module on this kernel: a veth pair with both ends inside.
        sh(&[
            "ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        sh(&["ip", "-n", name, "link", "set", "v1", "up"]);
        sh(&["ip", "-n", name, "link", "set", "v0", "up"]);
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", name, "addr", "add", "10.55.0.1/24", "dev", "v0"]);
        Space(name.to_string())
    }
    fn netns(&self) -> Netns {
        Netns::Named {
            name: self.0.clone(),
        }
    }
    fn run(&self, argv: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.0];
        a.extend_from_slice(argv);
        sh(&a)
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft list table`, whitespace squeezed, one line per statement, counters' figures left
/// out (the namespace's own traffic may count).
fn listing(s: &Space, family: &str, table: &str) -> Vec<String> {
    s.run(&["nft", "list", "table", family, table])
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let mut out = Vec::new();
            let mut i = 0;
            while i < words.len() {
                if words[i] == "packets" || words[i] == "bytes" {
                    i += 2;
                    continue;
                }
                out.push(words[i]);
                i += 1;
            }
            out.join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn nftables_written_in_process_read_back_as_meant_by_nft_itself() {
    let s = Space::new("mxnl1");
    let ns = s.netns();
    let mut nft = Nft::open(&ns).expect("socket");
    // A partition as network-partition writes it (both directions, an address and a prefix),
    // a BGP drop, an all-but-loopback drop, loss by numgen, a dup and a DNS redirect.
    let doc = json!({"nftables": [
        {"add": {"table": {"family": "inet", "name": "murphy_t1"}}},
        {"add": {"chain": {"family": "inet", "table": "murphy_t1", "name": "input", "type": "filter", "hook": "input", "prio": -200, "policy": "accept"}}},
        {"add": {"rule": {"family": "inet", "table": "murphy_t1", "chain": "input", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": ["10.9.0.7", {"prefix": {"addr": "10.8.0.0", "len": 16}}]}}},
            {"counter": null}, {"drop": null}]}}},
        {"add": {"chain": {"family": "inet", "table": "murphy_t1", "name": "output", "type": "filter", "hook": "output", "prio": -200, "policy": "accept"}}},
        {"add": {"rule": {"family": "inet", "table": "murphy_t1", "chain": "output", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"set": ["10.9.0.7"]}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}},
            {"counter": null}, {"drop": null}]}}},
        {"add": {"rule": {"family": "inet", "table": "murphy_t1", "chain": "output", "expr": [
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "lo"}},
            {"counter": null}, {"accept": null}]}}},
    ]});
    nft.apply(&doc).expect("apply partition");
    let l = listing(&s, "inet", "murphy_t1");
    for want in [
        "chain input {",
        "type filter hook input priority -200; policy accept;",
        "ip saddr 10.9.0.7 counter drop",
        "ip saddr 10.8.0.0/16 counter drop",
        "type filter hook output priority -200; policy accept;",
        "ip daddr 10.9.0.7 tcp dport 179 counter drop",
        "oifname != \"lo\" counter accept",
    ] {
        assert!(
            l.iter().any(|x| x == want),
            "{want:?} not in\n{}",
            l.join("\n")
        );
    }
    let rules = nft.rules("inet", "murphy_t1").expect("rules");
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert!(rules
        .iter()
        .all(|r| r.exprs.contains(&"counter".to_string())));

    let doc = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": "murphy_t2"}}},
        {"add": {"chain": {"family": "ip", "table": "murphy_t2", "name": "output", "type": "filter", "hook": "output", "prio": -200, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "murphy_t2", "chain": "output", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": 5353}},
            {"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 1_000_000}}, "right": 250_000}},
            {"counter": null}, {"drop": null}]}}},
        {"add": {"rule": {"family": "ip", "table": "murphy_t2", "chain": "output", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "v0"}},
            {"counter": null},
            {"dup": {"addr": {"payload": {"protocol": "ip", "field": "daddr"}}, "dev": "v0"}}]}}},
        {"add": {"table": {"family": "ip", "name": "murphy_t3"}}},
        {"add": {"chain": {"family": "ip", "table": "murphy_t3", "name": "out", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "murphy_t3", "chain": "out", "expr": [
            {"match": {"op": "!=", "left": {"meta": {"key": "mark"}}, "right": 0x4d55}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
            {"counter": null}, {"redirect": {"port": 20053}}]}}},
    ]});
    nft.apply(&doc).expect("apply loss, dup and redirect");
    let l = listing(&s, "ip", "murphy_t2");
    for want in [
        // nft folds `meta l4proto udp` + `th dport` into the protocol match it means.
        "udp dport 5353 numgen random mod 1000000 < 250000 counter drop",
        "oifname \"v0\" counter dup to ip daddr device \"v0\"",
    ] {
        assert!(
            l.iter().any(|x| x == want),
            "{want:?} not in\n{}",
            l.join("\n")
        );
    }
    let l = listing(&s, "ip", "murphy_t3");
    for want in [
        "type nat hook output priority -100; policy accept;",
        "meta mark != 0x00004d55 udp dport 53 counter redirect to :20053",
    ] {
        assert!(
            l.iter().any(|x| x == want),
            "{want:?} not in\n{}",
            l.join("\n")
        );
    }

    // NFQUEUE with bypass, as the packet engine's table asks for it (the kernel's
    // NFQUEUE target, revision 3, queue 7, bypass).
    let doc = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": "murphy_t6"}}},
        {"add": {"chain": {"family": "ip", "table": "murphy_t6", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": "murphy_t6", "chain": "input", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
            {"counter": null}, {"queue": {"num": 7, "flags": ["bypass"]}}]}}},
    ]});
    nft.apply(&doc).expect("apply queue");
    let l = listing(&s, "ip", "murphy_t6");
    // nft reads the kernel's NFQUEUE target back as the queue statement it means.
    assert!(
        l.iter()
            .any(|x| x == "meta l4proto tcp counter queue num 7 bypass"),
        "{}",
        l.join("\n")
    );
    assert_eq!(
        nft.rules("ip", "murphy_t6").expect("rules")[0].exprs,
        ["meta", "cmp", "counter", "target"]
    );
    assert!(nft.delete_table("ip", "murphy_t6").expect("delete"));

    // Counters read back over the socket count real packets: drop pings to 10.9.0.7.
    let doc = json!({"nftables": [
        {"add": {"table": {"family": "inet", "name": "murphy_t4"}}},
        {"add": {"chain": {"family": "inet", "table": "murphy_t4", "name": "output", "type": "filter", "hook": "output", "prio": -300, "policy": "accept"}}},
        {"add": {"rule": {"family": "inet", "table": "murphy_t4", "chain": "output", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"set": ["10.55.0.9"]}}},
            {"counter": null}, {"drop": null}]}}},
    ]});
    nft.apply(&doc).expect("apply drop");
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            "mxnl1",
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "10.55.0.9",
        ])
        .output()
        .expect("ping");
    assert!(!ping.status.success(), "the drop rule must stop the pings");
    let counted: u64 = nft
        .rules("inet", "murphy_t4")
        .expect("rules")
        .iter()
        .map(|r| r.packets)
        .sum();
    assert!(
        counted >= 3,
        "the counter read over netlink saw {counted} packets"
    );

    // A transaction is all or nothing: a rule on a chain that does not exist fails the
    // whole batch, and its table is not left behind.
    let bad = json!({"nftables": [
        {"add": {"table": {"family": "inet", "name": "murphy_t5"}}},
        {"add": {"rule": {"family": "inet", "table": "murphy_t5", "chain": "nope", "expr": [{"drop": null}]}}},
    ]});
    let e = nft.apply(&bad).expect_err("a rule without its chain");
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(!nft.has_table("inet", "murphy_t5").expect("has_table"));
    // What the encoder does not know is refused by name, before anything is sent.
    let odd = json!({"nftables": [{"add": {"table": {"family": "bridge", "name": "x"}}}]});
    assert!(nft
        .apply(&odd)
        .expect_err("bridge")
        .to_string()
        .contains("bridge"));

    // Delete is idempotent: the second time there is nothing to do.
    for t in ["murphy_t1", "murphy_t4"] {
        assert!(nft.delete_table("inet", t).expect("delete"));
        assert!(!nft.delete_table("inet", t).expect("delete again"));
    }
    for t in ["murphy_t2", "murphy_t3"] {
        assert!(nft.delete_table("ip", t).expect("delete"));
    }
    assert_eq!(s.run(&["nft", "list", "tables"]).trim(), "");
}

#[test]
fn routes_and_links_written_in_process_are_what_ip_shows() {
    let s = Space::new("mxnl2");
    let mut rt = Route::open(&s.netns()).expect("socket");
    let t = |x: &str| x.split(' ').map(String::from).collect::<Vec<_>>();
    let bh = RouteSpec::parse(&t("blackhole 10.99.0.0/25")).expect("spec");
    rt.add(&bh, false).expect("add blackhole");
    let via = RouteSpec::parse(&t(
        "10.98.0.0/24 via 10.55.0.2 dev v0 proto static metric 7",
    ))
    .expect("spec");
    rt.add(&via, false).expect("add via");
    // Addresses as `ip` lists them (global, then host scope on lo), with their links.
    s.run(&["ip", "addr", "add", "10.55.1.9/16", "dev", "v1"]);
    let addrs = rt.addrs().expect("addresses");
    let v0 = rt.ifindex("v0").expect("v0").expect("v0");
    let v1 = rt.ifindex("v1").expect("v1").expect("v1");
    let got: Vec<String> = addrs
        .iter()
        .map(|a| format!("{} {}/{} scope {}", a.ifindex, a.addr, a.len, a.scope))
        .collect();
    assert!(
        got.contains(&format!("{v0} 10.55.0.1/24 scope 0")),
        "{got:?}"
    );
    assert!(
        got.contains(&format!("{v1} 10.55.1.9/16 scope 0")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|a| a.ends_with(" 127.0.0.1/8 scope 254")),
        "{got:?}"
    );
    // A member's addresses: the global ones, in the order `ip` lists them.
    let listed: Vec<std::net::Ipv4Addr> = s
        .run(&["ip", "-o", "-4", "addr", "show", "scope", "global"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(murphy::target::netns_addrs(&s.netns()), listed);
    let shown = s.run(&["ip", "route", "show"]);
    assert!(shown.contains("blackhole 10.99.0.0/25"), "{shown}");
    assert!(
        shown.contains("10.98.0.0/24 via 10.55.0.2 dev v0 proto static metric 7"),
        "{shown}"
    );
    // Adding it again is refused (exclusive); replace is not.
    assert!(rt.add(&bh, false).is_err());
    rt.add(&bh, true).expect("replace");
    // Read back as the journal records them.
    let listed = rt
        .routes_exact("10.98.0.0".parse().expect("a"), 24)
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].tokens().join(" "),
        "10.98.0.0/24 via 10.55.0.2 dev v0 proto static metric 7"
    );
    let (ty, gw, dev) = rt.get("10.98.0.5".parse().expect("a")).expect("get");
    assert_eq!(
        (ty.as_str(), gw.map(|g| g.to_string()), dev.as_deref()),
        ("unicast", Some("10.55.0.2".into()), Some("v0"))
    );
    // Delete, then delete again: nothing to do.
    assert!(rt.delete(&bh).expect("delete"));
    assert!(!rt.delete(&bh).expect("delete again"));
    assert!(rt.delete(&via).expect("delete via"));
    assert!(!s.run(&["ip", "route", "show"]).contains("10.9"));

    // A token bucket as tc makes it, read back by tc and by Murphy; deleted twice.
    let tbf = murphy::netlink::route::Tbf {
        bits_per_second: 10_000_000,
        burst_bytes: 12_500,
        latency_ms: 50,
    };
    assert_eq!(
        rt.root_qdisc("v0")
            .expect("qdisc")
            .map(|q| q.kind)
            .as_deref(),
        Some("noqueue")
    );
    rt.add_tbf("v0", tbf).expect("tbf");
    let shown = s.run(&["tc", "qdisc", "show", "dev", "v0"]);
    assert!(
        shown.contains("qdisc tbf")
            && shown.contains("rate 10Mbit")
            && shown.contains("burst 12500b"),
        "{shown}"
    );
    let q = rt.root_qdisc("v0").expect("qdisc").expect("root");
    assert_eq!((q.kind.as_str(), q.rate_bytes), ("tbf", Some(1_250_000)));
    assert!(
        rt.add_tbf("v0", tbf).is_err(),
        "an exclusive add over Murphy's own"
    );
    assert!(rt.delete_root_qdisc("v0").expect("delete"));
    assert!(!rt.delete_root_qdisc("v0").expect("delete again"));
    assert!(!s.run(&["tc", "qdisc", "show", "dev", "v0"]).contains("tbf"));

    rt.set_up("v0", false).expect("down");
    assert!(!rt.link("v0").expect("link").expect("v0").up);
    assert!(s.run(&["ip", "link", "show", "v0"]).contains("state DOWN"));
    rt.set_up("v0", true).expect("up");
    assert!(rt.link("v0").expect("link").expect("v0").up);
    let e = rt.set_up("nope0", false).expect_err("no such link");
    assert!(e.to_string().contains("nope0"), "{e}");
}
