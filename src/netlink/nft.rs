//! nftables over netlink, in process. A fault describes its table as the nftables JSON
//! document it always did (readable, kept in tests); [`Nft::apply`] turns that document
//! into one nf_tables transaction — the batch the `nft` tool would send, without the
//! process — and [`Nft::rules`] reads the rules and their counters back over the same
//! socket. Only the part of the JSON language Murphy's faults write is understood; anything
//! else is refused by name, never guessed.
//!
//! A match against an anonymous set (`ip saddr { a, b/24 }`) becomes one rule per element
//! (a prefix is a mask and a compare): the same packets match, with no set object to manage.

use super::{attr, attrs, text, Family, Msg, NlError, Socket, NLM_F_ACK, NLM_F_CREATE};
use super::{NLM_F_DUMP, NLM_F_REQUEST};
use crate::netns::Netns;
use nix::errno::Errno;
use serde_json::Value;
use std::net::Ipv4Addr;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

/// The kernel's number for an nftables family name.
fn family_number(f: &str) -> Result<u8, String> {
    match f {
        "inet" => Ok(1),
        "ip" => Ok(2),
        other => Err(format!("family {other:?} is not one Murphy writes")),
    }
}

fn hook_number(h: &str) -> Result<u32, String> {
    Ok(match h {
        "prerouting" => 0,
        "input" => 1,
        "forward" => 2,
        "output" => 3,
        "postrouting" => 4,
        other => return Err(format!("hook {other:?} is not one Murphy writes")),
    })
}

/// One bytecode instruction of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    /// Load `len` bytes at `offset` of header `base` (1 network, 2 transport) into reg 1.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// Load a meta key into reg 1.
    Meta {
        key: u32,
    },
    /// reg 1 &= mask.
    Mask(Vec<u8>),
    /// Compare reg 1 with `data` (0 eq, 1 neq, 2 lt).
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// A random number below `modulus` into reg 1.
    Numgen {
        modulus: u32,
    },
    /// reg 1 to network byte order (4 bytes).
    Hton,
    Counter,
    Verdict(u32),
    /// Put `data` in register `reg`.
    Immediate {
        reg: u32,
        data: Vec<u8>,
    },
    /// Send a copy to the address in reg 1 through the interface index in reg 2.
    Dup,
    /// Redirect to the local port in reg 1.
    Redirect,
    /// Hand the packet to NFQUEUE queue `num` (`bypass`: accept it when no program
    /// listens), through the kernel's xtables NFQUEUE target (revision 3).
    Queue {
        num: u16,
        bypass: bool,
    },
}

/// nf_tables messages under construction, wrapped in a batch.
struct Batch {
    buf: Vec<u8>,
    acked: Vec<u32>,
    about: Vec<String>,
}

fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

impl Batch {
    fn new(sock: &mut Socket) -> Batch {
        let begin = Msg::new(
            NFNL_MSG_BATCH_BEGIN,
            NFLM_REQ,
            sock.next_seq(),
            &nfgen(0, NFNL_SUBSYS_NFTABLES),
        );
        Batch {
            buf: begin.finish(),
            acked: Vec::new(),
            about: Vec::new(),
        }
    }

    fn msg(&mut self, sock: &mut Socket, typ: u16, flags: u16, family: u8, what: String) -> Msg {
        let seq = sock.next_seq();
        self.acked.push(seq);
        self.about.push(what);
        Msg::new(
            nft_type(typ),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            &nfgen(family, 0),
        )
    }

    fn push(&mut self, m: Msg) {
        self.buf.extend_from_slice(&m.finish());
    }

    fn send(mut self, sock: &mut Socket) -> Result<(), NlError> {
        let end = Msg::new(
            NFNL_MSG_BATCH_END,
            NFLM_REQ,
            sock.next_seq(),
            &nfgen(0, NFNL_SUBSYS_NFTABLES),
        );
        self.buf.extend_from_slice(&end.finish());
        sock.transact(&self.buf, &self.acked, &self.about)
    }
}

