//! Passkeys (WebAuthn): the relying party's half of registering a credential and signing in
//! with it. The ceremonies and their cryptography are webauthn-rs's; this module fixes our
//! choices — discoverable credentials, user verification always required, one relying party per
//! public host — and hands everything that crosses the store or the wire over as plain strings
//! and JSON, so neither the store nor the HTTP layer depends on WebAuthn types.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::ValidationError;
use crate::ids::{PasskeyId, UserId};
use time::OffsetDateTime;

/// How long a browser has to answer a ceremony; its stored state expires with it.
pub const CEREMONY_SECONDS: i64 = 300;
const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error(
        "passkeys need a public URL whose host is a name such as localhost, not an IP address ({0})"
    )]
    Unavailable(String),
    #[error("the browser's answer is not a WebAuthn credential: {0}")]
    Malformed(String),
    #[error("the passkey was refused: {0}")]
    Refused(String),
    #[error("stored passkey data cannot be read: {0}")]
    Corrupt(String),
}

/// The relying party every tenant of this server shares: tenants live under one host, and a
/// passkey is bound to a host. A passkey still signs in only to the tenant that registered it.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    webauthn: Webauthn,
}

/// One started ceremony: `options` go to the browser; `state` stays on the server until the
/// answer comes back, and is used once.
#[derive(Debug)]
pub struct Ceremony {
    pub options: Value,
    pub state: String,
}

/// A freshly registered passkey: its id (base64url) and what is stored to verify it later.
#[derive(Debug)]
pub struct NewPasskey {
    pub credential_id: String,
    pub credential: String,
}

/// A passkey as its owner and administrators see it (never the key material).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeySummary {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A browser's sign-in answer, parsed, before it is verified.
#[derive(Debug)]
pub struct Assertion(PublicKeyCredential);

impl Assertion {
    pub fn parse(json: &str) -> Result<Self, PasskeyError> {
        serde_json::from_str(json)
            .map(Assertion)
            .map_err(|e| PasskeyError::Malformed(e.to_string()))
    }

    /// The credential the browser says it used: the key to look the passkey up by. The user
    /// handle beside it is not signed, so it never decides whose passkey this is.
    pub fn credential_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.get_credential_id())
    }

    /// The user handle the authenticator returned, if any and if it is one of ours.
    pub fn user_handle(&self) -> Option<Uuid> {
        self.0
            .get_user_unique_id()
            .and_then(|b| Uuid::from_slice(b).ok())
    }
}

