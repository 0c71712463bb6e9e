//! Cursor pagination. A cursor is the id of the last item returned, opaque to clients; ids are
//! UUIDv7 so "after this id" is "created after this one", stable under concurrent inserts.

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
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl PageRequest {
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self, ValidationError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = cursor
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| {
                    ValidationError::new("cursor", "is not a cursor this server returned")
                })
            })
            .transpose()?;
        Ok(Self { after, limit })
    }

    /// Builds the page from up to `limit + 1` items fetched: the extra one only tells whether
    /// another page exists.
    pub fn finish<T>(&self, mut items: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let more = items.len() > self.limit as usize;
        items.truncate(self.limit as usize);
        let next_cursor = if more {
            items.last().map(|last| id_of(last).to_string())
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
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            PageRequest::parse(Some("nope"), None).unwrap_err().field,
            "cursor"
        );
    }

    #[test]
    fn next_cursor_only_when_more() {
        let request = PageRequest {
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
}
