//! A software passkey for integration tests.
//!
//! [`SoftPasskey`] plays both the browser (the WebAuthn client) and a platform
//! authenticator, so a test can register a discoverable credential with the
//! server and sign in with it, without a real device or browser.
//!
//! The WebAuthn client rules (origin and RP ID checks, client data) and every
//! cryptographic step come from 1Password's independent `passkey-client` and
//! `passkey-authenticator` crates: this module only carries JSON across and
//! keeps the credentials between ceremonies.
//!
//! Needs `passkey-types` with its `serialize_bytes_as_base64_string` feature:
//! without it the answers carry byte arrays, not the base64url strings of
//! `PublicKeyCredential.toJSON()` that the server reads.
//!
//! Origins: use a host name (`http://localhost:PORT`); the client refuses IP
//! origins. For RP ID `localhost` passkey-client lets any named origin through,
//! so a test can present a foreign origin and check that the server refuses it.

use async_trait::async_trait;
use passkey_authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::{
    Passkey,
    ctap2::{
        Aaguid, Ctap2Error, StatusCode,
        make_credential::{Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity},
    },
    webauthn::{
        CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor,
    },
};
use serde_json::Value;
use url::Url;

/// One authenticator holding any number of credentials, for any RP ID.
///
/// Credentials keep a signature counter that goes up at every sign-in, as a
/// hardware key's does. `Clone` copies every private key and counter, which is
/// how a test simulates a cloned authenticator.
#[derive(Clone, Default)]
pub struct SoftPasskey {
    /// In creation order: a sign-in uses the newest one that matches.
    credentials: Vec<Passkey>,
}

type SoftAuthenticator = Authenticator<Keyring, Consent, RustCryptoBackend>;

impl SoftPasskey {
    /// An authenticator with no credentials yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers a registration: `options` is the server's JSON ({"publicKey": {...}}).
    ///
    /// Returns the `PublicKeyCredential.toJSON()` form a browser would send back.
    /// Fails, as an authenticator would, when it already holds a credential listed
    /// in `excludeCredentials`, and when passkey-client refuses the origin.
    pub async fn register(&mut self, origin: &str, options: &Value) -> Result<Value, String> {
        let request: CredentialCreationOptions = serde_json::from_value(options.clone())
            .map_err(|e| format!("unreadable creation options: {e}"))?;
        let origin = parse_origin(origin)?;
        let mut client = Client::new(self.take_authenticator()).allows_insecure_localhost(true);
        let result = client.register(&origin, request, DefaultClientData).await;
        self.put_back(client.authenticator_mut());
        let credential = result.map_err(|e| format!("registration refused: {e:?}"))?;
        serde_json::to_value(credential).map_err(|e| e.to_string())
    }

    /// Answers a sign-in ({"publicKey": {...}}) with a discoverable credential it holds.
    ///
    /// With an empty `allowCredentials` it uses the newest discoverable
    /// credential for the RP ID, and the answer carries its user handle.
    pub async fn sign_in(&mut self, origin: &str, options: &Value) -> Result<Value, String> {
        let request: CredentialRequestOptions = serde_json::from_value(options.clone())
            .map_err(|e| format!("unreadable request options: {e}"))?;
        let origin = parse_origin(origin)?;
        let mut client = Client::new(self.take_authenticator()).allows_insecure_localhost(true);
        let result = client
            .authenticate(&origin, request, DefaultClientData)
            .await;
        self.put_back(client.authenticator_mut());
        let credential = result.map_err(|e| format!("sign-in refused: {e:?}"))?;
        serde_json::to_value(credential).map_err(|e| e.to_string())
    }

    /// Moves the credentials into a fresh authenticator for one ceremony.
    fn take_authenticator(&mut self) -> SoftAuthenticator {
        let keyring = Keyring(std::mem::take(&mut self.credentials));
        let mut authenticator =
            Authenticator::new(Aaguid::default(), keyring, Consent, RustCryptoBackend);
        // Off by default in passkey-authenticator (synced passkeys keep 0); on here so
        // that a cloned authenticator is detectable by the server's counter check.
        authenticator.set_make_credentials_with_signature_counter(true);
        authenticator
    }

    /// Takes the credentials back, with any new one and updated counters.
    fn put_back(&mut self, authenticator: &mut SoftAuthenticator) {
        self.credentials = std::mem::take(&mut authenticator.store_mut().0);
    }
}

/// Parses the page origin, e.g. `http://localhost:8080` (a name, not an IP:
/// the WebAuthn client needs a domain to match the RP ID against).
fn parse_origin(origin: &str) -> Result<Url, String> {
    Url::parse(origin).map_err(|e| format!("bad origin {origin:?}: {e}"))
}

/// The authenticator's credential storage.
struct Keyring(Vec<Passkey>);

#[async_trait]
impl CredentialStore for Keyring {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let found: Vec<Passkey> = self
            .0
            .iter()
            .rev()
            .filter(|key| key.rp_id == rp_id)
            .filter(|key| match ids {
                Some(ids) => ids.iter().any(|d| d.id == key.credential_id),
                // Without an allow list only discoverable credentials are candidates.
                None => key.user_handle.is_some(),
            })
            .cloned()
            .collect();
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        credential: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        self.0.push(credential);
        Ok(())
    }

    async fn update_credential(&mut self, credential: &Passkey) -> Result<(), StatusCode> {
        let slot = self
            .0
            .iter_mut()
            .find(|key| key.credential_id == credential.credential_id)
            .ok_or(Ctap2Error::NoCredentials)?;
        *slot = credential.clone();
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        // Discoverable only when the RP asks for it, so a server that forgets
        // `residentKey: "required"` gets a credential it cannot sign in with.
        StoreInfo {
            discoverability: DiscoverabilitySupport::Full,
        }
    }
}

/// A user who is present, verified, and says yes, except to re-registering a
/// credential the RP listed in `excludeCredentials`.
struct Consent;

#[async_trait]
impl UserValidationMethod for Consent {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        // passkey-authenticator only reports the excluded credential through
        // this hint; refusing here is what a real authenticator does.
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck {
            presence,
            verification,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}
