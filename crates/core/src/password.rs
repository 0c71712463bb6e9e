//! Passwords: the tenant's policy (length and a strength estimate, no composition rules, as NIST
//! SP 800-63B advises) and Argon2id hashing with the parameters stored in each hash, so a hash
//! made under older parameters is recognised and upgraded at the next successful sign-in.

use argon2::password_hash::phc::PasswordHash;
use std::cell::RefCell;

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::ValidationError;
use crate::secrets::random_bytes;

/// Argon2id memory cost in KiB: OWASP's minimum recommendation (19 MiB).
pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
/// Argon2id passes over memory.
pub const DEFAULT_ITERATIONS: u32 = 2;
/// The longest password accepted, in bytes; long enough for any passphrase a person types.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("cannot draw random bytes for a salt")]
    Random,
}

/// A tenant's password rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode code points after normalization), 8–128.
    pub min_length: u32,
    /// Lowest acceptable zxcvbn strength score, 0–4: 3 means about 10^10 guesses.
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            min_strength: 3,
        }
    }
}

impl PasswordPolicy {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(8..=128).contains(&self.min_length) {
            return Err(ValidationError::new(
                "min_length",
                "must be between 8 and 128",
            ));
        }
        if self.min_strength > 4 {
            return Err(ValidationError::new(
                "min_strength",
                "must be between 0 and 4",
            ));
        }
        Ok(())
    }

    /// Checks a new password: long enough, not too long, and not guessable — judged with the
    /// user's own names (`context`) counted as known to an attacker.
    pub fn check(&self, password: &SecretString, context: &[&str]) -> Result<(), ValidationError> {
        let normalized = normalize(password);
        let text = normalized.expose_secret();
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "password",
                "must not contain control characters",
            ));
        }
        let length = text.chars().count();
        if length < self.min_length as usize {
            return Err(ValidationError::new(
                "password",
                format!(
                    "must be at least {} characters long; a passphrase of several words is easiest to remember",
                    self.min_length
                ),
            ));
        }
        let estimate = zxcvbn::zxcvbn(text, context);
        if u8::from(estimate.score()) < self.min_strength {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return Err(ValidationError::new(
                "password",
                format!(
                    "is too easy to guess{hint}; add more words or characters that are not a common pattern"
                ),
            ));
        }
        Ok(())
    }
}

/// The same password typed on different keyboards (composed or decomposed accents, full-width
/// forms) must hash alike: NFKC, as SP 800-63B suggests.
fn normalize(password: &SecretString) -> SecretString {
    SecretString::from(password.expose_secret().nfkc().collect::<String>())
}

/// What may be shown about a user's password: whether there is one, never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordStatus {
    pub has_password: bool,
    /// The user must choose a new password at the next sign-in (after an administrator's reset).
    pub must_change: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub changed_at: Option<time::OffsetDateTime>,
}

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Right password; `rehash` when the stored hash used weaker parameters than today's.
    Match {
        rehash: bool,
    },
    Mismatch,
}

/// Hashes and verifies passwords with Argon2id.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    /// A hash of a random password, verified when the user does not exist so that an unknown
    /// user name costs the same time as a wrong password.
    dummy: String,
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PasswordHashing(m={} KiB, t={}, p={})",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }
}

