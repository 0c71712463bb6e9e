//! Names people type: user names, e-mail addresses, group and environment names. Each is stored
//! twice — as given (NFC, trimmed) for display, and as a *key* on which uniqueness is enforced:
//! compatibility-normalized, case-folded and reduced to its confusable skeleton (Unicode TS #39),
//! so `Ａlice`, `alice`, `ALICE` and `аlice` (Cyrillic `а`) are one name within a tenant.
//! Characters that cannot be seen (zero-width spaces and joiners, soft hyphens, word joiners,
//! the byte-order mark, variation selectors) and bidirectional controls are refused outright:
//! they make two names that look the same compare different, or one name display as another.

use unicode_normalization::UnicodeNormalization;

use crate::ValidationError;

pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DESCRIPTION_CHARS: usize = 2048;

/// A validated name: the display form and its uniqueness key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub display: String,
    pub key: String,
}

/// The uniqueness key of a name: compatibility-normalized, case-folded and reduced to its
/// confusable skeleton, so spellings that look alike collide.
pub fn name_key(raw: &str) -> String {
    // Folding and the skeleton each undo a little of the other (a skeleton may hold a
    // compatibility character, folding may give a letter with a prototype): repeat both until
    // nothing changes, so the key of a key is itself. Two rounds suffice in practice.
    let fold = |text: &str| -> String {
        let folded: String = text.nfkc().collect::<String>().to_lowercase();
        unicode_security::skeleton(&folded)
            .collect::<String>()
            .nfc()
            .collect()
    };
    let mut key = fold(raw);
    for _ in 0..8 {
        let next = fold(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// A name as compared when someone else's system sends it (an enforcement point's token):
/// compatibility-normalized and lower-cased, but not reduced to its skeleton, so that a
/// look-alike (`аdmin` with a Cyrillic `а`) never stands for the name it imitates.
pub fn case_fold(raw: &str) -> String {
    let trimmed = raw.trim();
    // Compatibility normalization leaves ASCII as it is; enforcement points mostly send ASCII.
    if trimmed.is_ascii() {
        return trimmed.to_ascii_lowercase();
    }
    trimmed.nfkc().collect::<String>().to_lowercase()
}

/// Whether `c` is drawn as nothing, or only steers the direction of the text around it: the
/// Default_Ignorable_Code_Point characters of the Unicode Character Database, which include
/// every bidirectional control.
pub fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Refuses control characters and characters that cannot be seen.
fn refuse_hidden(field: &str, text: &str) -> Result<(), ValidationError> {
    if text.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(hidden) = text.chars().find(|c| is_invisible(*c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "must not contain invisible or text-direction characters (U+{:04X}): they make a name look like another",
                u32::from(hidden)
            ),
        ));
    }
    Ok(())
}

/// Validates a name that identifies an object inside a tenant.
pub fn parse_name(field: &str, raw: &str) -> Result<Name, ValidationError> {
    let display: String = raw.trim().nfc().collect();
    if display.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if display.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    refuse_hidden(field, &display)?;
    let key = name_key(&display);
    Ok(Name { display, key })
}

/// Validates a *slug-like* name used in paths and scopes (tenant and environment names):
/// lower-case letters, digits and `-`, starting with a letter.
pub fn parse_slug(field: &str, raw: &str) -> Result<Name, ValidationError> {
    let valid = !raw.is_empty()
        && raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ValidationError::new(
            field,
            "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter",
        ));
    }
    Ok(Name {
        display: raw.to_owned(),
        key: raw.to_owned(),
    })
}

/// Validates an e-mail address. Deliberately permissive about the local part (RFC 5321 allows
/// far more than most validators accept); strict about the shape that matters for delivery and
/// uniqueness.
pub fn parse_email(field: &str, raw: &str) -> Result<Name, ValidationError> {
    let display: String = raw.trim().nfc().collect();
    if display.chars().count() > MAX_EMAIL_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_EMAIL_CHARS} characters"),
        ));
    }
    let Some((local, domain)) = display.rsplit_once('@') else {
        return Err(ValidationError::new(
            field,
            "must look like name@example.com",
        ));
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty()
        || !domain_ok
        || display.chars().any(|c| c.is_whitespace() || c.is_control())
        || local.contains('@')
    {
        return Err(ValidationError::new(
            field,
            "must look like name@example.com",
        ));
    }
    refuse_hidden(field, &display)?;
    let key = name_key(&display);
    Ok(Name { display, key })
}

