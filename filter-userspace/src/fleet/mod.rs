//! Fleet mode (docs/fleet.md): the policy of many relays kept in etcd. Operators write
//! versions with a compare-and-swap (`geofence fleet apply`); each relay's daemon lists,
//! applies through the same code as `geofence apply`, reports its status and watches.
//! Enforcement is fail-static: nothing here runs unless etcd answered, so an outage leaves
//! the kernel exactly as the last applied version left it.

pub mod agent;
pub mod connection;
pub mod counters;
pub mod document;
pub mod history;
pub mod keys;
pub mod relay;
pub mod report;
pub mod store;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How to reach etcd: shared by every `fleet` command and the daemon.
#[derive(Args, Debug, Clone)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated.
    #[arg(
        long = "etcd",
        value_name = "URL[,URL]",
        env = "GEOFENCE_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        global = true
    )]
    pub endpoints: Vec<String>,
    /// CA certificate (PEM) that signed etcd's server certificate.
    #[arg(long, value_name = "FILE", global = true)]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM); its CN is the etcd user (a relay's name, or an operator).
    #[arg(long, value_name = "FILE", requires = "etcd_key", global = true)]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert", global = true)]
    pub etcd_key: Option<PathBuf>,
}

impl EtcdArgs {
    /// Connects to the first endpoint that answers, trying them from a place that
    /// depends on the process id: relays spread over the members, and a member that is
    /// down is passed over (etcd-client's balancing would send some requests to it).
    pub async fn connect(&self) -> anyhow::Result<etcd_client::Client> {
        use std::time::Duration;
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some(tls) = self.tls()? {
            options = options.with_tls(tls);
        }
        if self.endpoints.is_empty() {
            bail!("--etcd: no endpoint given");
        }
        let start = std::process::id() as usize % self.endpoints.len();
        let mut failures = Vec::new();
        for i in 0..self.endpoints.len() {
            let url = &self.endpoints[(start + i) % self.endpoints.len()];
            match probe(url, options.clone()).await {
                Ok(client) => return Ok(client),
                Err(e) => failures.push(format!("{url}: {e:#}")),
            }
        }
        bail!("no etcd endpoint answered: {}", failures.join("; "))
    }

    /// `e` with what a TLS failure means for whoever reads it, when it is one: rustls names
    /// only the alert etcd sent (`BadCertificate` for a missing or untrusted client
    /// certificate) or, under TLS 1.3, sees the connection closed after its handshake.
    pub fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        let text = format!("{e:#}");
        let https = self.endpoints.iter().any(|u| u.starts_with("https://"));
        let refused = [
            "BadCertificate",
            "CertificateRequired",
            "UnknownCA",
            "UnknownCa",
        ];
        let closed = ["connection closed", "operation was canceled", "broken pipe"];
        let hint = if refused.iter().any(|alert| text.contains(alert)) {
            "etcd refused this client's certificate: give --etcd-cert and --etcd-key, a \
             certificate signed by a CA etcd trusts (its --trusted-ca-file)"
        } else if text.contains("invalid peer certificate") {
            "etcd's server certificate is not trusted: it must be signed by --etcd-ca and \
             name the host or address given in --etcd"
        } else if https && closed.iter().any(|c| text.contains(c)) {
            "etcd closed the connection: if it checks client certificates, give --etcd-cert \
             and --etcd-key, a certificate signed by a CA etcd trusts"
        } else {
            return e;
        };
        e.context(hint)
    }

    /// The TLS settings, checked against the URLs before anything is dialled: etcd-client
    /// would otherwise refuse with a message that names neither the flag nor the URL.
    fn tls(&self) -> anyhow::Result<Option<etcd_client::TlsOptions>> {
        let tls_flags = self.etcd_ca.is_some() || self.etcd_cert.is_some();
        for url in &self.endpoints {
            let https = url.starts_with("https://");
            if https && self.etcd_ca.is_none() {
                bail!(
                    "--etcd {url}: an https URL needs --etcd-ca, the CA certificate that \
                     signed etcd's server certificate"
                );
            }
            if url.starts_with("http://") && tls_flags {
                bail!("--etcd {url}: --etcd-ca and --etcd-cert need https:// URLs");
            }
        }
        if !tls_flags {
            return Ok(None);
        }
        let read = |flag: &str, p: &PathBuf, kind: &str| -> anyhow::Result<Vec<u8>> {
            let bytes = std::fs::read(p).with_context(|| format!("{flag} {}", p.display()))?;
            if !String::from_utf8_lossy(&bytes).contains(kind) {
                let what = kind.trim_end_matches('-');
                bail!("{flag} {}: not a PEM file holding a {what}", p.display());
            }
            Ok(bytes)
        };
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.etcd_ca {
            let pem = read("--etcd-ca", ca, "CERTIFICATE-----")?;
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&self.etcd_cert, &self.etcd_key) {
            let cert = read("--etcd-cert", cert, "CERTIFICATE-----")?;
            let key = read("--etcd-key", key, "PRIVATE KEY-----")?;
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        Ok(Some(tls))
    }
}

/// A client of `url` once it answered a read that every fleet role may make (the policy's
/// key count): etcd-client dials lazily, so this is where an endpoint proves alive.
async fn probe(
    url: &str,
    options: etcd_client::ConnectOptions,
) -> anyhow::Result<etcd_client::Client> {
    let mut client = etcd_client::Client::connect([url], Some(options)).await?;
    client
        .get(
            keys::POLICY,
            Some(etcd_client::GetOptions::new().with_count_only()),
        )
        .await?;
    Ok(client)
}

/// A relay's status key: written when it changes, without a lease, so that the last word
/// of a relay that died stays readable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayStatus {
    pub relay: String,
    /// The fleet version enforced (0: none yet).
    pub version: u64,
    /// That version's document hash.
    pub policy_hash: Option<String>,
    /// The etcd mod revision of `/geofence/policy` that version was read at.
    pub revision: i64,
    /// SHA-256 of the rules and table the relay enforces: equal on relays that enforce the
    /// same version with the same meetings.
    pub enforced_hash: Option<String>,
    pub applied: Option<Timestamp>,
    /// From reading the version to the local commit, in milliseconds.
    pub took_ms: Option<u64>,
    /// Meetings the version names that this relay does not have (yet).
    #[serde(default)]
    pub waiting: Vec<String>,
    /// Why the latest version read is not enforced (e.g. a territory table mismatch).
    pub error: Option<String>,
    pub updated: Option<Timestamp>,
    /// Per-rule counts and sketches (docs/fleet.md, "Counters in the status key").
    pub counters: Option<counters::Counters>,
    /// Why the counters were not read at the last try; `counters` keeps the last read.
    pub counters_error: Option<String>,
    /// The last entry of the relay's local audit trail.
    pub audit_head: Option<counters::AuditHead>,
}
