//! The text vocabulary: distinct strings, each with the id it got when first added.

use std::collections::HashMap;

use super::error::{fail, PreprocessError};

/// Strings in id order, as the `vocab_offsets` / `vocab_bytes` CSR the store holds.
#[derive(Debug)]
pub struct Vocab {
    index: HashMap<String, u32>,
    pub offsets: Vec<u64>,
    pub bytes: Vec<u8>,
}

impl Default for Vocab {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            offsets: vec![0],
            bytes: Vec::new(),
        }
    }
}

impl Vocab {
    /// The id of `s`, adding it when new. Ids must fit `cell_text.bin`'s i32.
    pub fn id(&mut self, s: &str) -> Result<u32, PreprocessError> {
        if let Some(&id) = self.index.get(s) {
            return Ok(id);
        }
        let id = self.len();
        if id >= i32::MAX as u32 {
            return fail("more than 2^31 - 1 distinct strings: the vocabulary ids overflow i32");
        }
        self.index.insert(s.to_owned(), id);
        self.bytes.extend_from_slice(s.as_bytes());
        self.offsets.push(self.bytes.len() as u64);
        Ok(id)
    }

    pub fn len(&self) -> u32 {
        self.index.len() as u32
    }

    #[cfg(test)]
    pub fn get(&self, id: u32) -> &str {
        let (a, b) = (
            self.offsets[id as usize] as usize,
            self.offsets[id as usize + 1] as usize,
        );
        std::str::from_utf8(&self.bytes[a..b]).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_first_appearance_and_dedupe() {
        let mut v = Vocab::default();
        let ids: Vec<u32> = ["users", "age of users", "users", "", "é"]
            .iter()
            .map(|s| v.id(s).unwrap())
            .collect();
        assert_eq!(ids, [0, 1, 0, 2, 3]);
        assert_eq!(v.len(), 4);
        assert_eq!(v.offsets, [0, 5, 17, 17, 19]);
        assert_eq!((v.get(1), v.get(2), v.get(3)), ("age of users", "", "é"));
    }
}
