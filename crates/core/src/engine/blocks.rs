//! Arrays cut into blocks of `BLOCK` keys behind `Arc`s, so that the snapshot after a change
//! shares every block the change did not write with the snapshot before it: an update copies
//! the blocks it touches and the table of block pointers, never the array. Each block is laid
//! out as the whole array would be (flat, sorted, read without locks), so a lookup costs one
//! more pointer than it would in one flat array. See docs/design/engine-deltas.md.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Keys per block: small enough that rewriting one is cheap next to reading a change from
/// the database, large enough that the pointer table stays in cache (a million records take
/// 4,096 pointers).
pub const BLOCK: usize = 256;

fn block_of(key: u32) -> (usize, usize) {
    (key as usize / BLOCK, key as usize % BLOCK)
}

/// One value per dense key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots<T> {
    blocks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            blocks: Arc::default(),
            len: 0,
        }
    }
}

impl<T: Clone> Slots<T> {
    pub fn from_vec(values: Vec<T>) -> Self {
        let len = values.len();
        let blocks = values
            .chunks(BLOCK)
            .map(|chunk| Arc::new(chunk.to_vec()))
            .collect();
        Self {
            blocks: Arc::new(blocks),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: u32) -> Option<&T> {
        let (block, at) = block_of(key);
        self.blocks.get(block)?.get(at)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flat_map(|block| block.iter())
    }

    /// Sets `key` to `value`, first growing the array to hold it with `fill`s.
    pub fn set(&mut self, key: u32, value: T, fill: T) {
        self.grow(key as usize + 1, fill);
        let (block, at) = block_of(key);
        Arc::make_mut(&mut Arc::make_mut(&mut self.blocks)[block])[at] = value;
    }

    /// Grows the array to `len` keys with `fill`s (never shrinks it).
    pub fn grow(&mut self, len: usize, fill: T) {
        if len <= self.len {
            return;
        }
        let blocks = Arc::make_mut(&mut self.blocks);
        while self.len < len {
            let (block, _) = block_of(self.len as u32);
            if block == blocks.len() {
                blocks.push(Arc::new(Vec::with_capacity(BLOCK)));
            }
            let room = (BLOCK - self.len % BLOCK).min(len - self.len);
            Arc::make_mut(&mut blocks[block]).extend(std::iter::repeat_n(fill.clone(), room));
            self.len += room;
        }
    }

    /// Bytes held, counting shared blocks as if owned.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<usize>()
            + self.blocks.len() * BLOCK * std::mem::size_of::<T>()
    }
}

/// A list of rows per dense key (compressed sparse rows, one run per block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lists<T> {
    blocks: Arc<Vec<Arc<ListBlock<T>>>>,
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ListBlock<T> {
    /// `rows[offsets[k]..offsets[k + 1]]` belong to the block's `k`th key.
    offsets: Vec<u32>,
    rows: Vec<T>,
}

impl<T> Default for Lists<T> {
    fn default() -> Self {
        Self {
            blocks: Arc::default(),
            len: 0,
        }
    }
}

impl<T: Clone> ListBlock<T> {
    fn build<'a>(lists: impl Iterator<Item = &'a [T]>) -> Self
    where
        T: 'a,
    {
        let mut offsets = vec![0];
        let mut rows = Vec::new();
        for list in lists {
            rows.extend_from_slice(list);
            offsets.push(rows.len() as u32);
        }
        rows.shrink_to_fit();
        Self { offsets, rows }
    }

    fn of(&self, at: usize) -> &[T] {
        match (self.offsets.get(at), self.offsets.get(at + 1)) {
            (Some(start), Some(end)) => &self.rows[*start as usize..*end as usize],
            _ => &[],
        }
    }
}

impl<T: Clone> Lists<T> {
    /// The lists of keys `0..len`, from `(key, row)` pairs (each key's rows in the order
    /// given). Keys at or past `len` are refused.
    pub fn from_pairs(len: usize, mut pairs: Vec<(u32, T)>) -> Option<Self> {
        if pairs.iter().any(|(key, _)| *key as usize >= len) {
            return None;
        }
        pairs.sort_by_key(|(key, _)| *key);
        let mut lists: Vec<Vec<T>> = vec![Vec::new(); len];
        for (key, row) in pairs {
            lists[key as usize].push(row);
        }
        Some(Self::from_lists(&lists))
    }

