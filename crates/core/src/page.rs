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