const NFLM_REQ: u16 = NLM_F_REQUEST;

/// A rule as read back: its expressions' names and the packets its counters counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleInfo {
    pub chain: String,
    pub exprs: Vec<String>,
    pub packets: u64,
}

/// nftables in one network namespace, over one socket kept for the fault's life.
pub struct Nft {
    sock: Socket,
    netns: Netns,
    links: Option<super::route::Route>,
}

impl Nft {
    pub fn open(netns: &Netns) -> Result<Nft, NlError> {
        Ok(Nft {
            sock: Socket::open(netns, Family::Netfilter)?,
            netns: netns.clone(),
            links: None,
        })
    }

    /// Apply an nftables JSON document (`{"nftables": [{"add": ...}, ...]}`) as one
    /// transaction: all of it or nothing.
    pub fn apply(&mut self, doc: &Value) -> Result<(), NlError> {
        let bad = |m: String| NlError::new(m, Errno::EINVAL);
        let cmds = doc["nftables"]
            .as_array()
            .ok_or_else(|| bad("not an nftables document".into()))?;
        let mut batch = Batch::new(&mut self.sock);
        for c in cmds {
            let add = c
                .get("add")
                .ok_or_else(|| bad(format!("only `add` commands are written: {c}")))?;
            if let Some(t) = add.get("table") {
                let fam = family_number(s(t, "family")?).map_err(bad)?;
                let name = s(t, "name")?;
                let mut m = batch.msg(
                    &mut self.sock,
                    NFT_MSG_NEWTABLE,
                    NLM_F_CREATE,
                    fam,
                    format!("adding table {name}"),
                );
                m.strz(NFTA_TABLE_NAME, name);
                batch.push(m);
            } else if let Some(ch) = add.get("chain") {
                let fam = family_number(s(ch, "family")?).map_err(bad)?;
                let name = s(ch, "name")?;
                let mut m = batch.msg(
                    &mut self.sock,
                    NFT_MSG_NEWCHAIN,
                    NLM_F_CREATE,
                    fam,
                    format!("adding chain {name}"),
                );
                m.strz(NFTA_CHAIN_TABLE, s(ch, "table")?);
                m.strz(NFTA_CHAIN_NAME, name);
                if let Some(hook) = ch.get("hook").and_then(Value::as_str) {
                    let prio = ch["prio"].as_i64().unwrap_or(0);
                    let prio = i32::try_from(prio).map_err(|_| bad(format!("prio {prio}")))?;
                    m.begin(NFTA_CHAIN_HOOK)
                        .be32(NFTA_HOOK_HOOKNUM, hook_number(hook).map_err(bad)?)
                        .be32(NFTA_HOOK_PRIORITY, prio as u32)
                        .end();
                    let policy = match ch["policy"].as_str().unwrap_or("accept") {
                        "accept" => NF_ACCEPT,
                        "drop" => NF_DROP,
                        p => return Err(bad(format!("policy {p:?}"))),
                    };
                    m.be32(NFTA_CHAIN_POLICY, policy);
                    m.strz(NFTA_CHAIN_TYPE, ch["type"].as_str().unwrap_or("filter"));
                }
                batch.push(m);
            } else if let Some(r) = add.get("rule") {
                let fam_name = s(r, "family")?;
                let fam = family_number(fam_name).map_err(bad)?;
                let (table, chain) = (s(r, "table")?, s(r, "chain")?);
                let exprs = r["expr"]
                    .as_array()
                    .ok_or_else(|| bad("a rule without expr".into()))?;
                for one in expand_sets(exprs).map_err(bad)? {
                    let code = self.compile(fam_name, &one).map_err(bad)?;
                    let mut m = batch.msg(
                        &mut self.sock,
                        NFT_MSG_NEWRULE,
                        NLM_F_CREATE | super::NLM_F_APPEND,
                        fam,
                        format!("adding a rule to {table} {chain}"),
                    );
                    m.strz(NFTA_RULE_TABLE, table).strz(NFTA_RULE_CHAIN, chain);
                    m.begin(NFTA_RULE_EXPRESSIONS);
                    for e in &code {
                        encode(&mut m, e);
                    }
                    m.end();
                    batch.push(m);
                }
            } else {
                return Err(bad(format!(
                    "only tables, chains and rules are written: {c}"
                )));
            }
        }
        batch.send(&mut self.sock)
    }