    pub fn from_lists(lists: &[Vec<T>]) -> Self {
        let blocks = lists
            .chunks(BLOCK)
            .map(|chunk| Arc::new(ListBlock::build(chunk.iter().map(Vec::as_slice))))
            .collect();
        Self {
            blocks: Arc::new(blocks),
            len: lists.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows of `key`; none for a key outside the array.
    pub fn of(&self, key: u32) -> &[T] {
        let (block, at) = block_of(key);
        match self.blocks.get(block) {
            Some(b) => b.of(at),
            None => &[],
        }
    }

    /// Replaces the lists of the keys in `changed` and grows the array to `len` keys (never
    /// shrinks it), rewriting only the blocks that hold a changed or new key.
    pub fn update(&mut self, len: usize, changed: &BTreeMap<u32, Vec<T>>) {
        let len = len.max(self.len).max(
            changed
                .last_key_value()
                .map_or(0, |(key, _)| *key as usize + 1),
        );
        let mut dirty: Vec<usize> = changed.keys().map(|k| block_of(*k).0).collect();
        if len > self.len {
            dirty.extend(block_of(self.len as u32).0..len.div_ceil(BLOCK));
        }
        dirty.sort_unstable();
        dirty.dedup();
        if dirty.is_empty() {
            return;
        }
        let old = self.clone();
        let blocks = Arc::make_mut(&mut self.blocks);
        for block in dirty {
            let first = (block * BLOCK) as u32;
            let last = ((block + 1) * BLOCK).min(len) as u32;
            let rebuilt =
                Arc::new(ListBlock::build((first..last).map(|key| {
                    changed.get(&key).map_or_else(|| old.of(key), Vec::as_slice)
                })));
            if block == blocks.len() {
                blocks.push(rebuilt);
            } else {
                blocks[block] = rebuilt;
            }
        }
        self.len = len;
    }

    pub fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| {
                std::mem::size_of::<usize>()
                    + b.offsets.capacity() * 4
                    + b.rows.capacity() * std::mem::size_of::<T>()
            })
            .sum()
    }
}

/// Entries per block of a `Sorted` set as built; inserts split a block at twice this. Tiny in
/// tests, so that they split and empty blocks.
const SORTED_BLOCK: usize = if cfg!(test) { 8 } else { 512 };

/// A sorted set cut into blocks behind `Arc`s, with each block's first entry kept apart to
/// find it: an insert or removal copies one block and the two small tables, and the set costs
/// little more than its entries (a persistent B-tree's nodes are about half empty). Used for
/// the reverse indexes the searches read as ranges.
#[derive(Debug, Clone)]
pub struct Sorted<T> {
    blocks: Arc<Vec<Arc<Vec<T>>>>,
    firsts: Arc<Vec<T>>,
    len: usize,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Self {
            blocks: Arc::default(),
            firsts: Arc::default(),
            len: 0,
        }
    }
}

/// Equal when the entries are, however they are cut into blocks.
impl<T: PartialEq> PartialEq for Sorted<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .blocks
                .iter()
                .flat_map(|b| b.iter())
                .eq(other.blocks.iter().flat_map(|b| b.iter()))
    }
}

impl<T: Eq> Eq for Sorted<T> {}

impl<T: Ord + Copy> FromIterator<T> for Sorted<T> {
    fn from_iter<I: IntoIterator<Item = T>>(entries: I) -> Self {
        let mut entries: Vec<T> = entries.into_iter().collect();
        entries.sort_unstable();
        entries.dedup();
        let blocks: Vec<Arc<Vec<T>>> = entries
            .chunks(SORTED_BLOCK)
            .map(|chunk| Arc::new(chunk.to_vec()))
            .collect();
        Self {
            firsts: Arc::new(blocks.iter().map(|b| b[0]).collect()),
            blocks: Arc::new(blocks),
            len: entries.len(),
        }
    }
}

