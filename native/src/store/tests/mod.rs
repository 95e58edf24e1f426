//! Unit tests of the store modules, and preprocessing of Parquet files end to end.

mod end_to_end;
pub mod keys;
mod stats;
mod values;
