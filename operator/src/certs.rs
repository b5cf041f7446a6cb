//! Certificates for the controller ↔ agent mTLS: one CA, a client certificate for the
//! controller and a server certificate for the agents. The Helm chart makes the same set
//! (Sprig or cert-manager); `murphy-operator certs --out DIR` makes it for running outside
//! a cluster, and the tests make throwaway ones.
//!
//! Agents are reached by pod IP, which no certificate can name in advance, so the agent's
//! certificate names one DNS name (default `murphy-agent`) and the controller verifies that
//! name whatever address it dialled.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::Path;

/// PEM files of one party: the CA it trusts, its certificate and its key.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A CA with a controller (client) and an agent (server) certificate.
#[derive(Clone, Debug)]
pub struct Set {
    pub ca_cert: String,
    pub ca_key: String,
    pub controller: Bundle,
    pub agent: Bundle,
}

/// Make a CA named `ca_name`, a client certificate for `controller_name` and a server
/// certificate for `agent_name` (its DNS name), valid for `days`.
pub fn generate(
    ca_name: &str,
    controller_name: &str,
    agent_name: &str,
    days: u32,
) -> Result<Set, rcgen::Error> {
    generate_with(ca_name, controller_name, agent_name, days, false)
}

/// [`generate`], optionally giving the agent's certificate client-auth use too (as Helm's
/// Sprig `genSignedCert` does; the agent refuses calls made with its own certificate).
pub fn generate_with(
    ca_name: &str,
    controller_name: &str,
    agent_name: &str,
    days: u32,
    agent_also_client: bool,
) -> Result<Set, rcgen::Error> {
    generate_with_clients(
        ca_name,
        controller_name,
        agent_name,
        days,
        agent_also_client,
        &[],
    )
    .map(|(set, _)| set)
}

/// [`generate_with`], and a client certificate signed by the same CA for each of
/// `others` (as someone holding the CA could make: agents refuse them by their name).
pub fn generate_with_clients(
    ca_name: &str,
    controller_name: &str,
    agent_name: &str,
    days: u32,
    agent_also_client: bool,
    others: &[&str],
) -> Result<(Set, Vec<Bundle>), rcgen::Error> {
    let now = time_now();
    let until = now + std::time::Duration::from_secs(u64::from(days) * 86_400);
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now.into();
    ca.not_after = until.into();
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;
    let leaf = |cn: &str, dns: Vec<String>, usage: Vec<ExtendedKeyUsagePurpose>| {
        let mut p = CertificateParams::new(dns)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = usage;
        p.not_before = now.into();
        p.not_after = until.into();
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        Ok::<_, rcgen::Error>(Bundle {
            ca: issuer.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    };
    // Its name as a DNS SAN too: agents authorize calls by it.
    let controller = leaf(
        controller_name,
        vec![controller_name.to_string()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    let agent = leaf(
        agent_name,
        vec![agent_name.to_string()],
        if agent_also_client {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        },
    )?;
    let others = others
        .iter()
        .map(|n| {
            leaf(
                n,
                vec![n.to_string()],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Set {
            ca_cert: issuer.pem(),
            ca_key: ca_key_pem,
            controller,
            agent,
        },
        others,
    ))
}

fn time_now() -> std::time::SystemTime {
    // A minute of slack for clocks that differ between machines.
    std::time::SystemTime::now() - std::time::Duration::from_secs(60)
}

impl Bundle {
    /// Write `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`: the layout of a
    /// Kubernetes TLS secret mounted as files, which both binaries read with `--tls-dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.crt"), &self.ca)?;
        std::fs::write(dir.join("tls.crt"), &self.cert)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("tls.key"))?;
        std::io::Write::write_all(&mut f, self.key.as_bytes())
    }

    /// Read what [`Bundle::write`] wrote (or a mounted TLS secret), naming the missing file.
    pub fn read(dir: &Path) -> Result<Bundle, String> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map_err(|e| format!("reading {}: {e}", dir.join(f).display()))
        };
        Ok(Bundle {
            ca: read("ca.crt")?,
            cert: read("tls.crt")?,
            key: read("tls.key")?,
        })
    }
}