/// Validates free text such as a description.
pub fn parse_description(field: &str, raw: &str) -> Result<String, ValidationError> {
    let text: String = raw.trim().nfc().collect();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equivalent_spellings_share_a_key() {
        let a = parse_name("user_name", "Alice").unwrap();
        let b = parse_name("user_name", "ＡＬＩＣＥ").unwrap();
        let c = parse_name("user_name", "  alice ").unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.key, c.key);
        // Composed and decomposed é are the same name.
        let composed = parse_name("n", "caf\u{e9}").unwrap();
        let decomposed = parse_name("n", "cafe\u{301}").unwrap();
        assert_eq!(composed.key, decomposed.key);
        assert_eq!(composed.display, decomposed.display);
    }

    #[test]
    fn look_alikes_share_a_key_and_invisible_characters_are_refused() {
        let latin = parse_name("n", "paypal").unwrap();
        // Cyrillic а and р, Greek ο: the same to the eye.
        for twin in [
            "p\u{430}yp\u{430}l",
            "\u{440}aypal",
            "PAYPAL",
            "paypa\u{217C}",
        ] {
            assert_eq!(parse_name("n", twin).unwrap().key, latin.key, "{twin:?}");
        }
        assert_ne!(parse_name("n", "paypa").unwrap().key, latin.key);
        assert_ne!(
            parse_name("n", "ada").unwrap().key,
            parse_name("n", "eve").unwrap().key
        );
        for hidden in [
            "pay\u{200B}pal",   // zero-width space
            "pay\u{00AD}pal",   // soft hyphen
            "pay\u{2060}pal",   // word joiner
            "\u{FEFF}paypal",   // byte-order mark
            "pay\u{202E}lap",   // right-to-left override
            "paypal\u{2066}",   // left-to-right isolate
            "pay\u{200D}pal",   // zero-width joiner
            "\u{200B}\u{200C}", // nothing visible at all
        ] {
            let refused = parse_name("user_name", hidden).unwrap_err();
            assert_eq!(refused.field, "user_name");
            assert!(
                refused.message.contains("invisible"),
                "{hidden:?}: {}",
                refused.message
            );
        }
        assert!(parse_email("email", "ada\u{200B}@example.com").is_err());
    }

    #[test]
    fn bad_names_are_refused_with_the_field() {
        assert_eq!(
            parse_name("user_name", "  ").unwrap_err().field,
            "user_name"
        );
        assert!(parse_name("n", "a\u{0}b").is_err());
        assert!(parse_name("n", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(parse_name("n", &"é".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn slugs() {
        assert!(parse_slug("name", "prod").is_ok());
        assert!(parse_slug("name", "prod-eu-2").is_ok());
        for bad in ["", "Prod", "1prod", "prod env", "prod/x", &"a".repeat(64)] {
            assert!(parse_slug("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert!(parse_email("email", "ada@example.com").is_ok());
        assert!(parse_email("email", "\"odd\"+tag@sub.example.org").is_ok());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@example..com",
        ] {
            assert!(parse_email("email", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_email("email", "Ada@Example.COM").unwrap().key,
            parse_email("email", "ada@example.com").unwrap().key
        );
    }

    proptest! {
        #[test]
        fn key_is_idempotent(raw in "\\PC{1,40}") {
            let key = name_key(&raw);
            prop_assert_eq!(name_key(&key), key);
        }

        #[test]
        fn parse_never_panics(raw in ".{0,300}") {
            let _ = parse_name("n", &raw);
            let _ = parse_email("e", &raw);
            let _ = parse_slug("s", &raw);
            let _ = parse_description("d", &raw);
        }
    }
}
