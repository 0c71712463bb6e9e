//! Cursor pagination. A cursor is the sort key of the last item returned (an id, or an audit
//! sequence number), opaque to clients. Ids are UUIDv7, so "after this id" means "created after
//! this one", stable under concurrent inserts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// One page of a listing and the cursor for the next, if there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Where a listing starts and how many items it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequest<K> {
    pub after: Option<K>,
    pub limit: u32,
}

fn bad_cursor() -> ValidationError {
    ValidationError::new("cursor", "is not a cursor this server returned")
}

fn check_limit(limit: Option<u32>) -> Result<u32, ValidationError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

impl PageRequest<i64> {
    /// For listings sorted by a sequence number.
    pub fn parse_seq(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, ValidationError> {
        let after = cursor
            .map(|c| {
                c.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(bad_cursor)
            })
            .transpose()?;
        Ok(Self {
            after,
            limit: check_limit(limit)?,
        })
    }
}

impl PageRequest<Uuid> {
    /// For listings sorted by id.
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, ValidationError> {
        let after = cursor
            .map(|c| Uuid::parse_str(c).map_err(|_| bad_cursor()))
            .transpose()?;
        Ok(Self {
            after,
            limit: check_limit(limit)?,
        })
    }
}

impl PageRequest<crate::identity::PrincipalRef> {
    /// For listings of principals in (kind, id) order; the cursor is `kind/id`, as a
    /// principal reference prints.
    pub fn parse_principal(
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Self, ValidationError> {
        let after = cursor
            .map(|c| {
                let (kind, id) = c.split_once('/').ok_or_else(bad_cursor)?;
                Ok(crate::identity::PrincipalRef {
                    kind: crate::identity::PrincipalKind::parse(kind).ok_or_else(bad_cursor)?,
                    id: Uuid::parse_str(id).map_err(|_| bad_cursor())?,
                })
            })
            .transpose()?;
        Ok(Self {
            after,
            limit: check_limit(limit)?,
        })
    }
}

impl<K> PageRequest<K> {
    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Builds the page from up to `limit + 1` items fetched.
    pub fn finish<T, C: ToString>(
        &self,
        mut items: Vec<T>,
        cursor_of: impl Fn(&T) -> C,
    ) -> Page<T> {
        let more = items.len() > self.limit as usize;
        items.truncate(self.limit as usize);
        let next_cursor = if more {
            items.last().map(|last| cursor_of(last).to_string())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert!(PageRequest::<Uuid>::parse(None, Some(0)).is_err());
        assert!(PageRequest::<Uuid>::parse(None, Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(
            PageRequest::<Uuid>::parse(None, None).unwrap().limit,
            DEFAULT_LIMIT
        );
        assert_eq!(
            PageRequest::<Uuid>::parse(Some("nope"), None)
                .unwrap_err()
                .field,
            "cursor"
        );
    }

    #[test]
    fn a_principal_cursor_round_trips() {
        let p = crate::identity::PrincipalRef::group(crate::GroupId::generate());
        let parsed = PageRequest::parse_principal(Some(&p.to_string()), None).unwrap();
        assert_eq!(parsed.after, Some(p));
        for bad in [
            "group",
            "robot/00000000-0000-0000-0000-000000000000",
            "user/x",
        ] {
            assert!(
                PageRequest::parse_principal(Some(bad), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_cursor_only_when_more() {
        let request = PageRequest::<Uuid> {
            after: None,
            limit: 2,
        };
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = request.finish(ids.clone(), |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));
        let page = request.finish(ids[..2].to_vec(), |u| *u);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn sequence_cursors() {
        assert_eq!(
            PageRequest::parse_seq(Some("42"), None).unwrap().after,
            Some(42)
        );
        assert!(PageRequest::parse_seq(Some("-1"), None).is_err());
        assert!(PageRequest::parse_seq(Some("x"), None).is_err());
    }
}

/// A search page token that only resumes the search it came from: the position (the last
/// result's key) behind a digest of the query. Used with another query it is refused, rather
/// than quietly paging a different result set from a position that means nothing there.
pub mod bound {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::ValidationError;

    const DIGEST_BYTES: usize = 12;

    fn digest(query: &[u8]) -> [u8; DIGEST_BYTES] {
        let full = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, query);
        let mut short = [0u8; DIGEST_BYTES];
        short.copy_from_slice(&full.as_ref()[..DIGEST_BYTES]);
        short
    }

    /// The token resuming `query` after `position`.
    pub fn token(query: &[u8], position: &str) -> String {
        let mut bytes = digest(query).to_vec();
        bytes.extend_from_slice(position.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a token resumes `query` at; `field` names the token in errors.
    pub fn position(
        query: &[u8],
        token: &str,
        field: &'static str,
    ) -> Result<String, ValidationError> {
        let foreign = || ValidationError::new(field, "is not a token this server gave");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| foreign())?;
        if bytes.len() < DIGEST_BYTES {
            return Err(foreign());
        }
        // A digest, not a secret: the token is a cursor, not a capability.
        let (bound_to, position) = bytes.split_at(DIGEST_BYTES);
        if bound_to != digest(query) {
            return Err(ValidationError::new(
                field,
                "was given for a different search; repeat the request that returned it unchanged, or start again without it",
            ));
        }
        String::from_utf8(position.to_vec()).map_err(|_| foreign())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_token_resumes_only_its_own_query() {
            let t = token(b"who may read doc-1", "u-42");
            assert_eq!(
                position(b"who may read doc-1", &t, "page.token").unwrap(),
                "u-42"
            );
            let e = position(b"who may read doc-2", &t, "page.token").unwrap_err();
            assert!(e.message.contains("different search"), "{e:?}");
            assert!(position(b"who may read doc-1", "not base64!", "page.token").is_err());
            assert!(position(b"who may read doc-1", "AAAA", "page.token").is_err());
        }
    }
}
