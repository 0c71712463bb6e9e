//! What every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use portcullis_core::TenantId;
use portcullis_core::password::PasswordHashing;
use portcullis_core::secrets::SecretHasher;
use portcullis_core::time_util::Clock;
use portcullis_store::{AuditSink, Store};

use crate::config::Config;
use crate::throttle::FailureThrottle;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub hasher: SecretHasher,
    pub audit: AuditSink,
    pub operator_tenant: TenantId,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub failures: FailureThrottle,
    pub metrics: PrometheusHandle,
    pub passwords: PasswordHashing,
    /// Seals secrets the server must read back (authenticator-app secrets).
    pub kek: Arc<portcullis_core::secrets::Kek>,
    /// Bounds concurrent password hashes: each takes tens of MiB and a core for tens of ms.
    pub password_permits: tokio::sync::Semaphore,
    /// Password sign-in failures per account (tenant + user name) and per source address.
    pub sign_in_accounts: crate::throttle::Backoff,
    pub sign_in_addresses: crate::throttle::Backoff,
    /// Attempts refused while throttled, summarised into the audit trail by the sweeper.
    pub throttled: crate::throttle::ThrottledAttempts,
    /// Workloads' token requests, summarised into the sign-in log by the sweeper.
    pub workload_sign_ins: crate::throttle::Tally<crate::conditional::WorkloadSignIn>,
    /// The WebAuthn relying party; `None` when the public URL's host is an IP address, where
    /// browsers refuse passkeys.
    pub relying_party: Option<portcullis_core::passkey::RelyingParty>,
    /// Passkey ceremonies started per source address: each stores a challenge until it expires.
    pub passkey_starts: FailureThrottle,
    /// Each tenant's current token signing key, opened once.
    pub signing_keys: crate::oauth::SigningKeys,
    pub token_caches: crate::oauth::TokenCaches,
    /// Outgoing calls to applications (back-channel logout): short timeouts, no redirects.
    pub http: reqwest::Client,
    /// Each tenant's authorization snapshot, kept current from the change feed.
    pub engines: crate::engine::Engines,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
