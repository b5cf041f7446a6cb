//! Leader election on a `coordination.k8s.io/v1` Lease, so only one controller replica
//! reconciles (others stand by). The decision is a pure function of the Lease as read;
//! writes carry the read's resourceVersion, so two candidates cannot both take it.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use std::time::Duration;

/// What to do about the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Its holder stopped renewing (or there is none): take it over.
    Take,
    /// Someone else holds it: ask again after this long.
    Wait(Duration),
}

/// Decide from the Lease's holder, last renewal (ms since the epoch) and duration.
pub fn decide(
    holder: Option<&str>,
    renewed_ms: Option<i64>,
    duration_s: i32,
    me: &str,
    now_ms: i64,
) -> Decision {
    match (holder, renewed_ms) {
        (Some(h), _) if h == me => Decision::Renew,
        (None | Some(""), _) => Decision::Take,
        (Some(_), None) => Decision::Take,
        (Some(_), Some(r)) => {
            let expires = r + i64::from(duration_s.max(1)) * 1000;
            if now_ms >= expires {
                Decision::Take
            } else {
                Decision::Wait(Duration::from_millis(
                    (expires - now_ms).clamp(200, 5_000) as u64
                ))
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn ms(t: &MicroTime) -> i64 {
    t.0.as_millisecond()
}

fn spec_for(me: &str, duration_s: i32, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(duration_s),
        acquire_time: Some(acquired.unwrap_or_else(now)),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// One round: read the Lease and act. Returns whether we hold it afterwards, or how long
/// to wait before asking again.
pub async fn round(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    duration_s: i32,
) -> Result<Result<(), Duration>, kube::Error> {
    let current = api.get_opt(name).await?;
    let (holder, renewed, transitions, acquired) = match &current {
        Some(l) => {
            let s = l.spec.clone().unwrap_or_default();
            (
                s.holder_identity,
                s.renew_time.as_ref().map(ms),
                s.lease_transitions.unwrap_or(0),
                s.acquire_time,
            )
        }
        None => (None, None, 0, None),
    };
    let decision = match &current {
        None => Decision::Create,
        Some(_) => decide(holder.as_deref(), renewed, duration_s, me, ms(&now())),
    };
    let write = |spec: LeaseSpec| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            resource_version: current
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone()),
            ..Default::default()
        },
        spec: Some(spec),
    };
    let out = match decision {
        Decision::Wait(d) => return Ok(Err(d)),
        Decision::Create => {
            api.create(
                &PostParams::default(),
                &write(spec_for(me, duration_s, 0, None)),
            )
            .await
        }
        Decision::Renew => {
            api.replace(
                name,
                &PostParams::default(),
                &write(spec_for(me, duration_s, transitions, acquired)),
            )
            .await
        }
        Decision::Take => {
            api.replace(
                name,
                &PostParams::default(),
                &write(spec_for(me, duration_s, transitions + 1, None)),
            )
            .await
        }
    };
    match out {
        Ok(_) => Ok(Ok(())),
        // Someone else wrote first: read again.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Err(Duration::from_millis(500))),
        Err(e) => Err(e),
    }
}

/// Wait until we hold the Lease.
pub async fn acquire(api: &Api<Lease>, name: &str, me: &str, duration_s: i32) {
    loop {
        match round(api, name, me, duration_s).await {
            Ok(Ok(())) => return,
            Ok(Err(wait)) => tokio::time::sleep(wait).await,
            Err(e) => {
                tracing::warn!("leader election: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Keep renewing; returns when the Lease was lost, or could not be renewed within the
/// renew deadline (two thirds of the lease, measured from the last successful renewal's
/// request), after which this replica must stop: a standby takes over only once the whole
/// lease has passed, so the two never lead at once.
pub async fn hold(api: &Api<Lease>, name: &str, me: &str, duration_s: i32) -> String {
    let lease = Duration::from_secs(duration_s.max(3) as u64);
    let period = lease / 3;
    let deadline = lease * 2 / 3;
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let sent = std::time::Instant::now();
        let left = deadline.saturating_sub(last_ok.elapsed());
        match tokio::time::timeout(left, round(api, name, me, duration_s)).await {
            Ok(Ok(Ok(()))) => last_ok = sent,
            Ok(Ok(Err(_))) => return format!("lease {name} is held by another replica"),
            Ok(Err(_)) | Err(_) if last_ok.elapsed() >= deadline => {
                return format!(
                    "could not renew lease {name} within {}s",
                    deadline.as_secs()
                );
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}

/// Give the Lease up (the replica is stopping, its runs ended): the holder is cleared, so
/// a standby takes over at its next ask instead of after the whole lease. Only if we still
/// hold it; the write carries the read's resourceVersion.
pub async fn release(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.renew_time = Some(now());
    spec.acquire_time = None;
    lease.metadata.managed_fields = None;
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(Some("a"), Some(0), 15, "a", 1_000_000),
            Decision::Renew
        );
    }

    #[test]
    fn a_fresh_lease_of_another_replica_is_waited_for() {
        assert_eq!(
            decide(Some("b"), Some(10_000), 15, "a", 20_000),
            Decision::Wait(Duration::from_millis(5_000))
        );
        assert_eq!(
            decide(Some("b"), Some(10_000), 15, "a", 24_800),
            Decision::Wait(Duration::from_millis(200))
        );
    }

    #[test]
    fn an_expired_or_empty_lease_is_taken() {
        assert_eq!(
            decide(Some("b"), Some(10_000), 15, "a", 25_000),
            Decision::Take
        );
        assert_eq!(decide(None, None, 15, "a", 0), Decision::Take);
        assert_eq!(decide(Some(""), Some(0), 15, "a", 0), Decision::Take);
        assert_eq!(decide(Some("b"), None, 15, "a", 0), Decision::Take);
    }
}
