//! Panics never cross into Python. pyo3 turns a Rust panic into `PanicException`, a
//! `BaseException` that slips past every `except Exception` (a seed worker's error
//! handling included), so each binding that reads user files runs its work through
//! `catch` and raises the typed error of its concern instead, naming the file.
//! A panic on a corrupted file usually comes from a dependency (the parquet crate
//! indexing past a mangled page); ours would be a bug, reported the same way.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`; a panic in it (or in a rayon task it waits on) becomes `Err(message)`.
///
/// Unwind safety is asserted, not proven: every caller drops whatever `f` was building
/// and reports the error, so no half-updated state is used afterwards.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_their_message_and_values_pass_through() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| -> u8 { panic!("bad page") }),
            Err("bad page".into())
        );
        let column = 3u8;
        let e = catch(|| -> u8 { panic!("column {column} is out of range") });
        assert_eq!(e, Err("column 3 is out of range".into()));
        let v: Vec<u8> = Vec::new();
        let e = catch(|| v[usize::from(column)]).unwrap_err();
        assert!(e.contains("index out of bounds"), "{e}");
    }

    #[test]
    fn a_panic_in_a_rayon_task_is_caught_by_the_caller() {
        use rayon::prelude::*;
        let e = catch(|| {
            (0..64)
                .into_par_iter()
                .map(|i| if i == 40 { panic!("task {i}") } else { i })
                .sum::<i32>()
        });
        assert_eq!(e, Err("task 40".into()));
    }
}
