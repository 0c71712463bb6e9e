//! The user codes of the device authorization grant (RFC 8628): short enough to type from a
//! terminal onto a phone, from an alphabet without vowels (no words) and without characters
//! that look alike, and read back however the person typed them.

use crate::secrets::{SecretError, random_bytes};

/// Consonants only (RFC 8628 §6.1): 20 characters, 8 of them ≈ 34.6 bits.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const LENGTH: usize = 8;

/// How long a device code lasts before it must be started again.
pub const DEVICE_CODE_SECONDS: i64 = 600;
/// The least time between two polls of the token endpoint (RFC 8628 §3.2 default).
pub const POLL_INTERVAL_SECONDS: u32 = 5;

/// A new user code, shown as `XXXX-XXXX`.
pub fn new_user_code() -> Result<String, SecretError> {
    let mut code = String::with_capacity(LENGTH + 1);
    while code.len() < LENGTH + 1 {
        for byte in random_bytes::<16>()?.iter() {
            // 240 is the largest multiple of 20 below 256: rejecting the rest keeps every
            // character equally likely.
            if *byte >= 240 || code.len() == LENGTH + 1 {
                continue;
            }
            if code.len() == LENGTH / 2 {
                code.push('-');
            }
            code.push(char::from(ALPHABET[usize::from(*byte % 20)]));
        }
    }
    Ok(code)
}

/// A typed user code in its one stored form (`XXXXXXXX`): case, dashes and spaces ignored.
/// `None` when it cannot be a user code at all, so nothing is looked up for it.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\u{2010}'..='\u{2015}'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// A typed user code as the device shows it (`XXXX-XXXX`), or `None` if it cannot be one.
pub fn displayed_user_code(typed: &str) -> Option<String> {
    normalize_user_code(typed).map(|code| format!("{}-{}", &code[..4], &code[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_are_two_groups_of_four_consonants() {
        for _ in 0..200 {
            let code = new_user_code().unwrap();
            assert_eq!(code.len(), 9, "{code}");
            assert_eq!(&code[4..5], "-");
            assert_eq!(normalize_user_code(&code).unwrap(), code.replace('-', ""));
        }
    }

    #[test]
    fn typing_variants_read_back_and_junk_does_not() {
        assert_eq!(
            normalize_user_code("wdjb-mjht").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(
            normalize_user_code(" WDJB MJHT ").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(
            normalize_user_code("WDJB-MJHA"),
            None,
            "vowels are not used"
        );
        assert_eq!(normalize_user_code("WDJB-MJH0"), None);
        assert_eq!(normalize_user_code(""), None);
        assert_eq!(
            displayed_user_code("wdjb mjht").as_deref(),
            Some("WDJB-MJHT")
        );
    }

    proptest! {
        #[test]
        fn anything_typed_normalizes_to_nothing_or_a_valid_code(typed in ".{0,40}") {
            if let Some(code) = normalize_user_code(&typed) {
                prop_assert_eq!(code.len(), LENGTH);
                prop_assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
                prop_assert_eq!(normalize_user_code(&code), Some(code.clone()));
            }
        }
    }
}
