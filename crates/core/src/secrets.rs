//! Secret primitives: server-generated API keys, the keyed hash that protects them at rest, and
//! the key-encryption key (KEK) that protects server secrets which must be recoverable.
//!
//! A server-generated key carries 256 random bits, so a fast keyed hash (HMAC-SHA-256 under a
//! server pepper) is as strong as a slow KDF and keeps authentication off the CPU's critical
//! path. Nothing here ever formats a secret into `Debug` output.

use aws_lc_rs::{aead, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

const API_KEY_TAG: &str = "pcs";
const PREFIX_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
pub const KEK_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("a key-encryption key must be {KEK_BYTES} bytes, base64 encoded")]
    BadKek,
    #[error(
        "the value could not be decrypted with this key-encryption key (wrong KEK, or the value was altered)"
    )]
    Decrypt,
}

pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, SecretError> {
    let mut out = Zeroizing::new([0u8; N]);
    rand::fill(out.as_mut()).map_err(|_| SecretError::Random)?;
    Ok(out)
}

/// A freshly generated API key. The full value is shown to its owner once; only `prefix` and
/// the keyed hash of the secret are kept.
pub struct GeneratedApiKey {
    /// Public identifier, `pcs_<16 hex>`: safe to display, log and search for.
    pub prefix: String,
    /// The whole key to hand to the client: `<prefix>_<secret>`.
    pub full: SecretString,
    secret: Zeroizing<Vec<u8>>,
}

impl GeneratedApiKey {
    pub fn generate() -> Result<Self, SecretError> {
        let prefix = format!(
            "{API_KEY_TAG}_{}",
            hex::encode(*random_bytes::<PREFIX_BYTES>()?)
        );
        let secret = random_bytes::<SECRET_BYTES>()?;
        let full = SecretString::from(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(*secret)));
        Ok(Self {
            prefix,
            full,
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    pub fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }
}

/// An API key as presented by a client, split into its public prefix and its secret.
pub struct PresentedApiKey {
    pub prefix: String,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresentedApiKey({}_***)", self.prefix)
    }
}

impl PresentedApiKey {
    /// Parses `pcs_<16 hex>_<43 base64url>`. Anything else is not one of our keys.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(API_KEY_TAG)?.strip_prefix('_')?;
        let (id, secret) = rest.split_at_checked(PREFIX_BYTES * 2)?;
        let secret = secret.strip_prefix('_')?;
        if !id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.decode(secret).ok()?);
        if secret.len() != SECRET_BYTES {
            return None;
        }
        Some(Self {
            prefix: format!("{API_KEY_TAG}_{id}"),
            secret,
        })
    }

    pub fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }
}

/// Hashes server-generated secrets under a server-wide pepper (itself kept encrypted under the
/// KEK), so a stolen database alone cannot be used to test guesses.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(***)")
    }
}

impl SecretHasher {
    pub fn new(pepper: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, pepper),
        }
    }

    pub fn hash(&self, secret: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, secret).as_ref().to_vec()
    }

    /// Constant-time comparison of a presented secret against a stored hash.
    pub fn verify(&self, secret: &[u8], stored_hash: &[u8]) -> bool {
        hmac::verify(&self.key, secret, stored_hash).is_ok()
    }
}

/// The key-encryption key. It never enters the database; values encrypted under it are bound
/// to their purpose (the `context`), so a ciphertext cannot be swapped for another.
pub struct Kek {
    key: aead::LessSafeKey,
    /// First bytes of a keyed hash of the KEK: tells an operator *which* KEK a database expects
    /// without revealing it.
    fingerprint: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek(fingerprint={})", self.fingerprint)
    }
}