impl<T: Ord + Copy> Sorted<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block `entry` belongs in: the last whose first entry is not after it.
    fn block_for(&self, entry: &T) -> usize {
        self.firsts
            .partition_point(|first| first <= entry)
            .saturating_sub(1)
    }

    /// Adds `entry`; false if it was there.
    pub fn insert(&mut self, entry: T) -> bool {
        if self.blocks.is_empty() {
            *self = std::iter::once(entry).collect();
            return true;
        }
        let b = self.block_for(&entry);
        let Err(at) = self.blocks[b].binary_search(&entry) else {
            return false;
        };
        let blocks = Arc::make_mut(&mut self.blocks);
        let block = Arc::make_mut(&mut blocks[b]);
        block.insert(at, entry);
        let first = block[0];
        if block.len() >= 2 * SORTED_BLOCK {
            let upper = block.split_off(SORTED_BLOCK);
            let upper_first = upper[0];
            blocks.insert(b + 1, Arc::new(upper));
            Arc::make_mut(&mut self.firsts).insert(b + 1, upper_first);
        }
        if at == 0 {
            Arc::make_mut(&mut self.firsts)[b] = first;
        }
        self.len += 1;
        true
    }

    /// Takes `entry` out; false if it was not there.
    pub fn remove(&mut self, entry: &T) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_for(entry);
        let Ok(at) = self.blocks[b].binary_search(entry) else {
            return false;
        };
        let blocks = Arc::make_mut(&mut self.blocks);
        let block = Arc::make_mut(&mut blocks[b]);
        block.remove(at);
        match block.first().copied() {
            None => {
                blocks.remove(b);
                Arc::make_mut(&mut self.firsts).remove(b);
            }
            Some(first) if at == 0 => Arc::make_mut(&mut self.firsts)[b] = first,
            Some(_) => {}
        }
        self.len -= 1;
        true
    }

    /// The entries from `low` to `high`, both included, in order.
    pub fn range(&self, low: T, high: T) -> impl Iterator<Item = &T> {
        let start = self.block_for(&low);
        self.blocks[start.min(self.blocks.len())..]
            .iter()
            .flat_map(|block| block.iter())
            .skip_while(move |entry| **entry < low)
            .take_while(move |entry| **entry <= high)
    }

    /// About how many entries lie from `low` to `high`, without reading them: exact within
    /// one block, else the blocks the range spans at a built block's size. For deciding
    /// whether to read a range at all.
    pub fn approximate_len(&self, low: &T, high: &T) -> usize {
        let (first, last) = (self.block_for(low), self.block_for(high));
        match self.blocks.get(first) {
            None => 0,
            Some(block) if first == last => block
                .partition_point(|e| e <= high)
                .saturating_sub(block.partition_point(|e| e < low)),
            Some(_) => ((last + 1).saturating_sub(first) * SORTED_BLOCK).min(self.len),
        }
    }

    /// Bytes held, counting shared blocks as if owned.
    pub fn heap_bytes(&self) -> usize {
        let pointers = self.blocks.len() * std::mem::size_of::<usize>();
        let entries: usize = self.blocks.iter().map(|b| b.capacity()).sum();
        pointers + (entries + self.firsts.len()) * std::mem::size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Updating lists gives what building them from the updated lists gives, and blocks
        /// no key of which changed are still shared with the lists before.
        #[test]
        fn updated_lists_equal_rebuilt_ones_and_share_the_rest(
            start in prop::collection::vec(prop::collection::vec(0u32..9, 0..3), 0..700),
            changes in prop::collection::btree_map(0u32..900, prop::collection::vec(0u32..9, 0..3), 0..6),
            grow in 0usize..900,
        ) {
            let before = Lists::from_lists(&start);
            let mut after = before.clone();
            after.update(grow, &changes);
            let mut lists = start.clone();
            let len = lists.len().max(grow).max(changes.keys().last().map_or(0, |k| *k as usize + 1));
            lists.resize(len, Vec::new());
            for (key, list) in &changes {
                lists[*key as usize] = list.clone();
            }
            prop_assert_eq!(&after, &Lists::from_lists(&lists));
            for key in 0..len as u32 {
                prop_assert_eq!(after.of(key), lists[key as usize].as_slice());
            }
            let written: Vec<usize> = changes.keys().map(|k| block_of(*k).0).collect();
            for (i, block) in before.blocks.iter().enumerate() {
                if !written.contains(&i) && i + 1 < before.blocks.len() {
                    prop_assert!(Arc::ptr_eq(block, &after.blocks[i]));
                }
            }
        }

        /// Inserts and removals keep the set what a `BTreeSet` given the same would hold, and
        /// any range reads what the `BTreeSet`'s does.
        #[test]
        fn a_sorted_set_behaves_as_a_btree_set(
            start in prop::collection::vec(0u32..3000, 0..2500),
            edits in prop::collection::vec((any::<bool>(), 0u32..3000), 0..400),
            ranges in prop::collection::vec((0u32..3100, 0u32..3100), 1..8),
        ) {
            let mut set: Sorted<u32> = start.iter().copied().collect();
            let mut plain: std::collections::BTreeSet<u32> = start.iter().copied().collect();
            for (add, entry) in edits {
                if add {
                    prop_assert_eq!(set.insert(entry), plain.insert(entry));
                } else {
                    prop_assert_eq!(set.remove(&entry), plain.remove(&entry));
                }
            }
            prop_assert_eq!(set.len(), plain.len());
            prop_assert_eq!(&set, &plain.iter().copied().collect::<Sorted<u32>>());
            for (a, b) in ranges {
                let got: Vec<u32> = set.range(a, b).copied().collect();
                let about = set.approximate_len(&a, &b);
                prop_assert!(about <= set.len());
                prop_assert_eq!(about == 0, got.is_empty());
                let want: Vec<u32> = if a <= b { plain.range(a..=b).copied().collect() } else { Vec::new() };
                prop_assert_eq!(got, want);
            }
            for (b, block) in set.blocks.iter().enumerate() {
                prop_assert!(!block.is_empty() && block.len() < 2 * SORTED_BLOCK);
                prop_assert_eq!(set.firsts[b], block[0]);
            }
        }

        #[test]
        fn slots_set_and_grow_like_a_vec(
            start in prop::collection::vec(0u8..9, 0..700),
            sets in prop::collection::vec((0u32..900, 0u8..9), 0..8),
        ) {
            let mut slots = Slots::from_vec(start.clone());
            let mut plain = start;
            for (key, value) in sets {
                slots.set(key, value, 0);
                if plain.len() <= key as usize {
                    plain.resize(key as usize + 1, 0);
                }
                plain[key as usize] = value;
            }
            prop_assert_eq!(&slots, &Slots::from_vec(plain.clone()));
            prop_assert_eq!(slots.iter().copied().collect::<Vec<_>>(), plain);
        }
    }
}
