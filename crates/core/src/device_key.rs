//! Registered devices. A device keeps a P-256 key pair (in a platform key store, a TPM, the
//! Secure Enclave or a browser's non-extractable WebCrypto key); its public half is registered
//! for a user, and at each sign-in the device signs a short proof with the private half. The
//! proof names this server's tenant (`aud`), is bound to the sign-in it was made for (`bind`:
//! the sign-in form's anti-forgery token, itself tied to the browser) and is fresh (`iat`), so a
//! proof seen once is worth nothing elsewhere or later. Conditional access then knows the
//! request comes from that device, and whether an administrator or an MDM marked it compliant.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::conditional::{DeviceState, Platform};
use crate::{RegisteredDeviceId, UserId, ValidationError};

/// The most devices one user may register.
pub const MAX_DEVICES_PER_USER: usize = 10;

/// A device registered for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredDevice {
    pub id: RegisteredDeviceId,
    pub user_id: UserId,
    /// What the person called it ("Ada's laptop").
    pub name: String,
    /// The operating system it was registered as; conditional access believes this over the
    /// browser's `User-Agent` once the device proves itself.
    pub platform: Platform,
    /// Marked by an administrator or an MDM: only then does a `compliant_device` control pass.
    pub compliant: bool,
    /// Why it is (or is not) compliant, as its marker said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_note: Option<String>,
    /// The RFC 7638 thumbprint of its public key.
    pub key_thumbprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// Its last proven sign-in.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
}

/// The `typ` of a device proof.
pub const PROOF_TYPE: &str = "device-proof+jwt";
/// How far a proof's `iat` may be from the server's clock.
pub const PROOF_LEEWAY: Duration = Duration::minutes(5);

/// What a device proof says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The tenant's issuer URL.
    pub aud: String,
    /// When the device signed it (Unix seconds).
    pub iat: i64,
    /// The value the proof is bound to: the sign-in form's anti-forgery token.
    pub bind: String,
}

impl RegisteredDevice {
    /// What conditional access sees of a request this device proved it made.
    pub fn state(&self) -> DeviceState {
        if self.compliant {
            DeviceState::Compliant
        } else {
            DeviceState::Registered
        }
    }
}

/// Why a device proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the device proof is not a JWS with an ES256 public key in its header")]
    Malformed,
    #[error("the device proof's type must be {PROOF_TYPE}")]
    WrongType,
    #[error("the device proof's signature, audience or binding does not match")]
    Invalid,
    #[error("the device proof was made too long ago, or in the future")]
    Stale,
}

/// A device's public key as registered: a P-256 JWK with no private part. Returns the key and
/// its RFC 7638 thumbprint, by which proofs find it.
pub fn registered_key(key: &serde_json::Value) -> Result<(Jwk, String), ValidationError> {
    let invalid = |why: &str| ValidationError::new("public_key", why);
    if key.get("d").is_some() {
        return Err(invalid(
            "holds a private key: send only the public half; the private one never leaves the device",
        ));
    }
    let jwk: Jwk = serde_json::from_value(key.clone())
        .map_err(|_| invalid("must be a JSON Web Key (RFC 7517)"))?;
    p256_thumbprint(&jwk)
        .map(|thumbprint| (jwk, thumbprint))
        .ok_or_else(|| {
            invalid("must be an EC key on P-256 (kty EC, crv P-256), as ES256 signs with")
        })
}

fn p256_thumbprint(jwk: &Jwk) -> Option<String> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            jwk.thumbprint(ThumbprintHash::SHA256).ok()
        }
        _ => None,
    }
}