impl PasswordHashing {
    /// Argon2id with `memory_kib` KiB and `iterations` passes, one lane.
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, PasswordError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let dummy = decoy(&params)?;
        Ok(Self { params, dummy })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`) holding the parameters used.
    pub fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let salt = random_bytes::<16>().map_err(|_| PasswordError::Random)?;
        let salt: &[u8] = salt.as_ref();
        let normalized = normalize(password);
        self.argon2()
            .hash_password_with_salt(normalized.expose_secret().as_bytes(), salt)
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Checks `password` against `stored`, with the parameters recorded in `stored`. A hash
    /// that cannot be parsed never matches.
    pub fn verify(&self, password: &SecretString, stored: &str) -> PasswordCheck {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return PasswordCheck::Mismatch;
        };
        let normalized = normalize(password);
        if recompute_matches(normalized.expose_secret().as_bytes(), &parsed) != Some(true) {
            return PasswordCheck::Mismatch;
        }
        let weaker = Params::try_from(&parsed).map_or(true, |used| {
            used.m_cost() < self.params.m_cost() || used.t_cost() < self.params.t_cost()
        });
        PasswordCheck::Match {
            rehash: weaker || parsed.algorithm.as_str() != "argon2id",
        }
    }

    /// Spends the time of one verification and fails: for user names that do not exist.
    pub fn verify_nothing(&self, password: &SecretString) -> PasswordCheck {
        let _ = self.verify(password, &self.dummy);
        PasswordCheck::Mismatch
    }
}

/// A PHC string with `params`, a random salt and a random "hash": verifying anything against it
/// costs exactly one verification with `params` and never matches. Written out rather than
/// computed, so that starting the server spends no hash and keeps no 19 MiB of hash memory.
fn decoy(params: &Params) -> Result<String, PasswordError> {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
    let salt = random_bytes::<16>().map_err(|_| PasswordError::Random)?;
    let hash = random_bytes::<32>().map_err(|_| PasswordError::Random)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        encode(salt.as_ref()),
        encode(hash.as_ref())
    ))
}

thread_local! {
    /// Argon2's working memory, kept by each thread between verifications: allocating and
    /// zeroing a fresh 19 MiB block for every sign-in cost a sixth of the time in page faults.
    /// Argon2 overwrites every block it uses, so nothing of one password reaches the next.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Recomputes the hash of `password` with the algorithm, version, parameters and salt recorded
/// in `stored`, and compares it in constant time. `None` when `stored` is not usable.
fn recompute_matches(password: &[u8], stored: &PasswordHash) -> Option<bool> {
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).ok()?;
    let version = match stored.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(stored).ok()?;
    let salt = stored.salt.as_ref()?;
    let expected = stored.hash.as_ref()?;
    let blocks_needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    BLOCKS
        .with_borrow_mut(|blocks| {
            if blocks.len() < blocks_needed {
                blocks.resize(blocks_needed, Block::default());
            }
            argon2.hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut computed,
                &mut blocks[..blocks_needed],
            )
        })
        .ok()?;
    Some(bool::from(computed.ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// Cheap parameters: these tests check behaviour, not cost.
    fn hashing() -> PasswordHashing {
        PasswordHashing::new(1024, 1).unwrap()
    }

    #[test]
    fn right_and_wrong_passwords() {
        let h = hashing();
        let stored = h.hash(&secret("correct horse battery staple")).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{stored}"
        );
        assert_eq!(
            h.verify(&secret("correct horse battery staple"), &stored),
            PasswordCheck::Match { rehash: false }
        );
        assert_eq!(
            h.verify(&secret("correct horse battery stapler"), &stored),
            PasswordCheck::Mismatch
        );
        assert_eq!(
            h.verify(&secret("x"), "not a hash"),
            PasswordCheck::Mismatch
        );
        assert_eq!(h.verify_nothing(&secret("x")), PasswordCheck::Mismatch);
    }

    #[test]
    fn the_decoy_costs_a_full_verification_with_the_servers_parameters() {
        let h = PasswordHashing::new(2048, 3).unwrap();
        let decoy = PasswordHash::new(&h.dummy).expect("the decoy is a PHC string");
        let params = Params::try_from(&decoy).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (2048, 3, 1)
        );
        assert_eq!(decoy.algorithm.as_str(), "argon2id");
        // The hash is recomputed (Some), and whatever was tried never matches it.
        assert_eq!(recompute_matches(b"anything", &decoy), Some(false));
        let other = PasswordHashing::new(2048, 3).unwrap();
        assert_ne!(h.dummy, other.dummy, "each start draws its own salt");
    }

    #[test]
    fn reused_memory_gives_the_same_answers_as_the_crates_own_verifier() {
        use argon2::password_hash::PasswordVerifier as _;
        let h = hashing();
        let stored = h.hash(&secret("a long enough pass phrase")).unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        // Several in a row on one thread: the reused blocks hold the previous hash's data.
        for _ in 0..3 {
            assert_eq!(
                recompute_matches(b"a long enough pass phrase", &parsed),
                Some(true)
            );
            assert_eq!(
                recompute_matches(b"a long enough pass phrasE", &parsed),
                Some(false)
            );
        }
        assert!(
            h.argon2()
                .verify_password(b"a long enough pass phrase", &parsed)
                .is_ok()
        );
        // A larger hash after a smaller one, and back.
        let big = PasswordHashing::new(4096, 1).unwrap();
        let big_stored = big.hash(&secret("another pass phrase")).unwrap();
        let big_parsed = PasswordHash::new(&big_stored).unwrap();
        assert_eq!(
            recompute_matches(b"another pass phrase", &big_parsed),
            Some(true)
        );
        assert_eq!(
            recompute_matches(b"a long enough pass phrase", &parsed),
            Some(true)
        );
    }

    #[test]
    fn the_same_salt_is_never_used_twice() {
        let h = hashing();
        assert_ne!(
            h.hash(&secret("same")).unwrap(),
            h.hash(&secret("same")).unwrap()
        );
    }

    #[test]
    fn a_hash_made_with_weaker_parameters_asks_to_be_upgraded() {
        let old = PasswordHashing::new(1024, 1).unwrap();
        let stored = old.hash(&secret("pass phrase here")).unwrap();
        let stronger = PasswordHashing::new(2048, 2).unwrap();
        assert_eq!(
            stronger.verify(&secret("pass phrase here"), &stored),
            PasswordCheck::Match { rehash: true }
        );
    }

    #[test]
    fn unicode_forms_of_one_password_match() {
        let h = hashing();
        // "é" precomposed vs "e" + combining acute accent.
        let stored = h.hash(&secret("caf\u{e9} au lait")).unwrap();
        assert_eq!(
            h.verify(&secret("cafe\u{301} au lait"), &stored),
            PasswordCheck::Match { rehash: false }
        );
    }

    #[test]
    fn the_policy_wants_length_and_unguessability_not_composition() {
        let policy = PasswordPolicy::default();
        assert!(policy.check(&secret("short"), &[]).is_err());
        assert!(
            policy.check(&secret("password1234"), &[]).is_err(),
            "common"
        );
        assert!(
            policy.check(&secret("qwertyuiopasdf"), &[]).is_err(),
            "keyboard walk"
        );
        let err = policy
            .check(
                &secret("adalovelace1815"),
                &["adalovelace", "ada@example.com"],
            )
            .unwrap_err();
        assert_eq!(err.field, "password");
        // All lower case, no digits or symbols: fine when long and unpredictable.
        assert!(
            policy
                .check(&secret("violet tugboat parsley orbit"), &[])
                .is_ok()
        );
        assert!(policy.check(&secret(&"a".repeat(2000)), &[]).is_err());
        assert!(
            policy
                .check(&secret("tab\tinside the password ok"), &[])
                .is_err()
        );
    }

    #[test]
    fn policy_bounds() {
        assert!(PasswordPolicy::default().validate().is_ok());
        let too_short = PasswordPolicy {
            min_length: 4,
            ..PasswordPolicy::default()
        };
        assert!(too_short.validate().is_err());
        let too_strong = PasswordPolicy {
            min_strength: 5,
            ..PasswordPolicy::default()
        };
        assert!(too_strong.validate().is_err());
    }
}