/// Validates the name a user gives a passkey ("Work laptop").
pub fn parse_passkey_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ValidationError::new(
            "name",
            "must not be empty: name the device, e.g. \"Work laptop\"",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

impl RelyingParty {
    /// The relying party of the server reached at `public_url`; its id is the URL's host.
    pub fn new(public_url: &str) -> Result<Self, PasskeyError> {
        let origin =
            Url::parse(public_url).map_err(|_| PasskeyError::Unavailable(public_url.into()))?;
        let host = origin
            .domain()
            .ok_or_else(|| PasskeyError::Unavailable(public_url.into()))?
            .to_owned();
        let webauthn = WebauthnBuilder::new(&host, &origin)
            .and_then(|b| b.rp_name("Portcullis").build())
            .map_err(|_| PasskeyError::Unavailable(public_url.into()))?;
        Ok(Self { webauthn })
    }

    /// Starts registering a discoverable passkey for `user`, refusing the ones they hold.
    pub fn start_registration(
        &self,
        user: UserId,
        user_name: &str,
        display_name: &str,
        existing: &[String],
    ) -> Result<Ceremony, PasskeyError> {
        let exclude = existing
            .iter()
            .map(|id| {
                URL_SAFE_NO_PAD
                    .decode(id)
                    .map_err(|e| PasskeyError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<CredentialID>, _>>()?;
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user.as_uuid(), user_name, display_name, Some(exclude))
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        // Passwordless sign-in finds the account from the credential, so the credential must
        // live on the authenticator (be discoverable).
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok(Ceremony {
            options: to_json(&options)?,
            state: serde_json::to_string(&state)
                .map_err(|e| PasskeyError::Corrupt(e.to_string()))?,
        })
    }

    /// Verifies the browser's registration answer against the stored state.
    pub fn finish_registration(
        &self,
        response: &str,
        state: &str,
    ) -> Result<NewPasskey, PasskeyError> {
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let state: PasskeyRegistration =
            serde_json::from_str(state).map_err(|e| PasskeyError::Corrupt(e.to_string()))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        Ok(NewPasskey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice()),
            credential: serde_json::to_string(&passkey)
                .map_err(|e| PasskeyError::Corrupt(e.to_string()))?,
        })
    }

    /// Starts a sign-in with whichever of its passkeys for this host the person picks.
    pub fn start_sign_in(&self) -> Result<Ceremony, PasskeyError> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        // A button press asks at once; autofill-style (conditional) mediation is the page's
        // choice, not the server's.
        options.mediation = None;
        Ok(Ceremony {
            options: to_json(&options)?,
            state: serde_json::to_string(&state)
                .map_err(|e| PasskeyError::Corrupt(e.to_string()))?,
        })
    }

    /// Verifies a sign-in answer with the stored passkey it names. Returns the passkey to store
    /// back when its signature counter or backup state moved, `None` when nothing changed.
    pub fn finish_sign_in(
        &self,
        assertion: &Assertion,
        state: &str,
        credential: &str,
    ) -> Result<Option<String>, PasskeyError> {
        let state: DiscoverableAuthentication =
            serde_json::from_str(state).map_err(|e| PasskeyError::Corrupt(e.to_string()))?;
        let mut passkey: Passkey =
            serde_json::from_str(credential).map_err(|e| PasskeyError::Corrupt(e.to_string()))?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&assertion.0, state, &passkey)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        if passkey.update_credential(&result) == Some(true) {
            serde_json::to_string(&passkey)
                .map(Some)
                .map_err(|e| PasskeyError::Corrupt(e.to_string()))
        } else {
            Ok(None)
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, PasskeyError> {
    serde_json::to_value(value).map_err(|e| PasskeyError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_host_name() {
        assert!(RelyingParty::new("http://localhost:8080").is_ok());
        assert!(RelyingParty::new("https://id.example.com").is_ok());
        assert!(matches!(
            RelyingParty::new("http://127.0.0.1:8080"),
            Err(PasskeyError::Unavailable(_))
        ));
        assert!(RelyingParty::new("not a url").is_err());
    }

    #[test]
    fn registration_asks_for_a_discoverable_verified_credential() {
        let rp = RelyingParty::new("https://id.example.com").unwrap();
        let user = UserId::generate();
        let existing = vec![URL_SAFE_NO_PAD.encode([7u8; 16])];
        let ceremony = rp
            .start_registration(user, "ada", "Ada", &existing)
            .unwrap();
        let options = &ceremony.options["publicKey"];
        assert_eq!(options["rp"]["id"], "id.example.com");
        let selection = &options["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["excludeCredentials"][0]["id"], existing[0]);
        assert_eq!(
            options["user"]["id"],
            URL_SAFE_NO_PAD.encode(user.as_uuid().as_bytes())
        );
        // The state round-trips through its stored form.
        let answer = r#"{"id":"AA","rawId":"AA","type":"public-key","response":{"attestationObject":"AA","clientDataJSON":"AA"},"extensions":{}}"#;
        assert!(matches!(
            rp.finish_registration(answer, &ceremony.state),
            Err(PasskeyError::Refused(_))
        ));
        assert!(matches!(
            rp.finish_registration("{", &ceremony.state),
            Err(PasskeyError::Malformed(_))
        ));
    }

    #[test]
    fn sign_in_is_modal_and_discoverable() {
        let rp = RelyingParty::new("https://id.example.com").unwrap();
        let ceremony = rp.start_sign_in().unwrap();
        assert!(ceremony.options.get("mediation").is_none());
        let options = &ceremony.options["publicKey"];
        assert_eq!(options["userVerification"], "required");
        assert!(
            options["allowCredentials"]
                .as_array()
                .is_none_or(|a| a.is_empty())
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(parse_passkey_name("  Work laptop ").unwrap(), "Work laptop");
        assert!(parse_passkey_name("   ").is_err());
        assert!(parse_passkey_name(&"x".repeat(65)).is_err());
        assert!(parse_passkey_name("a\u{7}b").is_err());
    }
}
