//! The two sets of context rules (docs/contexts.md, "Two sets of rules").
//!
//! `Reference` builds contexts and standardises values as the reference implementation
//! of PluRel did when it trained the published checkpoint; `Strict` keeps every label
//! and statistic on the known side of time. Values depend on the rules (statistics,
//! booleans), so a store is written under one set and the sampler applies the same set.

use std::fmt;

/// Which rules a store was written under and a sampler builds contexts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextRules {
    /// As the reference sampler and preprocessor:
    /// 1. whole rows only, the walk stops before the row whose cells (every cell of
    ///    every row taken, a row taken again counted again) would reach `ctx_len`;
    /// 2. an item without a timestamp follows only children without one;
    /// 3. the train/val/test label tables of a task are one table, cut by time (≤);
    /// 4. booleans standardised per column; 5. statistics over all rows;
    /// 6. every cell of the task's target column is flagged as a task cell.
    #[default]
    Reference,
    /// Leakage-conscious: whole rows up to `ctx_len` cells that enter the context;
    /// an untimed item follows every child; label rows of the task only when strictly
    /// earlier than the item; booleans 0/1; statistics over training rows; only cells
    /// of task-table rows flagged.
    Strict,
}

impl ContextRules {
    /// Every setting, by name.
    pub const ALL: [ContextRules; 2] = [ContextRules::Reference, ContextRules::Strict];

    /// The name stores and checkpoints record.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Strict => "strict",
        }
    }

    /// The setting called `name`, or a message listing the valid names.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                format!("context rules must be \"reference\" or \"strict\", got {name:?}")
            })
    }
}

impl fmt::Display for ContextRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for rules in ContextRules::ALL {
            assert_eq!(ContextRules::parse(rules.name()), Ok(rules));
        }
        assert!(ContextRules::parse("loose")
            .unwrap_err()
            .contains("\"loose\""));
        assert_eq!(ContextRules::default(), ContextRules::Reference);
    }
}