    /// Delete a table; `Ok(false)` when there was none (nothing to undo).
    pub fn delete_table(&mut self, family: &str, table: &str) -> Result<bool, NlError> {
        let fam = family_number(family).map_err(|m| NlError::new(m, Errno::EINVAL))?;
        let mut batch = Batch::new(&mut self.sock);
        let mut m = batch.msg(
            &mut self.sock,
            NFT_MSG_DELTABLE,
            0,
            fam,
            format!("deleting table {family} {table}"),
        );
        m.strz(NFTA_TABLE_NAME, table);
        batch.push(m);
        match batch.send(&mut self.sock) {
            Ok(()) => Ok(true),
            Err(e) if e.errno == Errno::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the table exists.
    pub fn has_table(&mut self, family: &str, table: &str) -> Result<bool, NlError> {
        let fam = family_number(family).map_err(|m| NlError::new(m, Errno::EINVAL))?;
        let seq = self.sock.next_seq();
        let mut m = Msg::new(
            nft_type(NFT_MSG_GETTABLE),
            NLM_F_REQUEST,
            seq,
            &nfgen(fam, 0),
        );
        m.strz(NFTA_TABLE_NAME, table);
        match self.sock.get(m, &format!("reading table {family} {table}")) {
            Ok(_) => Ok(true),
            Err(e) if e.errno == Errno::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every rule of a table, with its expressions and counted packets.
    pub fn rules(&mut self, family: &str, table: &str) -> Result<Vec<RuleInfo>, NlError> {
        let fam = family_number(family).map_err(|m| NlError::new(m, Errno::EINVAL))?;
        let seq = self.sock.next_seq();
        let mut m = Msg::new(
            nft_type(NFT_MSG_GETRULE),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &nfgen(fam, 0),
        );
        m.strz(NFTA_RULE_TABLE, table);
        let msgs = self
            .sock
            .dump(m, &format!("listing table {family} {table}"))?;
        let mut out = Vec::new();
        for msg in msgs {
            let list = attrs(msg.get(20..).unwrap_or_default());
            // Older kernels ignore the table filter of a dump: keep this table's rules only.
            if attr(&list, NFTA_RULE_TABLE).map(text).as_deref() != Some(table) {
                continue;
            }
            let mut info = RuleInfo {
                chain: attr(&list, NFTA_RULE_CHAIN).map(text).unwrap_or_default(),
                ..Default::default()
            };
            for (_, e) in attrs(attr(&list, NFTA_RULE_EXPRESSIONS).unwrap_or_default()) {
                let ea = attrs(e);
                let name = attr(&ea, NFTA_EXPR_NAME).map(text).unwrap_or_default();
                if name == "counter" {
                    let data = attrs(attr(&ea, NFTA_EXPR_DATA).unwrap_or_default());
                    if let Some(p) = attr(&data, NFTA_COUNTER_PACKETS) {
                        info.packets += p.try_into().map(u64::from_be_bytes).unwrap_or(0);
                    }
                }
                info.exprs.push(name);
            }
            out.push(info);
        }
        if out.is_empty() && !self.has_table(family, table)? {
            return Err(NlError::new(
                format!("table {family} {table} is not there"),
                Errno::ENOENT,
            ));
        }
        Ok(out)
    }

    /// The bytecode of one rule (sets already expanded).
    fn compile(&mut self, family: &str, exprs: &[Value]) -> Result<Vec<Expr>, String> {
        let mut code = Vec::new();
        let mut l4_known = false;
        for e in exprs {
            if let Some(m) = e.get("match") {
                let op = match m["op"].as_str().unwrap_or("==") {
                    "==" => 0,
                    "!=" => 1,
                    "<" => 2,
                    o => return Err(format!("match operator {o:?}")),
                };
                let (left, right) = (&m["left"], &m["right"]);
                if let Some(p) = left.get("payload") {
                    let proto = p["protocol"].as_str().unwrap_or_default();
                    let field = p["field"].as_str().unwrap_or_default();
                    match (proto, field) {
                        ("ip", "saddr" | "daddr") => {
                            if family == "inet" {
                                // The IPv4 header is only there in IPv4 packets.
                                code.push(Expr::Meta { key: 15 });
                                code.push(Expr::Cmp {
                                    op: 0,
                                    data: vec![2],
                                });
                            }
                            let offset = if field == "saddr" { 12 } else { 16 };
                            code.push(Expr::Payload {
                                base: 1,
                                offset,
                                len: 4,
                            });
                            let (addr, len) = prefix(right)?;
                            if len < 32 {
                                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                                code.push(Expr::Mask(mask.to_be_bytes().to_vec()));
                            }
                            code.push(Expr::Cmp {
                                op,
                                data: addr.octets().to_vec(),
                            });
                        }
                        ("tcp" | "udp" | "th", "sport" | "dport") => {
                            if proto != "th" && !l4_known {
                                code.push(Expr::Meta { key: 16 });
                                code.push(Expr::Cmp {
                                    op: 0,
                                    data: vec![l4(proto)?],
                                });
                            }
                            let port = right
                                .as_u64()
                                .and_then(|p| u16::try_from(p).ok())
                                .ok_or_else(|| format!("port {right}"))?;
                            code.push(Expr::Payload {
                                base: 2,
                                offset: if field == "sport" { 0 } else { 2 },
                                len: 2,
                            });
                            code.push(Expr::Cmp {
                                op,
                                data: port.to_be_bytes().to_vec(),
                            });
                        }
                        _ => return Err(format!("payload {proto} {field}")),
                    }
                } else if let Some(meta) = left.get("meta") {
                    match meta["key"].as_str().unwrap_or_default() {
                        k @ ("iifname" | "oifname") => {
                            let name = right.as_str().ok_or_else(|| format!("{k} {right}"))?;
                            let mut data = name.as_bytes().to_vec();
                            if data.len() >= 16 {
                                return Err(format!("{k} {name:?} is too long"));
                            }
                            data.resize(16, 0);
                            code.push(Expr::Meta {
                                key: if k == "iifname" { 6 } else { 7 },
                            });
                            code.push(Expr::Cmp { op, data });
                        }
                        "l4proto" => {
                            let p = right.as_str().ok_or_else(|| format!("l4proto {right}"))?;
                            code.push(Expr::Meta { key: 16 });
                            code.push(Expr::Cmp {
                                op,
                                data: vec![l4(p)?],
                            });
                            l4_known = op == 0;
                        }
                        "mark" => {
                            let v = right
                                .as_u64()
                                .and_then(|v| u32::try_from(v).ok())
                                .ok_or_else(|| format!("mark {right}"))?;
                            code.push(Expr::Meta { key: 3 });
                            code.push(Expr::Cmp {
                                op,
                                data: v.to_ne_bytes().to_vec(),
                            });
                        }
                        k => return Err(format!("meta {k}")),
                    }
                } else if let Some(ng) = left.get("numgen") {
                    if ng["mode"].as_str() != Some("random") {
                        return Err(format!("numgen {ng}"));
                    }
                    let modulus = ng["mod"]
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .filter(|v| *v > 0)
                        .ok_or_else(|| format!("numgen mod {}", ng["mod"]))?;
                    let v = right
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| format!("numgen compared with {right}"))?;
                    code.push(Expr::Numgen { modulus });
                    // The compare is over bytes: a number must be big-endian for `<`.
                    code.push(Expr::Hton);
                    code.push(Expr::Cmp {
                        op,
                        data: v.to_be_bytes().to_vec(),
                    });
                } else {
                    return Err(format!("match on {left}"));
                }
            } else if e.get("counter").is_some() {
                code.push(Expr::Counter);
            } else if e.get("drop").is_some() {
                code.push(Expr::Verdict(NF_DROP));
            } else if e.get("accept").is_some() {
                code.push(Expr::Verdict(NF_ACCEPT));
            } else if let Some(d) = e.get("dup") {
                if d["addr"]["payload"] != serde_json::json!({"protocol": "ip", "field": "daddr"}) {
                    return Err(format!("dup to {}", d["addr"]));
                }
                let dev = d["dev"].as_str().ok_or_else(|| format!("dup dev {d}"))?;
                let index = self.ifindex(dev)?;
                code.push(Expr::Payload {
                    base: 1,
                    offset: 16,
                    len: 4,
                });
                code.push(Expr::Immediate {
                    reg: NFT_REG_2,
                    data: index.to_ne_bytes().to_vec(),
                });
                code.push(Expr::Dup);
            } else if let Some(q) = e.get("queue") {
                // This kernel has no nftables `queue` expression (nft_queue): the same
                // verdict is the NFQUEUE target iptables uses, through nft_compat.
                let num = q["num"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| format!("queue {q}"))?;
                let flags = q["flags"].as_array().cloned().unwrap_or_default();
                if flags.iter().any(|f| f != "bypass") {
                    return Err(format!("queue flags {}", q["flags"]));
                }
                code.push(Expr::Queue {
                    num,
                    bypass: !flags.is_empty(),
                });
            } else if let Some(r) = e.get("redirect") {
                let port = r["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("redirect {r}"))?;
                code.push(Expr::Immediate {
                    reg: NFT_REG_1,
                    data: port.to_be_bytes().to_vec(),
                });
                code.push(Expr::Redirect);
            } else {
                return Err(format!("statement {e}"));
            }
        }
        Ok(code)
    }

    fn ifindex(&mut self, dev: &str) -> Result<u32, String> {
        if self.links.is_none() {
            self.links = Some(super::route::Route::open(&self.netns).map_err(|e| e.to_string())?);
        }
        let links = self.links.as_mut().ok_or("no route socket")?;
        links
            .ifindex(dev)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no interface {dev:?} in {}", self.netns.describe()))
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Result<&'a str, NlError> {
    v[key]
        .as_str()
        .ok_or_else(|| NlError::new(format!("{key} missing in {v}"), Errno::EINVAL))
}

fn l4(p: &str) -> Result<u8, String> {
    match p {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        other => Err(format!("protocol {other:?}")),
    }
}

/// An address or `{"prefix": {"addr", "len"}}`.
fn prefix(v: &Value) -> Result<(Ipv4Addr, u8), String> {
    if let Some(a) = v.as_str() {
        return a
            .parse()
            .map(|a| (a, 32))
            .map_err(|_| format!("address {a:?}"));
    }
    let p = &v["prefix"];
    let addr: Ipv4Addr = p["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("prefix {v}"))?;
    let len = p["len"]
        .as_u64()
        .and_then(|l| u8::try_from(l).ok())
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("prefix length in {v}"))?;
    Ok((addr, len))
}

/// One rule per element of the (at most one) `==` set match in `exprs`.
fn expand_sets(exprs: &[Value]) -> Result<Vec<Vec<Value>>, String> {
    let at = exprs
        .iter()
        .position(|e| e["match"]["right"].get("set").is_some());
    let Some(at) = at else {
        return Ok(vec![exprs.to_vec()]);
    };
    if exprs[at]["match"]["op"].as_str().unwrap_or("==") != "==" {
        return Err("only `==` matches a set".into());
    }
    if exprs[at + 1..]
        .iter()
        .any(|e| e["match"]["right"].get("set").is_some())
    {
        return Err("one set per rule".into());
    }
    let elems = exprs[at]["match"]["right"]["set"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(elems
        .into_iter()
        .map(|el| {
            let mut one = exprs.to_vec();
            one[at]["match"]["right"] = el;
            one
        })
        .collect())
}

fn data_value(m: &mut Msg, typ: u16, data: &[u8]) {
    m.begin(typ).put(NFTA_DATA_VALUE, data).end();
}

/// Append one expression (`NFTA_LIST_ELEM { name, data }`).
fn encode(m: &mut Msg, e: &Expr) {
    let name = match e {
        Expr::Payload { .. } => "payload",
        Expr::Meta { .. } => "meta",
        Expr::Mask(_) => "bitwise",
        Expr::Cmp { .. } => "cmp",
        Expr::Numgen { .. } => "numgen",
        Expr::Hton => "byteorder",
        Expr::Counter => "counter",
        Expr::Verdict(_) | Expr::Immediate { .. } => "immediate",
        Expr::Dup => "dup",
        Expr::Redirect => "redir",
        Expr::Queue { .. } => "target",
    };
    m.begin(NFTA_LIST_ELEM).strz(NFTA_EXPR_NAME, name);
    m.begin(NFTA_EXPR_DATA);
    match e {
        Expr::Payload { base, offset, len } => {
            m.be32(1, NFT_REG_1)
                .be32(2, *base)
                .be32(3, *offset)
                .be32(4, *len);
        }
        Expr::Meta { key } => {
            m.be32(1, NFT_REG_1).be32(2, *key);
        }
        Expr::Mask(mask) => {
            m.be32(1, NFT_REG_1)
                .be32(2, NFT_REG_1)
                .be32(3, mask.len() as u32);
            data_value(m, 4, mask);
            data_value(m, 5, &vec![0; mask.len()]);
        }
        Expr::Cmp { op, data } => {
            m.be32(1, NFT_REG_1).be32(2, *op);
            data_value(m, 3, data);
        }
        Expr::Numgen { modulus } => {
            m.be32(1, NFT_REG_1).be32(2, *modulus).be32(3, 1).be32(4, 0);
        }
        Expr::Hton => {
            m.be32(1, NFT_REG_1)
                .be32(2, NFT_REG_1)
                .be32(3, 1)
                .be32(4, 4)
                .be32(5, 4);
        }
        Expr::Counter => {}
        Expr::Verdict(code) => {
            m.be32(1, NFT_REG_VERDICT);
            m.begin(2)
                .begin(NFTA_DATA_VERDICT)
                .be32(NFTA_VERDICT_CODE, *code)
                .end()
                .end();
        }
        Expr::Immediate { reg, data } => {
            m.be32(1, *reg);
            data_value(m, 2, data);
        }
        Expr::Dup => {
            m.be32(1, NFT_REG_1).be32(2, NFT_REG_2);
        }
        Expr::Redirect => {
            m.be32(1, NFT_REG_1);
        }
        Expr::Queue { num, bypass } => {
            // struct xt_NFQ_info_v3 { u16 queuenum, queues_total, flags }, padded to 8.
            let mut info = [0u8; 8];
            info[..2].copy_from_slice(&num.to_ne_bytes());
            info[2..4].copy_from_slice(&1u16.to_ne_bytes());
            info[4..6].copy_from_slice(&u16::from(*bypass).to_ne_bytes());
            m.strz(1, "NFQUEUE").be32(2, 3).put(3, &info);
        }
    }
    m.end().end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_set_match_becomes_one_rule_per_element() {
        let exprs = vec![
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}}}),
            json!({"drop": null}),
        ];
        let rules = expand_sets(&exprs).expect("expand");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0][0]["match"]["right"], "10.0.0.1");
        assert_eq!(
            prefix(&rules[1][0]["match"]["right"]),
            Ok(("10.1.0.0".parse().expect("a"), 16))
        );
        let neq = vec![json!({"match": {"op": "!=", "left": {}, "right": {"set": []}}})];
        assert!(expand_sets(&neq).is_err());
    }
}
