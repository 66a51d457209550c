//! Secret values of the config (keys, passwords, client secrets).

use std::fmt;

/// A string that must never be printed: Debug shows only that it is set.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(empty)")
        } else {
            f.write_str("Secret(***)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{load_value, sample};

    #[test]
    fn secrets_never_print_in_debug() {
        let config = load_value(sample()).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk-a"));
        assert!(!printed.contains("upstream-secret"));
        assert!(printed.contains("Secret(***)"));
    }
}
