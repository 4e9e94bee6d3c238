//! Relay-style pages (`first`, `after`, `pageInfo { endCursor hasNextPage }`) over lists the
//! store returns whole: a cursor is the position after the last item given.

use async_graphql::SimpleObject;

/// W&B's default page size, and the largest herald gives.
pub const DEFAULT_FIRST: i32 = 50;
pub const MAX_FIRST: i32 = 1_000;

#[derive(SimpleObject, Clone)]
pub struct PageInfo {
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
    pub start_cursor: Option<String>,
    pub has_previous_page: bool,
}

/// One page of `items` from `after` (a cursor this server gave), `first` long.
pub fn page<T>(
    items: Vec<T>,
    after: Option<&str>,
    first: Option<i32>,
) -> async_graphql::Result<(Vec<(String, T)>, PageInfo)> {
    page_up_to(items, after, first, MAX_FIRST)
}

/// [`page`], with pages of up to `max` items.
pub fn page_up_to<T>(
    items: Vec<T>,
    after: Option<&str>,
    first: Option<i32>,
    max: i32,
) -> async_graphql::Result<(Vec<(String, T)>, PageInfo)> {
    let first = first.unwrap_or(DEFAULT_FIRST);
    if !(0..=max).contains(&first) {
        return Err(super::errors::invalid(
            "first",
            format!("must be between 0 and {max}, got {first}"),
        ));
    }
    let start = match after {
        None | Some("") => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            super::errors::invalid("after", format!("{c:?} is not a cursor this server gave"))
        })?,
    };
    let total = items.len();
    let taken: Vec<(String, T)> = items
        .into_iter()
        .enumerate()
        .skip(start)
        .take(first as usize)
        .map(|(i, t)| ((i + 1).to_string(), t))
        .collect();
    let end = start + taken.len();
    let info = PageInfo {
        end_cursor: taken.last().map(|(c, _)| c.clone()),
        has_next_page: end < total,
        start_cursor: taken.first().map(|_| (start + 1).to_string()),
        has_previous_page: start > 0,
    };
    Ok((taken, info))
}

/// Declares a connection type `$conn` with edges `$edge` of nodes `$node`.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub node: $node,
            pub cursor: String,
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::page::PageInfo,
            pub total_count: i32,
        }

        impl $conn {
            /// The page of `items` the arguments ask for.
            #[allow(dead_code)]
            pub fn of(
                items: Vec<$node>,
                after: Option<&str>,
                first: Option<i32>,
            ) -> async_graphql::Result<Self> {
                Self::of_up_to(items, after, first, $crate::graphql::page::MAX_FIRST)
            }

            /// [`Self::of`], with pages of up to `max` items.
            #[allow(dead_code)]
            pub fn of_up_to(
                items: Vec<$node>,
                after: Option<&str>,
                first: Option<i32>,
                max: i32,
            ) -> async_graphql::Result<Self> {
                let total_count = i32::try_from(items.len()).unwrap_or(i32::MAX);
                let (taken, page_info) =
                    $crate::graphql::page::page_up_to(items, after, first, max)?;
                Ok(Self {
                    edges: taken
                        .into_iter()
                        .map(|(cursor, node)| $edge { node, cursor })
                        .collect(),
                    page_info,
                    total_count,
                })
            }
        }
    };
}
pub(crate) use connection;

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_walk_the_list_once() {
        let items: Vec<i32> = (0..5).collect();
        let (a, info) = page(items.clone(), None, Some(2)).unwrap();
        assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1]);
        assert!(info.has_next_page);
        let (b, info) = page(items.clone(), info.end_cursor.as_deref(), Some(2)).unwrap();
        assert_eq!(b.iter().map(|x| x.1).collect::<Vec<_>>(), [2, 3]);
        let (c, info) = page(items.clone(), info.end_cursor.as_deref(), Some(2)).unwrap();
        assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), [4]);
        assert!(!info.has_next_page);
        assert!(page(items.clone(), Some("x"), None).is_err());
        assert!(page(items, None, Some(-1)).is_err());
    }
}
