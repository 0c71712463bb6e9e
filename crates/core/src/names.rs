//! Names people type: user names, e-mail addresses, group and environment names. Each is stored
//! twice — as given (NFC, trimmed) for display, and as a *key* (NFKC, lower-cased) on which
//! uniqueness is enforced, so `Ａlice`, `alice` and `ALICE` are one name within a tenant.

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

/// The uniqueness key of a name: compatibility-normalized and case-folded, so visually
/// equivalent spellings collide.
pub fn name_key(raw: &str) -> String {
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
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
    if display.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
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
            "ada@example.com"
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
