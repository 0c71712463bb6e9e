//! Time-based one-time passwords (RFC 6238) for authenticator apps: 6 digits, 30-second steps,
//! HMAC-SHA1 (what every app supports), one step of clock skew either way, and each step usable
//! only once.

use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

use crate::secrets::{SecretError, random_bytes};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;

/// A key to type by hand, in groups of four characters, as authenticator apps show and accept
/// it (they ignore the spaces).
pub fn grouped(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which second factors a user has: what the help desk needs before a reset and what the user
/// sees of themselves. Never a secret or a code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaStatus {
    /// An authenticator app is set up (and confirmed).
    pub authenticator_app: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
    /// Passkeys registered (`GET /v1/users/{id}/passkeys` lists them).
    pub passkeys: usize,
}

/// A TOTP secret: 160 random bits, as RFC 4226 recommends.
pub struct TotpSecret(Zeroizing<[u8; 20]>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<Self, SecretError> {
        Ok(Self(random_bytes::<20>()?))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 20] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn totp(&self, issuer: &str, account: &str) -> Option<Totp> {
        // Colons separate issuer and account in the otpauth label; they cannot appear in either.
        let clean = |s: &str| s.replace(':', " ");
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(Secret::new(self.0.to_vec().into_boxed_slice()))
            .with_issuer(Some(clean(issuer)))
            .with_account_name(clean(account))
            .build()
            .ok()
    }

    /// The `otpauth://` URL an authenticator app scans, and the key to type by hand (base32).
    pub fn enrolment(&self, issuer: &str, account: &str) -> Option<(String, String)> {
        let totp = self.totp(issuer, account)?;
        let url = totp.to_url().ok()?;
        Some((
            url,
            Secret::new(self.0.to_vec().into_boxed_slice()).to_base32(),
        ))
    }

    /// The step the code belongs to, if it is right for `unix_time` (±1 step) and later than
    /// `last_used_step` — a code, once accepted, is never accepted again.
    pub fn check(&self, code: &str, unix_time: u64, last_used_step: Option<u64>) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let step = self.totp("", "x")?.check(&code, unix_time)?;
        last_used_step
            .is_none_or(|last| step > last)
            .then_some(step)
    }

    #[cfg(test)]
    fn code_at(&self, unix_time: u64) -> String {
        self.totp("", "x")
            .map(|t| t.generate(unix_time).to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_grouped_in_fours() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
        assert_eq!(grouped(""), "");
    }

    #[test]
    fn rfc_6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 → 94287082 (8 digits);
        // its last 6 digits are the 6-digit code.
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        assert_eq!(secret.code_at(59), "287082");
        assert_eq!(secret.code_at(1_111_111_109), "081804");
    }

    #[test]
    fn a_code_is_good_one_step_either_way_and_only_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_800_000_000;
        let code = secret.code_at(now);
        let step = secret.check(&code, now, None).unwrap();
        assert_eq!(step, now / STEP_SECONDS);
        assert_eq!(
            secret.check(&code, now + STEP_SECONDS, None),
            Some(step),
            "a late code"
        );
        assert_eq!(
            secret.check(&code, now - STEP_SECONDS, None),
            Some(step),
            "an early code"
        );
        assert_eq!(
            secret.check(&code, now + 3 * STEP_SECONDS, None),
            None,
            "too late"
        );
        assert_eq!(secret.check(&code, now, Some(step)), None, "replayed");
        let previous = secret.code_at(now - STEP_SECONDS);
        assert_eq!(
            secret.check(&previous, now, Some(step)),
            None,
            "older than the last used"
        );
        assert_eq!(secret.check(" 12 34 5x", now, None), None);
        assert_eq!(secret.check("", now, None), None);
    }

    #[test]
    fn enrolment_gives_an_otpauth_url_and_a_manual_key() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let (url, key) = secret
            .enrolment("Portcullis (acme)", "ada:lovelace")
            .unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(
            url.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{url}"
        );
        assert_eq!(key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
