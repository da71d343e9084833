//! Fleet mode (docs/fleet.md): the policy of many relays kept in etcd. Operators write
//! versions with a compare-and-swap (`geofence fleet apply`); each relay's daemon lists,
//! applies through the same code as `geofence apply`, reports its status and watches.
//! Enforcement is fail-static: nothing here runs unless etcd answered, so an outage leaves
//! the kernel exactly as the last applied version left it.

pub mod agent;
pub mod document;
pub mod history;
pub mod keys;
pub mod relay;
pub mod store;

use std::path::PathBuf;

use anyhow::Context as _;
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
    /// Connects (lazily: etcd-client dials on first use, so an unreachable etcd shows up
    /// as the first request's error, within the timeouts set here).
    pub async fn connect(&self) -> anyhow::Result<etcd_client::Client> {
        use std::time::Duration;
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if self.etcd_ca.is_some() || self.etcd_cert.is_some() {
            options = options.with_tls(self.tls()?);
        }
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .with_context(|| format!("connecting to etcd at {}", self.endpoints.join(",")))
    }

    fn tls(&self) -> anyhow::Result<etcd_client::TlsOptions> {
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.etcd_ca {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.etcd_cert, &self.etcd_key) {
            tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(tls)
    }
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
}
