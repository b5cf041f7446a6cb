//! The node agent's leases. Every injection is bound to an experiment, a fault and a pod
//! UID, and lives only as long as its lease: the controller renews it; when it lapses
//! (the controller vanished, or lost the node) the agent reverts the injection itself.
//! A call about an injection must name the same experiment and pod UID it was made for.
//!
//! Pure bookkeeping on a clock the caller supplies (milliseconds), so it is tested
//! without waiting.

use std::collections::BTreeMap;

/// What an injection is bound to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub experiment: String,
    pub fault: String,
    pub pod_uid: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    #[error("no injection {fault} of experiment {experiment} on this node")]
    Unknown { experiment: String, fault: String },
    #[error("injection {fault} of experiment {experiment} was made for pod {bound}, not {asked}")]
    WrongPod {
        experiment: String,
        fault: String,
        bound: String,
        asked: String,
    },
    #[error("the lease of {fault} ({experiment}) lapsed; it was reverted")]
    Lapsed { experiment: String, fault: String },
    #[error("a lease must be between 1s and 1h (asked {0} ms)")]
    BadDuration(u64),
}

#[derive(Debug, Default)]
pub struct Leases {
    live: BTreeMap<Key, u64>,
}

/// Longest lease an agent grants: a controller must renew at least this often.
pub const MAX_LEASE_MS: u64 = 3_600_000;

impl Leases {
    /// A new injection's lease, until `now + ttl`.
    pub fn grant(&mut self, key: Key, now_ms: u64, ttl_ms: u64) -> Result<u64, LeaseError> {
        if !(1000..=MAX_LEASE_MS).contains(&ttl_ms) {
            return Err(LeaseError::BadDuration(ttl_ms));
        }
        let until = now_ms + ttl_ms;
        self.live.insert(key, until);
        Ok(until)
    }

    /// The key recorded for (experiment, fault, pod). One fault may hold several pods of
    /// this node; a pod UID that none of them has is refused, naming the pods it was made
    /// for.
    pub fn check(&self, experiment: &str, fault: &str, pod_uid: &str) -> Result<Key, LeaseError> {
        let of_fault: Vec<&Key> = self
            .live
            .keys()
            .filter(|k| k.experiment == experiment && k.fault == fault)
            .collect();
        if of_fault.is_empty() {
            return Err(LeaseError::Unknown {
                experiment: experiment.into(),
                fault: fault.into(),
            });
        }
        match of_fault.iter().find(|k| k.pod_uid == pod_uid) {
            Some(k) => Ok((*k).clone()),
            None => Err(LeaseError::WrongPod {
                experiment: experiment.into(),
                fault: fault.into(),
                bound: of_fault
                    .iter()
                    .map(|k| k.pod_uid.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                asked: pod_uid.into(),
            }),
        }
    }

    /// Extend a live lease; a lapsed one cannot come back.
    pub fn renew(&mut self, key: &Key, now_ms: u64, ttl_ms: u64) -> Result<u64, LeaseError> {
        if !(1000..=MAX_LEASE_MS).contains(&ttl_ms) {
            return Err(LeaseError::BadDuration(ttl_ms));
        }
        self.check(&key.experiment, &key.fault, &key.pod_uid)?;
        match self.live.get_mut(key) {
            Some(until) if *until > now_ms => {
                *until = now_ms + ttl_ms;
                Ok(*until)
            }
            _ => Err(LeaseError::Lapsed {
                experiment: key.experiment.clone(),
                fault: key.fault.clone(),
            }),
        }
    }

    /// Take out every lease that lapsed by `now`: the agent reverts these.
    pub fn lapsed(&mut self, now_ms: u64) -> Vec<Key> {
        let gone: Vec<Key> = self
            .live
            .iter()
            .filter(|(_, until)| **until <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.live.remove(k);
        }
        gone
    }

    /// The injection was reverted on request.
    pub fn release(&mut self, key: &Key) -> bool {
        self.live.remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(f: &str) -> Key {
        Key {
            experiment: "shop/redis-primary-loss".into(),
            fault: f.into(),
            pod_uid: "uid-1".into(),
        }
    }

    #[test]
    fn a_lapsed_lease_is_handed_back_once_and_cannot_be_renewed() {
        let mut l = Leases::default();
        l.grant(key("a"), 0, 10_000).expect("grant");
        l.grant(key("b"), 0, 30_000).expect("grant");
        assert_eq!(l.renew(&key("a"), 5_000, 10_000), Ok(15_000));
        assert!(l.lapsed(14_999).is_empty());
        assert_eq!(l.lapsed(15_000), vec![key("a")]);
        assert!(l.lapsed(16_000).is_empty(), "handed back once");
        assert!(matches!(
            l.renew(&key("a"), 16_000, 10_000),
            Err(LeaseError::Unknown { .. })
        ));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn calls_must_name_the_pod_the_injection_was_made_for() {
        let mut l = Leases::default();
        l.grant(key("a"), 0, 10_000).expect("grant");
        assert_eq!(
            l.check("shop/redis-primary-loss", "a", "uid-1"),
            Ok(key("a"))
        );
        let err = l
            .check("shop/redis-primary-loss", "a", "uid-2")
            .expect_err("wrong pod");
        assert!(
            err.to_string().contains("made for pod uid-1, not uid-2"),
            "{err}"
        );
        assert!(matches!(
            l.check("other", "a", "uid-1"),
            Err(LeaseError::Unknown { .. })
        ));
        assert_eq!(l.grant(key("c"), 0, 10), Err(LeaseError::BadDuration(10)));
    }

    #[test]
    fn one_fault_on_several_pods_of_a_node_answers_for_each() {
        let mut l = Leases::default();
        let on = |uid: &str| Key {
            pod_uid: uid.into(),
            ..key("a")
        };
        for uid in ["uid-1", "uid-2", "uid-3"] {
            l.grant(on(uid), 0, 10_000).expect("grant");
        }
        for uid in ["uid-1", "uid-2", "uid-3"] {
            assert_eq!(l.check("shop/redis-primary-loss", "a", uid), Ok(on(uid)));
        }
        let err = l
            .check("shop/redis-primary-loss", "a", "uid-9")
            .expect_err("not one of them");
        assert!(
            err.to_string()
                .contains("made for pod uid-1, uid-2, uid-3, not uid-9"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn nothing_outlives_its_lease(ttls in proptest::collection::vec(1000u64..100_000, 1..20), now in 0u64..200_000) {
            let mut l = Leases::default();
            for (i, t) in ttls.iter().enumerate() {
                l.grant(key(&i.to_string()), 0, *t).expect("grant");
            }
            let gone = l.lapsed(now);
            prop_assert_eq!(gone.len(), ttls.iter().filter(|t| **t <= now).count());
            prop_assert_eq!(l.len() + gone.len(), ttls.len());
        }
    }
}