impl Kek {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() != KEK_BYTES {
            return Err(SecretError::BadKek);
        }
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, bytes).map_err(|_| SecretError::BadKek)?;
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"portcullis kek fingerprint",
        );
        Ok(Self {
            key: aead::LessSafeKey::new(unbound),
            fingerprint: hex::encode(&tag.as_ref()[..8]),
        })
    }

    /// Parses the base64 form used in `PORTCULLIS_KEK` and key files (surrounding whitespace ignored).
    pub fn from_base64(text: &SecretString) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.expose_secret().trim())
                .map_err(|_| SecretError::BadKek)?,
        );
        Self::from_bytes(&bytes)
    }

    /// A new random KEK in its base64 form.
    pub fn generate_base64() -> Result<SecretString, SecretError> {
        let bytes = random_bytes::<KEK_BYTES>()?;
        Ok(SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(*bytes),
        ))
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Encrypts with AES-256-GCM under a fresh random nonce: `nonce || ciphertext || tag`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce_bytes = random_bytes::<NONCE_BYTES>()?;
        let nonce = aead::Nonce::assume_unique_for_key(*nonce_bytes);
        let mut out =
            Vec::with_capacity(NONCE_BYTES + plaintext.len() + aead::AES_256_GCM.tag_len());
        out.extend_from_slice(nonce_bytes.as_ref());
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(nonce, aead::Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SecretError::Random)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<SecretBox<Vec<u8>>, SecretError> {
        let (nonce, body) = sealed
            .split_at_checked(NONCE_BYTES)
            .ok_or(SecretError::Decrypt)?;
        let nonce =
            aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Decrypt)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SecretError::Decrypt)?
            .to_vec();
        zeroize::Zeroize::zeroize(&mut body);
        Ok(SecretBox::new(Box::new(plain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_key_parses_and_verifies() {
        let hasher = SecretHasher::new(b"pepper");
        let key = GeneratedApiKey::generate().unwrap();
        let stored = hasher.hash(key.secret_bytes());
        let presented = PresentedApiKey::parse(key.full.expose_secret()).unwrap();
        assert_eq!(presented.prefix, key.prefix);
        assert!(hasher.verify(presented.secret_bytes(), &stored));
        // Another pepper, another key: no match.
        assert!(!SecretHasher::new(b"other").verify(presented.secret_bytes(), &stored));
        let other = GeneratedApiKey::generate().unwrap();
        assert!(!hasher.verify(other.secret_bytes(), &stored));
        assert!(!format!("{presented:?}").contains(&key.full.expose_secret()[22..]));
    }

    #[test]
    fn malformed_keys_are_not_keys() {
        let key = GeneratedApiKey::generate().unwrap();
        let full = key.full.expose_secret();
        for bad in [
            "",
            "pcs_",
            &full[..full.len() - 1],
            &format!("{full}A"),
            &full.replacen("pcs_", "pcx_", 1),
            &full.to_uppercase(),
        ] {
            assert!(PresentedApiKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn kek_round_trip_is_bound_to_context() {
        let kek = Kek::from_base64(&Kek::generate_base64().unwrap()).unwrap();
        let sealed = kek.seal("api-key-pepper", b"value").unwrap();
        assert_eq!(
            kek.open("api-key-pepper", &sealed)
                .unwrap()
                .expose_secret()
                .as_slice(),
            b"value"
        );
        assert_eq!(
            kek.open("other", &sealed).unwrap_err(),
            SecretError::Decrypt
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            kek.open("api-key-pepper", &tampered).unwrap_err(),
            SecretError::Decrypt
        );
        let other = Kek::from_base64(&Kek::generate_base64().unwrap()).unwrap();
        assert_eq!(
            other.open("api-key-pepper", &sealed).unwrap_err(),
            SecretError::Decrypt
        );
        assert_ne!(other.fingerprint(), kek.fingerprint());
    }

    #[test]
    fn bad_kek_text_is_refused() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            assert_eq!(
                Kek::from_base64(&SecretString::from(bad)).unwrap_err(),
                SecretError::BadKek
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in ".{0,120}") {
            let _ = PresentedApiKey::parse(&raw);
        }
    }
}
