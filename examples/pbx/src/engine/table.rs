//! A table whose keys carry a generation: a key of a removed entry never finds the
//! entry that reuses its slot (h2's `store.rs` and slotmap do the same).

/// A key into a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

#[cfg(test)]
impl Key {
    /// A key no table gave, for tests.
    pub(crate) fn for_tests(index: u32) -> Key {
        Key {
            index,
            generation: 0,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Entries by [`Key`]; insertion and removal O(1), slots reused.
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Table<T> {
    /// Adds `value`, built from its own key; `None` when the table is full.
    pub(crate) fn insert_with(&mut self, value: impl FnOnce(Key) -> T) -> Option<Key> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                i
            }
        };
        let slot = self.slots.get_mut(index as usize)?;
        let key = Key {
            index,
            generation: slot.generation,
        };
        slot.value = Some(value(key));
        self.len += 1;
        Some(key)
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        (slot.generation == key.generation)
            .then_some(slot.value.as_ref())
            .flatten()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The keys of every entry (a scan: for rare, whole-table work).
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.slots.iter().zip(0u32..).filter_map(|(s, index)| {
            s.value.as_ref().map(|_| Key {
                index,
                generation: s.generation,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_never_finds_the_entry_that_reuses_its_slot() {
        let mut t = Table::default();
        let a = t.insert_with(|_| "a").unwrap();
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert_with(|_| "b").unwrap();
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.remove(a), None);
        assert_eq!(t.len(), 1);
    }
}