/// Checks a device proof for `audience`, bound to `binding`, at `now`. Returns the thumbprint
/// of the key that signed it: the caller looks the device up by it.
pub fn verify_proof(
    proof: &str,
    audience: &str,
    binding: &str,
    now: OffsetDateTime,
) -> Result<String, ProofError> {
    let header = decode_header(proof).map_err(|_| ProofError::Malformed)?;
    if header.typ.as_deref() != Some(PROOF_TYPE) {
        return Err(ProofError::WrongType);
    }
    let jwk = header.jwk.ok_or(ProofError::Malformed)?;
    if header.alg != Algorithm::ES256 {
        return Err(ProofError::Malformed);
    }
    let thumbprint = p256_thumbprint(&jwk).ok_or(ProofError::Malformed)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Malformed)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["aud"]);
    validation.validate_exp = false;
    let claims = decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|_| ProofError::Invalid)?
        .claims;
    // The binding is the form's anti-forgery token: compared in constant time as any token.
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        claims.bind.as_bytes(),
        binding.as_bytes(),
    )) {
        return Err(ProofError::Invalid);
    }
    let age = now.unix_timestamp() - claims.iat;
    if age.abs() > PROOF_LEEWAY.whole_seconds() {
        return Err(ProofError::Stale);
    }
    Ok(thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const AUDIENCE: &str = "https://id.example.com/t/acme";

    fn device() -> (serde_json::Value, EncodingKey) {
        let generated = crate::jose::generate_es256().unwrap();
        let key = EncodingKey::from_ec_der(&generated.private_pkcs8);
        (generated.public_jwk, key)
    }

    fn proof(
        public: &serde_json::Value,
        key: &EncodingKey,
        claims: &ProofClaims,
        typ: &str,
    ) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.into());
        header.jwk = serde_json::from_value(public.clone()).ok();
        encode(&header, claims, key).unwrap()
    }

    fn claims(at: OffsetDateTime) -> ProofClaims {
        ProofClaims {
            aud: AUDIENCE.into(),
            iat: at.unix_timestamp(),
            bind: "csrf-value".into(),
        }
    }

    #[test]
    fn a_fresh_proof_names_its_registered_key() {
        let (public, key) = device();
        let (_, registered) = registered_key(&public).unwrap();
        let now = OffsetDateTime::now_utc();
        let made = proof(&public, &key, &claims(now), PROOF_TYPE);
        assert_eq!(
            verify_proof(&made, AUDIENCE, "csrf-value", now),
            Ok(registered)
        );
    }

    #[test]
    fn proofs_for_elsewhere_for_another_sign_in_or_too_old_are_refused() {
        let (public, key) = device();
        let now = OffsetDateTime::now_utc();
        let made = proof(&public, &key, &claims(now), PROOF_TYPE);
        assert_eq!(
            verify_proof(&made, "https://id.example.com/t/other", "csrf-value", now),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            verify_proof(&made, AUDIENCE, "another-sign-in", now),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            verify_proof(&made, AUDIENCE, "csrf-value", now + Duration::minutes(6)),
            Err(ProofError::Stale)
        );
        let typed = proof(&public, &key, &claims(now), "JWT");
        assert_eq!(
            verify_proof(&typed, AUDIENCE, "csrf-value", now),
            Err(ProofError::WrongType)
        );
        assert_eq!(
            verify_proof("not.a.proof", AUDIENCE, "csrf-value", now),
            Err(ProofError::Malformed)
        );
    }

    #[test]
    fn a_proof_signed_by_another_key_than_its_header_names_is_refused() {
        let (public, _) = device();
        let (_, other_key) = device();
        let now = OffsetDateTime::now_utc();
        let forged = proof(&public, &other_key, &claims(now), PROOF_TYPE);
        assert_eq!(
            verify_proof(&forged, AUDIENCE, "csrf-value", now),
            Err(ProofError::Invalid)
        );
    }

    #[test]
    fn only_public_p256_keys_register() {
        let (public, _) = device();
        let mut private = public.clone();
        private["d"] = serde_json::json!("AAAA");
        assert!(
            registered_key(&private)
                .unwrap_err()
                .message
                .contains("private")
        );
        let mut p384 = public.clone();
        p384["crv"] = serde_json::json!("P-384");
        assert!(registered_key(&p384).is_err());
        assert!(registered_key(&serde_json::json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(registered_key(&serde_json::json!("a string")).is_err());
    }
}
